"""What a blur kernel's placement costs: the PSNR gain of a Wiener filter that knows the exact shake kernel, when
the sharp target was made with the kernel centred on its centre of mass (as `degradations` makes them) and when
it was made with the same kernel centred on the bounding box of its streak (as before 049b606). The filter uses
the kernel centred on its centre of mass: the placement a blurred picture shows, since a streak's centre of
mass is where the sharp edge was. Held-out content (data/photos/eval, scikit-image's held-out pictures),
256 px crops, noise-free 8-bit input.

Usage (from the repo root): python scripts/kernel_placement.py [--count 16] [--lengths 6 15 25 35 45]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from make_eval import sources  # scripts/make_eval.py: the evaluation sets' content
from scipy import ndimage

from napari_gldeblur import degradations as dg
from napari_gldeblur.datasets import downscaled_crop
from napari_gldeblur.evaluation import psnr, wiener_deconvolve
from napari_gldeblur.synthesis import to_uint8


def box_shift(kernel: np.ndarray) -> tuple[float, float]:
    """How far (y, x) the kernel moves when the bounding box of its support, not its centre of mass, is centred."""
    ys, xs = np.nonzero(kernel > 1e-6 * kernel.max())
    centre = (kernel.shape[0] - 1) / 2
    return centre - (ys.min() + ys.max()) / 2, centre - (xs.min() + xs.max()) / 2


def bounding_box_centred(kernel: np.ndarray) -> np.ndarray:
    """The same kernel moved so that the bounding box of its support, not its centre of mass, is centred."""
    shift = box_shift(kernel)
    pad = int(np.ceil(max(map(abs, shift)))) + 1
    moved = np.clip(ndimage.shift(np.pad(kernel, pad), shift, order=1), 0, None)
    return (moved / moved.sum()).astype(np.float32)


def gain(pool: list[np.ndarray], kernel: np.ndarray, target_kernel: np.ndarray, i: int) -> float:
    """Wiener gain (dB) with ``kernel`` on a crop blurred by ``target_kernel``."""
    pad = max(kernel.shape[0], target_kernel.shape[0]) // 2 + 1
    crop = downscaled_crop(pool[i % len(pool)], 256 + 2 * pad, np.random.default_rng([5, i]), 0.5).astype(np.float32)
    sharp = crop[pad:-pad, pad:-pad]
    blurred = dg.blur(dg.to_linear(crop), target_kernel)[pad:-pad, pad:-pad]
    x = to_uint8(dg.camera(blurred, np.random.default_rng(i), clean=True)).astype(np.float32) / 255
    return psnr(np.clip(wiener_deconvolve(x, kernel, 0.01), 0, 1), sharp) - psnr(x, sharp)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--lengths", type=float, nargs="+", default=[6, 15, 25, 35, 45])
    args = p.parse_args()
    pool = sources("eval", Path("data/photos/eval"))
    print("| shake length | shift between the two centres (median) | centre-of-mass targets | bounding-box targets |\n"
          "|---|---|---|---|")
    for length in args.lengths:
        kernels = [dg.shake_kernel(np.random.default_rng([12345, int(length), i]), length) for i in range(args.count)]
        com = [gain(pool, k, k, i) for i, k in enumerate(kernels)]
        box = [gain(pool, k, bounding_box_centred(k), i) for i, k in enumerate(kernels)]
        shift = np.median([np.hypot(*box_shift(k)) for k in kernels])
        print(f"| {length:g} px | {shift:.2f} px | {np.mean(com):+.2f} dB | {np.mean(box):+.2f} dB |", flush=True)


if __name__ == "__main__":
    main()
