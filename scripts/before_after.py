"""Before/after pictures for the README: real blurry photos from ../shared/data/real_blur_no_gt (see its
SOURCES.txt) and one GoPro frame pair, deblurred with the bundled model; a crop of each, side by side.

Usage: python scripts/before_after.py [--model lite] [--out docs/images]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.io import imsave

from napari_gldeblur import Deblurrer
from napari_gldeblur.imageio import read_image_file

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PHOTOS = ["real_blur_no_gt/SelfDeblur_house.jpg", "real_blur_no_gt/SRNDeblur_4c6.png",
          "real_blur_no_gt/gopro_test_GOPR0384_11_00-000001.png"]


def crop_centre(img: np.ndarray, size: int = 360) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y : y + s, x : x + s]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="lite")
    p.add_argument("--out", default="docs/images")
    args = p.parse_args()
    d = Deblurrer(model=args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for rel in PHOTOS:
        img = read_image_file(SHARED / rel)[..., :3]
        res = d(img, strength=1.0)  # the network's whole change, as the pictures show it
        gap = np.full((crop_centre(img).shape[0], 8, 3), 255, np.uint8)
        panel = np.concatenate([crop_centre(img), gap, crop_centre(res.image)], axis=1)
        name = out / f"before_after_{Path(rel).stem}.png"
        imsave(name, panel, check_contrast=False)
        print(name)


if __name__ == "__main__":
    main()
