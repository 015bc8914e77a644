"""Make the evaluation and tuning sets (never training data): data/eval/{uniform,dynamic} and
data/tuning/{uniform,dynamic,smooth}, each NAME/{blur,sharp}/*.png at 256 x 256.

Evaluation content: the held-out Debian photographs (data/photos/eval, scripts/fetch_photos.py) and the held-out
scikit-image pictures (synthesis.HELD_OUT). Tuning content (for choosing settings such as auto strength, never
for training the network): scikit-image's stereo_motorcycle views, used nowhere else, and the training
photographs (data/photos/train), whose smooth skies and walls are the pictures a gate must leave alone; the
tuning set ``smooth`` holds the smoothest part of each (``smoothest_window``): sky, walls, out-of-focus
backgrounds, whose tiny fine detail makes any change of the network large against it. Kernels come fresh from the
families (degradations.BLUR_MIX: blur only; sharp and nearly sharp input are measured separately) under seeds
the training never uses.
Usage (from the repo root): python scripts/make_eval.py [--out data] [--count N] [--only eval|tuning]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import skimage.data
from scipy import ndimage

from napari_gldeblur import degradations as dg
from napari_gldeblur.datasets import DegradationStream, read_image
from napari_gldeblur.imageio import list_images
from napari_gldeblur.synthesis import HELD_OUT, as_rgb_float, skimage_images, write_pairs

SEEDS = {"eval": 90_001, "tuning": 80_001}
# Pairs per set. The gate must keep every nearly sharp tuning picture unharmed, so its threshold is the largest
# measure among them: three times the evaluation count puts it further into the tail held-out pictures reach.
COUNTS = {"eval": 60, "tuning": 180}


def photographs(folder: Path) -> list[np.ndarray]:
    files = list_images(folder) if folder.is_dir() else []
    if not files:
        raise SystemExit(f"no photographs in {folder}: run python scripts/fetch_photos.py first")
    return [read_image(f) for f in files]


def sources(which: str, photos: Path) -> list[np.ndarray]:
    if which == "tuning":
        left, right, _ = skimage.data.stereo_motorcycle()
        return [as_rgb_float(left), as_rgb_float(right)] + photographs(photos.parent / "train")
    return photographs(photos) + skimage_images(HELD_OUT)


def smoothest_window(picture: np.ndarray, side: int = 384) -> np.ndarray:
    """The ``side`` x ``side`` window of ``picture`` with the least fine detail (sky, a wall, an out-of-focus
    background), the measure auto strength divides by (``strength.fine_detail``, without 8-bit rounding)."""
    grey = picture.mean(-1)
    detail = ndimage.uniform_filter(np.abs(grey - ndimage.gaussian_filter(grey, 1.0)), side, mode="constant")
    half = side // 2
    inner = detail[half : grey.shape[0] - side + half + 1, half : grey.shape[1] - side + half + 1]
    y, x = np.unravel_index(np.argmin(inner), inner.shape)
    return picture[y : y + side, x : x + side]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data")
    p.add_argument("--photos", default="data/photos/eval")
    p.add_argument("--count", type=int, default=None, help="pairs per set (default: COUNTS)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--only", choices=list(SEEDS), default=None, help="make only these sets")
    args = p.parse_args()
    for which, seed in SEEDS.items():
        if args.only not in (None, which):
            continue
        pool = sources(which, Path(args.photos))
        per_set = args.count or COUNTS[which]
        sets = [("uniform", pool, "uniform", per_set), ("dynamic", pool, "dynamic", per_set)]
        if which == "tuning":
            sets.append(("smooth", [smoothest_window(p) for p in pool], "uniform", per_set // 2))
        for i, (name, content, kind, count) in enumerate(sets):
            stream = DegradationStream(content, args.size, kind, seed, dead_leaves=0.0, mix=dg.BLUR_MIX)
            target = Path(args.out) / which / name
            n = write_pairs(target, iter(stream.fixed_pairs(count, args.size, seed + i)))
            print(f"{target}: {n} pairs")


if __name__ == "__main__":
    main()
