"""PSNR gain by kind and size of blur: camera shakes of 3-45 px and defocus disks of 1.5-8 px radius on held-out
crops (data/photos/eval and scikit-image's held-out pictures, 256 px), with camera noise and JPEG as the
evaluation sets have, saved in 8 bits. Says which blur a model undoes and which it leaves.

Usage (from the repo root): python scripts/gains_by_blur.py --model "bundled=lite@1" [--model "auto=lite@auto"]
  [--count 16]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from evaluate import restorer_for  # scripts/evaluate.py: the same model specs
from make_eval import sources  # scripts/make_eval.py: the evaluation sets' content

from napari_gldeblur import degradations as dg
from napari_gldeblur.datasets import downscaled_crop
from napari_gldeblur.evaluation import as_saved, psnr

BLURS = [("shake", v) for v in (3, 6, 10, 15, 25, 35, 45)] + [("defocus", v) for v in (1.5, 3, 5, 8)]
SEED = 12_345  # kernels and crops; the training stream never draws from it


def pairs(pool: list[np.ndarray], family: str, size: float, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (blurry, sharp) crops under fresh kernels of one family and size."""
    out = []
    for i in range(count):
        rng = np.random.default_rng([SEED, int(size * 10), i])
        kernel = dg.shake_kernel(rng, size) if family == "shake" else dg.defocus_kernel(size)
        pad = kernel.shape[0] // 2 + 1
        crop = downscaled_crop(pool[i % len(pool)], 256 + 2 * pad, rng, 0.5).astype(np.float32)
        blurred = dg.blur(dg.to_linear(crop), kernel)[pad:-pad, pad:-pad]
        out.append((as_saved(dg.camera(blurred, rng)), crop[pad:-pad, pad:-pad]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="NAME=lite|CKPT[@STRENGTH] (default strength 1)")
    p.add_argument("--count", type=int, default=16)
    args = p.parse_args()
    models = {name: restorer_for(spec) for name, _, spec in (m.partition("=") for m in args.model)}
    pool = sources("eval", Path("data/photos/eval"))
    print("| blur | blurry input | " + " | ".join(models) + " |\n|---|---|" + "---|" * len(models))
    for family, size in BLURS:
        data = pairs(pool, family, size, args.count)
        base = [psnr(x, s) for x, s in data]
        gains = [np.mean([psnr(restore(x), s) - b for (x, s), b in zip(data, base)]) for restore in models.values()]
        label = f"shake {size:g} px" if family == "shake" else f"defocus, radius {size:g} px"
        print(f"| {label} | {np.mean(base):.2f} dB | " + " | ".join(f"{g:+.2f}" for g in gains) + " |", flush=True)


if __name__ == "__main__":
    main()
