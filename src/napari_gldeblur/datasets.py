"""Paired blurry/sharp data: finding pairs on disk (flat or GoPro layout) and sampling training patches."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
Pair = tuple[np.ndarray, np.ndarray]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1] from an 8/16-bit or float, gray or RGB(A) file; ValueError names the file."""
    from .imageio import read_image_file
    from .synthesis import as_rgb_float

    return as_rgb_float(read_image_file(path))  # keeps 16-bit colour PNG/TIFF precision


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS and p.is_file()}


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
            blur, sharp = read_image(b), read_image(s)
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

    Cutting 64 patches of 128 px takes ~30 ms of numpy, twice an H200's lite step, so workers keep a GPU busy;
    on a CPU they would only take cores from the training itself.
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
