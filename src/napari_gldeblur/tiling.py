"""Tiles for frames too large for one forward pass: sizes from the memory budget, starts on the network's
4-pixel grid, raised-cosine blending across overlaps, and the canvas that accumulates the tiles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .network import MULTIPLE

BYTES_PER_PIXEL_PER_CHANNEL = 48  # peak forward memory ~ this x width per pixel (measured ~30-40, margin kept)
CPU_BUDGET_CAP = 3 << 29  # 1.5 GiB for activations on the CPU: a 4K frame stays well under 3 GB peak RSS
MEMORY_FRACTION = 0.5  # of the currently available memory
MIN_TILE = 64
SPEED_TILE_BYTES = 32 << 20  # glibc's largest mmap threshold: bigger blocks are fresh mmaps on every call


def available_memory() -> int:
    """Bytes of system memory available now (psutil, else /proc/meminfo, else 4 GiB)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def memory_budget(device: torch.device) -> int:
    """Bytes one forward pass may use: a fraction of free GPU memory, or of free RAM capped on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    budget = int(available_memory() * MEMORY_FRACTION)
    return min(budget, CPU_BUDGET_CAP) if device.type == "cpu" else budget


def bytes_per_pixel(width: int) -> int:
    """Approximate peak memory of one forward pass per pixel for a network of base ``width``."""
    return BYTES_PER_PIXEL_PER_CHANNEL * width


def speed_tile_area(width: int) -> int:
    """Largest CPU tile (pixels) whose full-resolution float32 feature maps stay within ``SPEED_TILE_BYTES``.

    glibc malloc serves blocks above 32 MiB with a fresh mmap on every call, so bigger maps pay page faults
    on every pass (measured: the lite net at 720p runs ~30% faster in two strips than whole; docs/benchmarks.md).
    """
    return SPEED_TILE_BYTES // (4 * width)


def _span(length: int, count: int, overlap: int) -> int:
    """Tile length (a multiple of 4) so ``count`` tiles overlapping by ``overlap`` cover ``length``."""
    need = -(-(length + (count - 1) * overlap) // count)
    return min(length + (-length % MULTIPLE), need + (-need % MULTIPLE))


def choose_tile(height: int, width: int, pixel_bytes: int, budget: int, overlap: int = 32,
                max_area: Optional[int] = None) -> Optional[tuple[int, int]]:
    """Tile (height, width) within ``budget`` bytes (and ``max_area`` pixels) that wastes the least work on
    overlaps; None when the whole frame fits."""
    area = budget // pixel_bytes
    if max_area is not None:
        area = min(area, max_area)
    if height * width <= area:
        return None
    area = max(area, MIN_TILE * MIN_TILE)
    hp, wp = height + (-height % MULTIPLE), width + (-width % MULTIPLE)
    best = None
    for rows in range(1, hp // MULTIPLE + 1):
        th = _span(hp, rows, overlap)
        if th < min(hp, MIN_TILE) or th <= overlap + MULTIPLE:
            break
        if th * min(wp, MIN_TILE) > area:
            continue
        cols = max(1, -(-wp // (area // th)))
        while cols <= wp // MULTIPLE and _span(wp, cols, overlap) * th > area:  # overlaps can make it never fit
            cols += 1
        tw = _span(wp, cols, overlap)
        if tw * th > area:
            continue
        if tw <= overlap + MULTIPLE and tw < wp:
            continue
        count = len(tile_starts(hp, th, overlap)) * len(tile_starts(wp, tw, overlap))
        key = (count * th * tw, count)
        if best is None or key < best[0]:
            best = (key, (th, tw))
    return best[1] if best else (min(hp, MIN_TILE), min(wp, MIN_TILE))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px with at least ``overlap`` px overlap."""
    if tile >= length:
        return [0]
    stride = max(1, tile - overlap)
    if stride > 4:
        stride -= stride % 4  # tiles start on the network's downsampling grid where possible
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp of ``n`` values rising in (0, 1); ``ramp(n) + ramp(n)[::-1] == 1``."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def axis_weights(starts: list[int], tile: int, index: int) -> np.ndarray:
    """1-D blending weights of tile ``index``: ramps across the overlaps with its neighbours, 1 elsewhere."""
    w = np.ones(tile, np.float32)
    s = starts[index]
    if index > 0:
        n = starts[index - 1] + tile - s
        w[:n] *= ramp(n)
    if index + 1 < len(starts):
        n = s + tile - starts[index + 1]
        w[tile - n:] *= ramp(n)[::-1]
    return w


def tile_weights(ys: list[int], xs: list[int], th: int, tw: int, iy: int, ix: int) -> torch.Tensor:
    """2-D blending weights (th, tw) of the tile at grid position (iy, ix): outer product of the axis ramps."""
    return torch.from_numpy(np.outer(axis_weights(ys, th, iy), axis_weights(xs, tw, ix)))


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    text = str(exc).lower()
    return isinstance(exc, (oom, MemoryError)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


# --- per-frame accumulation -----------------------------------------------------------------------------------------
@dataclass
class _Canvas:
    """Weighted sums of tile outputs over one frame, divided by the summed weights at the end."""

    h: int
    w: int
    features: bool
    all_channels: bool
    image: Optional[torch.Tensor] = None
    maps: dict = field(default_factory=dict)
    weight: Optional[torch.Tensor] = None

    def add(self, out, y: int, x: int, wt: Optional[torch.Tensor]) -> None:
        """Add one tile's network output at (y, x) with weights ``wt`` (None: the tile is the whole frame)."""
        th, tw = out.image.shape[-2:]
        tiles = {"image": out.image[0].float()}
        if self.features:
            for name, t in (("local", out.local_features), ("global", out.global_features)):
                if t is not None:
                    t = t[0].float()
                    tiles[name] = t if self.all_channels else torch.linalg.vector_norm(t, dim=0)
            if out.attention is not None:
                tiles["attention"] = out.attention[0].float().mean(dim=0)
        for name, t in tiles.items():
            t = t.cpu()
            if wt is None:
                self._store(name, t)
                continue
            acc = self._acc(name, t)
            acc[..., y:y + th, x:x + tw] += t * wt
        if wt is not None:
            if self.weight is None:
                self.weight = torch.zeros(self.h, self.w)
            self.weight[y:y + th, x:x + tw] += wt

    def _store(self, name: str, t: torch.Tensor) -> None:
        if name == "image":
            self.image = t
        else:
            self.maps[name] = t

    def _acc(self, name: str, t: torch.Tensor) -> torch.Tensor:
        current = self.image if name == "image" else self.maps.get(name)
        if current is None:
            current = torch.zeros(t.shape[:-2] + (self.h, self.w))
            self._store(name, current)
        return current

    def result(self, h: int, w: int) -> dict[str, torch.Tensor]:
        """The blended maps cropped to ``h`` x ``w`` (tiles run on the frame padded to the network's grid)."""
        out = {"image": self.image, **self.maps}
        if self.weight is not None:  # the accumulators are ours: divide in place (no second frame-sized copy)
            out = {k: v.div_(self.weight)[..., :h, :w] for k, v in out.items()}
        return out


# --- the engine -----------------------------------------------------------------------------------------------------
