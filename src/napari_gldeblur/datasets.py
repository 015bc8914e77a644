"""Paired blurry/sharp data: finding pairs on disk (flat or GoPro layout) and sampling training patches."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Pair = tuple[np.ndarray, np.ndarray]


def read_image(path: str | os.PathLike, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1] from an 8/16-bit or float, gray or RGB(A) file; ValueError names the file.

    Values are mapped as ``gldeblur deblur`` maps them (``inference.value_range``: 12-bit data in uint16 by
    0-4095, floats by their range), or by ``value_range`` when given (one range for both images of a pair).
    """
    from .inference import value_range as range_of

    image = read_raw(path)
    return rgb_unit(image, *(value_range or range_of(image)))


def rgb_unit(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1]: [lo, hi] mapped to [0, 1], gray repeated, alpha dropped."""
    from .inference import to_unit

    unit = to_unit(image, lo, hi)
    if unit.ndim == 2:
        unit = np.repeat(unit[..., None], 3, axis=-1)
    return np.clip(unit[..., :3], 0.0, 1.0)


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """The stored pixels of one gray or RGB(A) picture (ValueError for stacks and other shapes)."""
    from .imageio import read_image_file

    image = read_image_file(path)  # keeps 16-bit colour PNG/TIFF precision
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{path}: expected one gray or RGB(A) picture, got an array of shape {image.shape}")
    return image


def read_pair(blur_path: str | os.PathLike, sharp_path: str | os.PathLike) -> Pair:
    """A blurry/sharp pair mapped to [0, 1] by one range covering both (so 12-bit partners stay aligned)."""
    from .inference import value_range

    blur, sharp = read_raw(blur_path), read_raw(sharp_path)
    if blur.dtype != sharp.dtype:
        raise ValueError(f"{blur_path} is {blur.dtype} but {sharp_path} is {sharp.dtype}: partners need one bit depth")
    (lo1, hi1), (lo2, hi2) = value_range(blur), value_range(sharp)
    lo, hi = min(lo1, lo2), max(hi1, hi2)
    return rgb_unit(blur, lo, hi), rgb_unit(sharp, lo, hi)


def _images(folder: Path) -> dict[str, Path]:
    from .imageio import list_images

    return {p.name: p for p in list_images(folder)}


def _match(blur_dir: Path, sharp_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs matched by file name; a file without its partner is an error naming it."""
    blur, sharp = _images(blur_dir), _images(sharp_dir)
    for name in sorted(set(blur) ^ set(sharp)):
        where = blur_dir if name in blur else sharp_dir
        other = sharp_dir if name in blur else blur_dir
        raise ValueError(f"{where / name} has no partner in {other}")
    return [(blur[n], sharp[n]) for n in sorted(blur)]


def find_pairs(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(blur, sharp) paths from ``root/blur`` + ``root/sharp`` or the GoPro layout ``root/SEQ/{blur,sharp}``."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder not found: {root}")
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        pairs = _match(root / "blur", root / "sharp")
    else:
        seqs = [d for d in sorted(root.iterdir()) if (d / "blur").is_dir() and (d / "sharp").is_dir()]
        pairs = [p for d in seqs for p in _match(d / "blur", d / "sharp")]
    if not pairs:
        raise ValueError(f"no image pairs in {root}: expected {root}/blur + {root}/sharp or {root}/SEQUENCE/blur + sharp")
    return pairs


def load_pairs(roots: Sequence[str | os.PathLike]) -> list[Pair]:
    """Read every pair under ``roots`` into memory, checking that partners have the same size."""
    out = []
    for root in roots:
        for b, s in find_pairs(root):
            blur, sharp = read_pair(b, s)
            if blur.shape != sharp.shape:
                raise ValueError(f"size mismatch: {b} is {blur.shape[1]}x{blur.shape[0]}, {s} is {sharp.shape[1]}x{sharp.shape[0]}")
            out.append((blur, sharp))
    return out


def check_pairs(pairs: Sequence[Pair], patch: int) -> None:
    for i, (b, s) in enumerate(pairs):
        if b.shape != s.shape:
            raise ValueError(f"pair {i}: blurry {b.shape} and sharp {s.shape} differ in shape")
        if min(b.shape[:2]) < patch:
            raise ValueError(f"pair {i}: image {b.shape[1]}x{b.shape[0]} is smaller than the {patch}px patch")


def augment(blur: np.ndarray, sharp: np.ndarray, rng: np.random.Generator) -> Pair:
    """The paper's augmentation: random flips and 90-degree rotations, the same for both images."""
    k = int(rng.integers(4))
    blur, sharp = np.rot90(blur, k), np.rot90(sharp, k)
    if rng.random() < 0.5:
        blur, sharp = blur[:, ::-1], sharp[:, ::-1]
    return blur, sharp


def random_patch(pair: Pair, patch: int, rng: np.random.Generator) -> Pair:
    blur, sharp = pair
    h, w = blur.shape[:2]
    y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    return blur[y : y + patch, x : x + patch], sharp[y : y + patch, x : x + patch]


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, 3, H, W) float32 from a list of (H, W, 3) arrays."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32))


class PatchSampler:
    """Endless random (blur, sharp) patch batches with augmentation from in-memory pairs."""

    def __init__(self, pairs: Sequence[Pair], patch: int, seed: int = 0, augment: bool = True):
        check_pairs(pairs, patch)
        self.pairs, self.patch, self.augment, self.seed = list(pairs), patch, augment, seed
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        blurs, sharps = [], []
        for _ in range(size):
            b, s = random_patch(self.pairs[int(self.rng.integers(len(self.pairs)))], self.patch, self.rng)
            if self.augment:
                b, s = augment(b, s, self.rng)
            blurs.append(b)
            sharps.append(s)
        return to_tensor(blurs), to_tensor(sharps)


class _EndlessBatches(torch.utils.data.IterableDataset):
    """A PatchSampler's batches forever; each DataLoader worker draws from its own random stream."""

    def __init__(self, sampler: PatchSampler, size: int):
        self.sampler, self.size = sampler, size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            self.sampler.rng = np.random.default_rng([self.sampler.seed, info.id])
        while True:
            yield self.sampler.batch(self.size)


def batches(sampler: PatchSampler, size: int, workers: int = 0,
            pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches from ``sampler``: in this process, or cut by ``workers`` processes ahead of use.

    Cutting 8 patches of 128 px takes ~50 ms on one core (benchmarks/bench_stream.py), far more than a GPU
    step, so workers keep a GPU busy; on a CPU they would only take cores from the training itself.
    """
    if workers <= 0:
        while True:
            yield sampler.batch(size)
    loader = torch.utils.data.DataLoader(_EndlessBatches(sampler, size), batch_size=None, num_workers=workers,
                                         pin_memory=pin_memory, prefetch_factor=4)
    yield from loader


def split(pairs: Sequence[Pair], val_fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """A reproducible train/validation split; at least one pair stays for training."""
    idx = np.random.default_rng(seed).permutation(len(pairs))
    n_val = min(int(round(len(pairs) * val_fraction)), len(pairs) - 1) if val_fraction > 0 else 0
    return [pairs[i] for i in idx[n_val:]], [pairs[i] for i in idx[:n_val]]


# --- the online degradation stream -----------------------------------------------------------------
STREAM_KINDS = ("uniform", "dynamic", "mixed")


def downscaled_crop(source: np.ndarray, size: int, rng: np.random.Generator, min_scale: float) -> np.ndarray:
    """A ``size`` x ``size`` crop of ``source`` shrunk by a random factor in [``min_scale``, 1]:
    downscaled photographs are sharper than their originals, so targets are sharp. Antialiased bilinear
    resampling (torch's, 10x faster than scikit-image's on the stream's crops)."""
    h, w = source.shape[:2]
    scale = rng.uniform(min(max(min_scale, size / min(h, w)), 1.0), 1.0)
    side = min(int(np.ceil(size / scale)), h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = np.ascontiguousarray(source[y : y + side, x : x + side], dtype=np.float32)
    if side != size:
        t = torch.from_numpy(crop).permute(2, 0, 1)[None]
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)
        crop = t[0].permute(1, 2, 0).numpy()
    return np.clip(crop, 0, 1)


def warped_crop(source: np.ndarray, size: int, rng: np.random.Generator, scale: tuple[float, float] = (0.3, 0.5),
                stretch: float = 1.25) -> np.ndarray:
    """A ``size`` x ``size`` view of ``source`` under a random affine map: any rotation, a shrink in ``scale``
    and up to ``stretch`` more along one axis, so a few photographs show new shapes and edge directions.

    The view is rotated (bicubic) at the source's own resolution, finer than the view's, then shrunk with
    antialiasing, so it is as sharp as a plain downscaled crop (interpolating at the view's resolution is not).
    A view whose footprint does not fit in the source is shrunk less, or else (a small source) a plain crop.
    """
    h, w = source.shape[:2]
    s, theta = rng.uniform(*scale), rng.uniform(0, 2 * np.pi)
    a = float(np.exp(rng.uniform(-np.log(stretch), np.log(stretch))))
    turn = abs(np.cos(theta)) + abs(np.sin(theta))  # the bounding square's side over the view's
    for _ in range(2):  # where the footprint does not fit, shrink less (a smaller footprint), once
        sy, sx = s * min(a, 1.0), s / max(a, 1.0)  # source px -> view px along y and x (both <= s)
        m = max(sy, sx)  # rotate where the less shrunk axis is at the source's resolution
        n = int(np.ceil(size / m))  # the view's side there
        side = int(np.ceil(n * turn)) + 4  # the view's bounding square there
        ry, rx = int(np.ceil(side * m / sy)), int(np.ceil(side * m / sx))  # its rows and columns in the source
        overflow = max(ry / h, rx / w)
        if overflow <= 1:
            break
        s *= overflow * 1.02
    if overflow > 1 or s > 1:
        return downscaled_crop(source, size, rng, scale[0])
    y, x = int(rng.integers(0, h - ry + 1)), int(rng.integers(0, w - rx + 1))
    t = torch.from_numpy(np.ascontiguousarray(source[y : y + ry, x : x + rx], dtype=np.float32)).permute(2, 0, 1)[None]
    if (ry, rx) != (side, side):  # shrink the more shrunk axis to the other's scale: the stretch
        t = F.interpolate(t, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    c, si, k = np.cos(theta), np.sin(theta), n / side
    grid = F.affine_grid(torch.tensor([[[c * k, -si * k, 0.0], [si * k, c * k, 0.0]]], dtype=torch.float32),
                         [1, 3, n, n], align_corners=False)
    t = F.grid_sample(t, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return np.clip(t[0].permute(1, 2, 0).numpy(), 0, 1)


class DegradationStream:
    """Endless (blurry, sharp) batches, each patch a fresh crop under a fresh degradation (never the same pair).

    ``kind``: ``uniform`` (a kernel from ``mix``, default ``degradations.UNIFORM_MIX``), ``dynamic`` (moving objects over a
    drifting camera, synthesis.dynamic_scene) or ``mixed`` (``dynamic_share`` of dynamic scenes). A fraction
    ``dead_leaves`` of the content is generated (synthesis.dead_leaves_image), refreshed as it is used, and a
    fraction ``shapes`` is drawn fresh from synthesis.procedural_image (flat shapes and binary stripes down to
    pixel scale: sharp patterns a deblurrer must leave as they are). A fraction ``soft`` of the crops is
    softened first (synthesis.soften: resampled down and back up), so soft but unblurred content is a target to
    keep, not one to sharpen; a fraction ``shallow_focus`` becomes a sharp, detailed subject over a defocused
    background (synthesis.shallow_focus), so bokeh beside what is in focus is a target to keep too; a fraction
    ``recolour`` comes in other colours and tones (synthesis.recolour). A fraction ``warp`` of the crops of source
    pictures is a rotated, shrunk and stretched view of them (``warped_crop``), not an axis-aligned crop.
    ``grain_targets``: nearly sharp and identity pairs keep the input's grain in their target
    (``degradations.degrade_pair``); off, every target is the clean crop. ``denoise`` off: every target keeps
    the input's grain (the same camera draws), so the network undoes blur and leaves noise and JPEG to the
    picture, and grainy sharp frames come back as they were.
    """

    def __init__(self, sources: Sequence[np.ndarray], patch: int, kind: str = "mixed", seed: int = 0,
                 dead_leaves: float = 0.2, dynamic_share: float = 0.3, min_scale: float = 0.3,
                 mix: dict[str, float] | None = None, grain_targets: bool = True, shapes: float = 0.0,
                 soft: float = 0.0, denoise: bool = True, shallow_focus: float = 0.0, recolour: float = 0.0,
                 warp: float = 0.0):
        if kind not in STREAM_KINDS:
            raise ValueError(f"unknown stream kind {kind!r}; choose {', '.join(STREAM_KINDS)}")
        if not sources and dead_leaves <= 0 and shapes <= 0:
            raise ValueError("the degradation stream needs source pictures or generated content (dead leaves, shapes)")
        self.sources, self.patch, self.kind, self.seed = list(sources), patch, kind, seed
        self.dead_leaves, self.shapes, self.dynamic_share, self.min_scale = dead_leaves, shapes, dynamic_share, min_scale
        self.mix = mix  # kernel families and their shares (default: degradations.UNIFORM_MIX)
        self.grain_targets, self.soft, self.denoise, self.shallow_focus = grain_targets, soft, denoise, shallow_focus
        self.recolour, self.warp = recolour, warp
        self.rng = np.random.default_rng(seed)
        self._leaves: list[np.ndarray] = []

    def _content(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A fresh sharp crop: drawn (``_crop``), maybe recoloured, softened or given a shallow focus, rotated and
        flipped."""
        from .synthesis import fine_detail, recolour, shallow_focus, soften

        crop = self._crop(rng, size)
        if self.recolour and rng.random() < self.recolour:  # no draw when off, as below
            crop = recolour(crop, rng)
        if self.soft and rng.random() < self.soft:  # no draw when off: streams without soft stay as they were
            crop = soften(crop, rng)
        if self.shallow_focus and rng.random() < self.shallow_focus:  # likewise
            subject = max((self._crop(rng, size) for _ in range(3)), key=fine_detail)  # shows what is in focus
            crop = shallow_focus(crop, subject, rng)
        crop = np.rot90(crop, int(rng.integers(4)))
        return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)

    def _crop(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A downscaled crop of a source picture, a dead-leaves image or a procedural one, by their shares."""
        from .synthesis import dead_leaves_image, procedural_image

        generated = self.dead_leaves + self.shapes
        if self.sources:
            u = rng.random()
        elif self.shapes:  # without sources, all content is generated: dead leaves and shapes by their shares
            u = rng.random() * generated
        else:
            u = 0.0
        if u < self.dead_leaves:
            if len(self._leaves) < 8 or rng.random() < 0.05:  # a small pool, refreshed slowly (0.1 s each)
                textures = [downscaled_crop(self.sources[int(rng.integers(len(self.sources)))], 128, rng, 0.3)
                            for _ in range(2)] if self.sources else []
                leaf = dead_leaves_image(rng, 256, textures)
                self._leaves = (self._leaves + [leaf])[-16:]
            src, min_scale = self._leaves[int(rng.integers(len(self._leaves)))], 0.5
        elif u < generated:
            src, min_scale = procedural_image(rng, max(2 * size, 256)), 0.5  # 7 ms at 256 px: always fresh
        else:
            src, min_scale = self.sources[int(rng.integers(len(self.sources)))], self.min_scale
            if self.warp and rng.random() < self.warp:  # no draw when off: streams without warp stay as they were
                return warped_crop(src, size, rng, (min_scale, max(min_scale, 0.5)))
        return downscaled_crop(src, size, rng, min_scale)

    def pair(self, rng: np.random.Generator, size: int | None = None) -> Pair:
        """One fresh (blurry, sharp) pair of ``size`` (default: the patch size)."""
        from . import degradations as dg
        from .synthesis import dynamic_scene

        size = size or self.patch
        if self.kind == "dynamic" or (self.kind == "mixed" and rng.random() < self.dynamic_share):
            margin = 16
            bg = self._content(rng, size + 2 * margin)
            others = [self._content(rng, size // 2 + 2) for _ in range(2)]
            blurred, sharp = dynamic_scene(bg, others, rng, size, camera_px=rng.uniform(0, 12),
                                           object_px=(4.0, 36.0))
            if not self.denoise:
                record = dg.same_camera(rng)
                return record(dg.to_linear(blurred)), record(dg.to_linear(sharp))
            return dg.camera(dg.to_linear(blurred), rng), sharp
        family, kernel = dg.random_kernel(rng, self.mix or dg.UNIFORM_MIX)
        pad = kernel.shape[0] // 2 + 1
        keep_grain = not self.denoise or (self.grain_targets and family in dg.NEARLY_SHARP)
        return dg.degrade_pair(self._content(rng, size + 2 * pad), kernel, rng, pad, keep_grain=keep_grain)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        blurs, sharps = zip(*(self.pair(self.rng) for _ in range(size)))
        return to_tensor(blurs), to_tensor(sharps)

    def fixed_pairs(self, count: int, size: int, seed: int) -> list[Pair]:
        """``count`` reproducible pairs from a separate seed: a validation set for the stream."""
        rng = np.random.default_rng([seed, 7])
        kept, self._leaves = self._leaves, []  # own dead-leaves pool: the same pairs whatever came before
        try:
            return [self.pair(rng, size) for _ in range(count)]
        finally:
            self._leaves = kept


class ReblurSampler:
    """Endless batches of fresh sharp crops blurred by one kernel (slightly jittered each time) plus noise of
    ``noise`` std and 8-bit rounding: more pairs of a user's blur than their few pairs hold. A share
    ``identity`` of the patches stay sharp (input = target), so sharp pictures keep coming back unchanged."""

    def __init__(self, sources: Sequence[np.ndarray], kernel: np.ndarray, noise: float, patch: int, seed: int = 0,
                 identity: float = 0.0):
        if not sources:
            raise ValueError("re-blurring needs sharp pictures")
        self.sources, self.kernel, self.noise, self.patch, self.seed = list(sources), kernel, noise, patch, seed
        self.identity = identity
        self.rng = np.random.default_rng(seed)

    def pair(self, rng: np.random.Generator) -> Pair:
        from . import degradations as dg

        kernel = dg.jitter_kernel(self.kernel, rng)
        pad = kernel.shape[0] // 2 + 1
        src = self.sources[int(rng.integers(len(self.sources)))]
        size = self.patch + 2 * pad
        crop = downscaled_crop(src, size, rng, min_scale=0.5) if min(src.shape[:2]) >= size else None
        if crop is None:  # a small picture: reflect it up to size
            crop = np.pad(src, ((0, max(0, size - src.shape[0])), (0, max(0, size - src.shape[1])), (0, 0)),
                          mode="reflect")[:size, :size]
        crop = np.rot90(crop, int(rng.integers(4)))
        crop = np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop, dtype=np.float32)
        inner = (slice(pad, pad + self.patch), slice(pad, pad + self.patch))
        if rng.random() < self.identity:
            return crop[inner].copy(), crop[inner].copy()
        blurred = dg.blur(crop, kernel)[inner] + rng.normal(0, self.noise, (self.patch, self.patch, 3))
        return dg.as_saved(blurred), crop[inner].copy()

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        blurs, sharps = zip(*(self.pair(self.rng) for _ in range(size)))
        return to_tensor(blurs), to_tensor(sharps)


class MixedSampler:
    """Batches made of several samplers' patches, ``shares`` of each (the first takes the rounding rest)."""

    def __init__(self, samplers: Sequence, shares: Sequence[float]):
        self.samplers, self.shares = list(samplers), [float(s) for s in shares]
        self.seed = getattr(self.samplers[0], "seed", 0)

    @property
    def rng(self):
        return self.samplers[0].rng

    @rng.setter
    def rng(self, value) -> None:  # batch workers reseed: give every sampler its own stream
        for i, sampler in enumerate(self.samplers):
            sampler.rng = np.random.default_rng([self.seed, i, int(value.integers(1 << 30))])

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        counts = [int(round(size * s)) for s in self.shares[1:]]
        counts = [size - sum(counts)] + counts
        parts = [sampler.batch(n) for sampler, n in zip(self.samplers, counts) if n > 0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
