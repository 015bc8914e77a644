"""The inference engine shared by the napari widget and the CLI: ``Deblurrer`` and ``DeblurResult``.

Images in (what napari can hold), the network in between, images out with the input's shape and dtype:

* **Layouts.** Gray (H, W), RGB (H, W, 3), RGBA (H, W, 4) and stacks of them with up to three leading
  axes (T, C, Z in any order: a (T, C, Z, Y, X) gray stack is 5-D), processed frame by frame. Colour is detected from a last
  axis of 3 or 4 unless ``rgb`` is given. Gray goes through the RGB network as three equal channels and the
  three output channels are averaged back to one. RGBA's alpha is copied through untouched.
* **Values.** uint8 is scaled by 0-255 and uint16 by the bit depth its data uses (0-4095 for 12-bit data,
  0-65535 for full 16-bit), so it keeps its precision; floats already in [0, 1] are used as they are; any
  other real dtype (floats of any range, other integers) is scaled by the image's min/max and restored to
  that range. Output is clipped to that range and rounded for integers.
* **Tiling.** Large frames are cut into overlapping tiles whose outputs are blended with raised-cosine
  (Hann) ramps across each overlap, by default the network's receptive radius; tiles sit on the whole-image
  pass's 4-pixel grid (same stride-2 phase and border padding), so tiled and whole outputs agree (the bundled
  model's image to > 70 dB, its feature maps to > 50 dB at the default tiles) and no seams show. ``tile=None``
  (auto) uses the whole frame when it fits, else the tiling with the least overlap work whose forward
  pass fits the memory budget (half the free RAM, at most 1.5 GiB, on the CPU; 70% of free GPU memory);
  on the CPU tiles also keep full-resolution feature maps under 32 MiB (see ``speed_tile_area``).
  Out-of-memory during a tile retries the frame with tiles half the size.
* **Speed.** ``device="auto"`` takes CUDA, then MPS, then the CPU. The CPU runs channels_last and uses
  bfloat16 autocast only where a one-time check (per process, network size and thread count) finds it
  both faster than float32 and accurate (>= ``BF16_MIN_PSNR`` dB against float32); CUDA uses AMP
  (bfloat16 where supported, else float16). ``precision="fp32"`` forces float32 everywhere.
* **Progress and cancel.** ``Deblurrer.steps`` is a generator: it yields ``Progress(done, total)`` after
  every tile (of every frame) and yields the ``DeblurResult`` last (also its return value), so a napari
  generator worker can report progress and quit between tiles. ``Deblurrer.__call__`` drives it, calling
  ``progress(done, total)`` and raising ``Cancelled`` as soon as ``cancel()`` returns True.

* **Big data.** The input may be any array with ``shape``, ``dtype`` and frame indexing (numpy, dask,
  zarr, ``imageio.TiffStack``): it is read one frame at a time. ``out=`` takes an array (or a streaming
  writer such as ``imageio.TiffFrames``) that receives each output frame as it is done, so with
  ``features=False`` memory does not grow with the stack length.
* **Provenance.** ``DeblurResult.provenance`` says what made the result: package version, model name and
  SHA-256, strength per frame, tile, overlap, device and precision (stored in layer metadata and files).

Feature maps (``local_features`` Ψ_L, ``global_features`` Ψ_G) are the per-pixel L2 norm over channels,
divided by its maximum over the whole image/stack so they lie in [0, 1]; ``attention`` is the mask M
averaged over channels (already in [0, 1]). All are float32 with the image's spatial and stack shape.
With ``all_channels=True`` the feature maps keep every channel instead, raw, as (..., H, W, C) arrays.
Variants without a global branch (LB) or attention (LB, DB) give None for the missing maps.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Generator, NamedTuple, Optional, Union

import numpy as np
import torch

from .devices import (  # noqa: F401 (public API)
    PRECISIONS,
    cpu_bf16_pays_off,
    cpu_bf16_supported,
    memory_format,
    pick_device,
    pick_precision,
    use_all_cores,
)
from .models import load_model, model_identity
from .network import MULTIPLE, DBAFNet, pad_to_multiple, receptive_radius
from .strength import AUTO_STRENGTH_LEVELS, DEFAULT_MEASURE, auto_strength, change_ratio, check_strength, fine_detail, strength_note  # noqa: F401
from .tiling import MIN_TILE, _Canvas, bytes_per_pixel, choose_tile, is_out_of_memory, memory_budget, speed_tile_area, tile_starts, tile_weights  # noqa: F401

ModelSpec = Union[str, os.PathLike, DBAFNet]
UINT16_DEPTHS = (8, 10, 12, 14, 16)  # bit depths uint16 data comes in (cameras, microscopes)
MIN_SIDE = 2  # pixels: a 1-pixel-wide image has no blur to remove
MAX_STACK_AXES = 3  # T, C and Z


class Cancelled(Exception):
    """Raised by ``Deblurrer.__call__`` when ``cancel()`` returned True; no partial result is returned."""


class Progress(NamedTuple):
    """Tiles done so far and the total over all frames (the total grows if an out-of-memory retry re-tiles)."""

    done: int
    total: int


@dataclass
class DeblurResult:
    """The deblurred image (input shape and dtype) and viewable float32 maps (None where the variant lacks them)."""

    image: np.ndarray
    local_features: Optional[np.ndarray] = None
    global_features: Optional[np.ndarray] = None
    attention: Optional[np.ndarray] = None
    device: str = "cpu"
    precision: str = "fp32"
    tile: Optional[tuple[int, int]] = None  # (height, width) of the tiles used last; None: whole frames
    seconds: float = 0.0
    strengths: tuple[float, ...] = ()  # the strength used on each frame (chosen per frame with "auto")
    model: dict = field(default_factory=dict)  # {"name", "sha256"} of the network that made it
    overlap: int = 0

    @property
    def provenance(self) -> dict:
        """What made this result, as plain JSON-able values (for layer metadata and file descriptions)."""
        from . import __version__

        return {"software": f"napari-gldeblur {__version__}", "model": self.model.get("name", "?"),
                "model_sha256": self.model.get("sha256", "?"), "strength": [round(s, 4) for s in self.strengths],
                "tile": list(self.tile) if self.tile else None, "overlap": self.overlap, "device": self.device,
                "precision": self.precision}

    def moved_axis(self, source: int, destination: int, keep_image: bool = False) -> "DeblurResult":
        """The same result with one stack axis moved (channels back to where the input had them)."""
        move = lambda a: None if a is None else np.moveaxis(a, source, destination)  # noqa: E731
        return replace(self, image=self.image if keep_image else move(self.image), local_features=move(self.local_features),
                                   global_features=move(self.global_features), attention=move(self.attention))


def channel_axis_of(shape: tuple[int, ...], rgb: Optional[bool], channel_axis: Optional[int]) -> Optional[int]:
    """The axis to deblur channel by channel: ``channel_axis`` if given (checked), else a last axis of 1 or 2
    channels (gray or two-channel microscopy), which is never a spatial axis; None for none."""
    if channel_axis is not None:
        if rgb:
            raise ValueError("an RGB image has its colours in the last axis: give no channel axis")
        if not -len(shape) <= int(channel_axis) < len(shape):
            raise ValueError(f"channel axis {channel_axis} does not exist in an image of shape {shape}")
        if len(shape) < 3:
            raise ValueError(f"a {len(shape)}-D image of shape {shape} has no channel axis to split")
        return int(channel_axis) % len(shape)
    if rgb is None and len(shape) >= 3 and shape[-1] in (1, 2):
        return len(shape) - 1
    return None


def _moveaxis(image, axis: int):
    """``image`` with ``axis`` moved to the front, lazily for dask and other array kinds numpy cannot view."""
    if isinstance(image, np.ndarray) or hasattr(image, "dask"):
        return np.moveaxis(image, axis, 0)  # numpy view; dask keeps it lazy
    return _MovedAxis(image, axis)


class _MovedAxis:
    """A view of an array-like (a writer or lazy reader) with ``axis`` moved to the front, by index mapping."""

    def __init__(self, base, axis: int):
        self.base, self.axis = base, axis
        shape = list(base.shape)
        self.shape = tuple([shape.pop(axis)] + shape)
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def _key(self, index) -> tuple:
        index = index if isinstance(index, tuple) else (index,)
        rest = list(index[1:]) + [slice(None)] * (self.ndim - len(index))
        return tuple(rest[:self.axis] + [index[0]] + rest[self.axis:])

    def __getitem__(self, index):
        return np.asarray(self.base[self._key(index)])

    def __setitem__(self, index, value) -> None:
        self.base[self._key(index)] = value


# --- layouts and value ranges -------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How an array splits into frames: leading stack axes, frame height/width, channels (1, 3 or 4)."""

    stack: tuple[int, ...]
    height: int
    width: int
    channels: int

    @property
    def frames(self) -> int:
        return int(np.prod(self.stack)) if self.stack else 1


def image_layout(shape: tuple[int, ...], rgb: Optional[bool] = None) -> Layout:
    """The layout of an image shape; ValueError (one line) for shapes we cannot deblur."""
    shape = tuple(int(s) for s in shape)
    colour = len(shape) >= 3 and shape[-1] in (3, 4) if rgb is None else bool(rgb)
    if len(shape) < 2 or len(shape) > 2 + colour + MAX_STACK_AXES:
        raise ValueError(f"cannot deblur an array of shape {shape}: expected (Y, X) or (Y, X, 3|4) images with at "
                         f"most {MAX_STACK_AXES} leading stack axes (T, C, Z)")
    if 0 in shape:
        raise ValueError(f"cannot deblur an empty image (shape {shape})")
    if colour and (len(shape) < 3 or shape[-1] not in (3, 4)):
        raise ValueError(f"an RGB image needs a last axis of 3 or 4 channels, got shape {shape}")
    spatial = shape[-3:-1] if colour else shape[-2:]
    stack = shape[:-3] if colour else shape[:-2]
    if min(spatial) < MIN_SIDE:
        raise ValueError(f"image of {spatial[0]} x {spatial[1]} pixels is too small to deblur "
                         f"(needs at least {MIN_SIDE} x {MIN_SIDE})")
    return Layout(stack, spatial[0], spatial[1], shape[-1] if colour else 1)


def value_range(image) -> tuple[float, float]:
    """(low, high) mapped to [0, 1] for the network: 0-255 for uint8; for uint16 the bit depth the data uses
    (0 to 2^k - 1 for the smallest k of 8, 10, 12, 14, 16 covering its maximum: a 12-bit camera's 0-4095 is
    not squeezed into 1/16 of the range); [0, 1] or min/max otherwise."""
    dtype = np.dtype(image.dtype)
    if dtype.kind == "b" or dtype.kind not in "uif":
        raise ValueError(f"cannot deblur {dtype} pixels: expected integer or float images")
    if dtype == np.uint8:
        return 0.0, 255.0
    if dtype == np.uint16:
        top = int(extrema(image)[1])
        return 0.0, float(next(2**k - 1 for k in UINT16_DEPTHS if top <= 2**k - 1))
    lo, hi = extrema(image)
    if dtype.kind == "f" and not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("image contains NaN or infinite values: replace them before deblurring")
    if dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def extrema(image) -> tuple[float, float]:
    """(min, max) of an array of any kind: numpy at once; dask chunk by chunk; others one leading index at a time."""
    if isinstance(image, np.ndarray):
        return float(np.min(image)), float(np.max(image))
    if hasattr(image, "dask"):
        import dask

        lo, hi = dask.compute(image.min(), image.max())
        return float(lo), float(hi)
    lo, hi = math.inf, -math.inf
    for i in range(image.shape[0]):
        part = np.asarray(image[i])
        lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    return lo, hi


def to_unit(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float32 frame scaled so [lo, hi] becomes [0, 1] (a constant image becomes 0); never modifies ``frame``."""
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    if lo == 0.0 and scale == 1.0:
        return np.asarray(frame, dtype=np.float32)
    out = np.array(frame, dtype=np.float32)  # one copy, then in place: 8K frames are 400 MB each
    if lo != 0.0:
        out -= np.float32(lo)
    out *= np.float32(scale)
    return out


def from_unit(unit: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> np.ndarray:
    """Inverse of ``to_unit`` into ``dtype``, clipped to [lo, hi] (integers rounded)."""
    dtype = np.dtype(dtype)
    wide = dtype.itemsize > 4 or (dtype.kind in "ui" and dtype.itemsize == 4)  # keep float64 precision
    out = np.clip(unit, 0.0, 1.0, dtype=np.float64 if wide else np.float32)
    if not (lo == 0.0 and hi == 1.0):
        out *= hi - lo
        out += lo
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        np.rint(out, out=out)
        np.clip(out, max(info.min, lo), min(info.max, hi), out=out)
    return out.astype(dtype, copy=False)


class Deblurrer:
    """Deblur images of any napari layout with a DBAFNet; see the module docstring for the rules.

    ``model``: ``"lite"`` (bundled weights), ``"paper"`` (paper-size network, random weights), a checkpoint
    path, or a ``DBAFNet`` (copied, so the caller's network is untouched). ``tile``: tile side in pixels,
    or None to choose from free memory. ``overlap``: pixels shared by neighbouring tiles (blended); None: the
    network's receptive radius (``network.receptive_radius``, 68 px for the bundled model; at most a third of
    ``tile``), so each tile's blended border sees about the context the whole frame gives it.
    """

    def __init__(self, model: ModelSpec = "lite", device: Union[str, torch.device] = "auto",
                 tile: Optional[int] = None, overlap: Optional[int] = None, precision: str = "auto",
                 all_channels: bool = False):
        if overlap is not None and overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if tile is not None and int(tile) < MIN_TILE // 2:
            raise ValueError(f"tile {tile} is too small: use at least {MIN_TILE // 2} px")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        net = copy.deepcopy(model) if isinstance(model, DBAFNet) else load_model(model)
        if overlap is None:  # capped at a third of a tile the caller chose, so a small tile still works
            overlap = receptive_radius(net.config) if tile is None else min(receptive_radius(net.config), int(tile) // 3)
        overlap = int(overlap)
        if tile is not None and int(tile) <= 2 * overlap:
            raise ValueError(f"tile {tile} is too small: use at least {max(MIN_TILE // 2, 2 * overlap + 1)} px "
                             f"(more than twice the {overlap} px overlap)")
        self.device = pick_device(device)
        if self.device.type == "cpu":
            use_all_cores()
        self.model = model_identity(model, net)
        self.memory_format = memory_format(self.device)
        self.net = net.eval().to(self.device, memory_format=self.memory_format)
        self.tile = None if tile is None else int(tile)
        self.overlap = int(overlap)
        self.all_channels = bool(all_channels)
        self.dtype = pick_precision(self.net, self.device, precision)
        self.auto_levels = getattr(net, "auto_strength", AUTO_STRENGTH_LEVELS)  # the gate tuned for this model
        self.auto_measure = getattr(net, "auto_strength_measure", DEFAULT_MEASURE)  # and what it measures

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def __repr__(self) -> str:
        c = self.net.config
        return (f"Deblurrer(width={c.width}, blocks={c.blocks}, variant={c.variant}, device={self.device}, "
                f"precision={self.precision}, tile={self.tile}, overlap={self.overlap})")

    def __call__(self, image, progress: Optional[Callable[[int, int], object]] = None,
                 cancel: Optional[Callable[[], bool]] = None, rgb: Optional[bool] = None,
                 features: bool = True, strength: Union[float, str] = "auto",
                 channel_axis: Optional[int] = None, out=None) -> DeblurResult:
        """Deblur ``image``; ``progress(done, total)`` after each tile; raises ``Cancelled`` when ``cancel()``."""
        steps = self.steps(image, rgb=rgb, features=features, strength=strength, channel_axis=channel_axis, out=out)
        for item in steps:
            if isinstance(item, DeblurResult):
                return item
            if progress is not None:
                progress(item.done, item.total)
            if cancel is not None and cancel():
                steps.close()
                raise Cancelled("deblurring cancelled")
        raise RuntimeError("the deblurring generator ended without a result")  # pragma: no cover

    def steps(self, image, rgb: Optional[bool] = None, features: bool = True,
              strength: Union[float, str] = "auto", channel_axis: Optional[int] = None,
              out=None) -> Generator[Union[Progress, DeblurResult], None, DeblurResult]:
        """Generator: yields ``Progress`` after every tile, then the ``DeblurResult`` (also returned).

        ``strength`` in [0, 1] is how much of the network's change is kept (1: all, 0: the input back); lower
        it for soft footage the network over-sharpens. ``"auto"`` (the default, as in the widget and the CLI) picks
        0, 0.5 or 1 per frame from the size of the change against the detail the frame already has
        (``auto_strength``), so sharp pictures come back unchanged. The feature maps do not depend on it.
        ``channel_axis``: an axis of channels, each deblurred as a gray image; a last axis of 1 or 2 is one
        (not a spatial axis) unless ``rgb`` says otherwise.
        ``out``: an array of the input's shape and dtype (or a writer taking ``out[index] = frame`` in frame
        order) that receives the output frames as they are done; the result's ``image`` is then ``out``.
        """
        if not hasattr(image, "shape") or not hasattr(image, "dtype"):
            image = np.asarray(image)
        axis = channel_axis_of(tuple(image.shape), rgb, channel_axis)
        if axis is not None and axis < len(image.shape) - 2:  # already a stack axis: gray frames, in file order
            axis, rgb = None, False
        if axis is not None:  # channels become the leading stack axis, and go back to their place after
            result = None
            moved = None if out is None else _MovedAxis(out, axis)
            for item in self.steps(_moveaxis(image, axis), rgb=False, features=features, strength=strength, out=moved):
                if isinstance(item, DeblurResult):
                    result = item.moved_axis(0, axis, keep_image=out is not None)
                    if out is not None:
                        result.image = out
                else:
                    yield item
            yield result
            return result
        strength = check_strength(strength)
        used: list[float] = []
        t0 = time.perf_counter()
        layout = image_layout(tuple(image.shape), rgb)
        lo, hi = value_range(image)
        outputs: dict[str, np.ndarray] = {}
        tile = self._tile_for(layout)
        done, total = 0, self._tile_count(layout, tile) * layout.frames
        for k, index in enumerate(np.ndindex(*layout.stack)):
            frame = np.asarray(image[index])
            unit = to_unit(frame, lo, hi)
            rgb_unit, alpha = self._split(unit, layout.channels), frame[..., 3] if layout.channels == 4 else None
            while True:
                canvas = _Canvas(*self._canvas_size(layout, tile), features, self.all_channels)
                try:
                    for _ in self._run_frame(rgb_unit, canvas, tile):
                        done += 1
                        yield Progress(done, total)
                    break
                except Exception as exc:
                    smaller = self._halve(tile, layout) if is_out_of_memory(exc) else None
                    if smaller is None:
                        raise
                    del canvas
                    self._free_cache()
                    tile = smaller  # this frame restarts with smaller tiles; later frames keep them
                    total = done + self._tile_count(layout, tile) * (layout.frames - k)
            maps = canvas.result(layout.height, layout.width)
            if not torch.isfinite(maps["image"]).all():
                raise ValueError("the network returned NaN or infinite values: the model is broken "
                                 "(a diverged training run?); use another checkpoint")
            s = auto_strength(rgb_unit, maps["image"], self.auto_levels, self.auto_measure) if strength == "auto" else strength
            if s != 1.0:
                maps["image"] = torch.lerp(rgb_unit.float(), maps["image"], s)
            used.append(s)
            self._collect(outputs, index, layout, maps, frame, alpha, lo, hi, image.dtype, out)
        result = self._finish(outputs, layout, image.dtype, tile, time.perf_counter() - t0)
        if out is not None:
            result.image = out
        result.strengths, result.model, result.overlap = tuple(used), dict(self.model), self.overlap
        yield result
        return result

    # -- helpers of steps --
    def _tile_for(self, layout: Layout) -> Optional[tuple[int, int]]:
        if self.tile is not None:
            th, tw = min(self.tile, layout.height), min(self.tile, layout.width)
            return None if (th, tw) == (layout.height, layout.width) else (th, tw)
        width = self.net.config.width
        speed_cap = speed_tile_area(width) if self.device.type == "cpu" else None
        tile = choose_tile(layout.height, layout.width, bytes_per_pixel(width), memory_budget(self.device),
                           self.overlap, speed_cap)
        if tile is not None and min(tile) <= 2 * self.overlap:
            raise ValueError(f"overlap {self.overlap} px is too large for the {tile[0]} x {tile[1]} px tiles this "
                             f"image needs: use an overlap below {min(tile) // 2} px")
        return tile

    @staticmethod
    def _canvas_size(layout: Layout, tile: Optional[tuple[int, int]]) -> tuple[int, int]:
        if tile is None:
            return layout.height, layout.width
        return layout.height + (-layout.height % MULTIPLE), layout.width + (-layout.width % MULTIPLE)

    def _tile_count(self, layout: Layout, tile: Optional[tuple[int, int]]) -> int:
        if tile is None:
            return 1
        _, _, ys, xs = self._grid(layout.height, layout.width, tile)
        return len(ys) * len(xs)

    def _grid(self, h: int, w: int, tile: tuple[int, int]) -> tuple[int, int, list[int], list[int]]:
        """Tile size and starts on the frame padded to a multiple of 4, all on the network's 4-pixel grid.

        Keeping every tile on the grid of the whole-image pass (same stride-2 phase, same border padding)
        is what makes tiled and whole-image outputs agree.
        """
        hp, wp = h + (-h % MULTIPLE), w + (-w % MULTIPLE)
        th = max(MULTIPLE, min(tile[0], hp) // MULTIPLE * MULTIPLE)
        tw = max(MULTIPLE, min(tile[1], wp) // MULTIPLE * MULTIPLE)
        return th, tw, tile_starts(hp, th, self.overlap), tile_starts(wp, tw, self.overlap)

    def _halve(self, tile: Optional[tuple[int, int]], layout: Layout) -> Optional[tuple[int, int]]:
        """Tiles with half the longer side (for an out-of-memory retry); None when they cannot shrink."""
        th, tw = tile if tile is not None else (layout.height, layout.width)
        side = max(MIN_TILE, 2 * self.overlap + 32, max(th, tw) // 2)
        smaller = (min(th, side), min(tw, side))
        return None if smaller == (th, tw) else smaller

    def _free_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @staticmethod
    def _split(unit: np.ndarray, channels: int) -> torch.Tensor:
        """(3, H, W) float32 tensor of a frame in [0, 1]: gray repeated to RGB, alpha dropped."""
        t = torch.from_numpy(np.ascontiguousarray(unit))
        if channels == 1:
            return t[None].expand(3, -1, -1)
        return t[..., :3].permute(2, 0, 1)  # a channels_last view of the (H, W, C) frame, no copy

    def _forward(self, x: torch.Tensor):
        """The network on one (3, h, w) tile, under autocast when a lower precision was chosen."""
        x = x[None].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        amp = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None
               else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            return self.net(x)

    def _run_frame(self, x: torch.Tensor, canvas: _Canvas, tile: Optional[tuple[int, int]]):
        """Run every tile of one (3, H, W) frame into ``canvas``, yielding after each."""
        h, w = x.shape[-2:]
        if tile is None:
            canvas.add(self._forward(x), 0, 0, None)
            yield
            return
        th, tw, ys, xs = self._grid(h, w, tile)
        xp = pad_to_multiple(x[None], MULTIPLE)[0]  # the padding the whole-image pass would use
        for iy, y in enumerate(ys):
            for ix, x0 in enumerate(xs):
                out = self._forward(xp[:, y:y + th, x0:x0 + tw])
                canvas.add(out, y, x0, tile_weights(ys, xs, th, tw, iy, ix))
                yield

    def _collect(self, outputs: dict, index: tuple, layout: Layout, maps: dict, frame: np.ndarray,
                 alpha: Optional[np.ndarray], lo: float, hi: float, dtype, out=None) -> None:
        """Write one frame's image (restored to dtype/range, alpha copied) and raw maps into the outputs
        (the image into ``out`` when given)."""
        img = maps.pop("image")  # from_unit clips to [0, 1]; gray: the mean of the clipped RGB output
        img = img.clamp(0, 1).mean(dim=0) if layout.channels == 1 else img.permute(1, 2, 0)
        img = from_unit(img.numpy(), lo, hi, dtype)
        if alpha is not None:
            img = np.concatenate([img, np.asarray(alpha)[..., None]], axis=-1)
        if out is not None:
            out[index] = img
            arrays = {}
        else:
            arrays = {"image": img}
        for name, t in maps.items():
            arrays[name] = (t.permute(1, 2, 0) if t.ndim == 3 else t).numpy()
        for name, arr in arrays.items():
            if not layout.stack:  # a single frame: no stack array to copy into
                outputs[name] = np.ascontiguousarray(arr)
                continue
            if name not in outputs:
                outputs[name] = np.empty(layout.stack + arr.shape, dtype=arr.dtype)
            outputs[name][index] = arr

    def _finish(self, outputs: dict, layout: Layout, dtype, tile, seconds: float) -> DeblurResult:
        """Normalise the norm maps by their maximum over the whole image/stack and pack the result."""
        maps = {}
        for name in ("local", "global", "attention"):
            arr = outputs.get(name)
            if arr is not None and name != "attention" and not self.all_channels:
                peak = float(arr.max())
                if peak > 0:
                    arr /= peak
            maps[name] = arr
        return DeblurResult(outputs.get("image"), maps["local"], maps["global"], maps["attention"],
                            device=str(self.device), precision=self.precision, tile=tile, seconds=seconds)
