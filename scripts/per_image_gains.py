"""Per-image spread behind the mean PSNR gains: median, range and share of pictures improved on each
evaluation set, and the per-picture change on nearly sharp input (0.5 px Gaussian).

Usage: python scripts/per_image_gains.py [--model lite|CKPT[@STRENGTH]] [--data-root data] [--tuning]
(--tuning: the tuning sets of scripts/make_data.sh instead, which include soft content)
"""
from __future__ import annotations

import argparse

import numpy as np
from evaluate import (evaluation_sets, restorer_for,  # scripts/evaluate.py: the same sets and model specs
                      tuning_sets)

from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.evaluation import nearly_sharp, psnr_gains


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="lite")
    p.add_argument("--data-root", default="data")
    p.add_argument("--tuning", action="store_true")
    args = p.parse_args()
    restore = restorer_for(args.model)
    sets = tuning_sets(args.data_root) if args.tuning else evaluation_sets(args.data_root)
    for name, roots in sets.items():
        pairs = load_pairs(roots)
        gain = np.array(psnr_gains(restore, pairs))
        near = np.array(psnr_gains(restore, [(nearly_sharp(s), s) for _, s in pairs]))
        print(f"{name}: gain mean {gain.mean():+.2f} median {np.median(gain):+.2f} range {gain.min():+.2f}.."
              f"{gain.max():+.2f}, {np.mean(gain > 0):.0%} improved | nearly sharp: mean {near.mean():+.2f},"
              f" median {np.median(near):+.2f}, {np.mean(near >= -0.5):.0%} within 0.5 dB")


if __name__ == "__main__":
    main()
