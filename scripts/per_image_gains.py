"""Per-image spread behind the mean PSNR gains: median, range and share of pictures improved on each
evaluation set, the per-picture change on nearly sharp input (0.5 px Gaussian), what sharp input comes back as
(PSNR of the output against the sharp picture itself: worst picture, and how many come back unchanged), and what
becomes of its white areas (clipped lights and skies: the mean change in grey levels inside them, worst picture).

Usage: python scripts/per_image_gains.py [--model lite|CKPT[@STRENGTH]] [--data-root data] [--tuning]
(--tuning: the tuning sets of scripts/make_eval.py instead)
"""
from __future__ import annotations

import argparse

import numpy as np
from evaluate import evaluation_sets, restorer_for, tuning_sets  # scripts/evaluate.py: the same sets and model specs
from scipy.ndimage import binary_erosion

from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.evaluation import nearly_sharp, psnr, psnr_gains
from napari_gldeblur.synthesis import to_uint8


def white_change(out: np.ndarray, sharp: np.ndarray, least: int = 100) -> float | None:
    """Mean change (8-bit grey levels) inside the white areas of ``sharp`` (every channel clipped, 2 px in from
    their edges), or None when they cover fewer than ``least`` pixels."""
    u8 = to_uint8(sharp).astype(np.int16)
    white = binary_erosion((u8 >= 254).all(-1), iterations=2)
    return float((to_uint8(out).astype(np.int16) - u8)[white].mean()) if white.sum() >= least else None


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
        sharp = [to_uint8(s).astype(np.float32) / 255 for _, s in pairs]  # the 8-bit picture a user would have
        outs = [restore(s) for s in sharp]
        changed = [(o, s) for o, s in zip(outs, sharp) if not np.array_equal(to_uint8(o), to_uint8(s))]
        whites = [w for w in (white_change(o, s) for o, s in zip(outs, sharp)) if w is not None]
        unchanged = 1 - len(changed) / len(sharp)
        worst = min((psnr(o, s) for o, s in changed), default=np.inf)
        print(f"{name}: gain mean {gain.mean():+.2f} median {np.median(gain):+.2f} range {gain.min():+.2f}.."
              f"{gain.max():+.2f}, {np.mean(gain > 0):.0%} improved | nearly sharp: mean {near.mean():+.2f},"
              f" median {np.median(near):+.2f}, {np.mean(near >= -0.5):.0%} within 0.5 dB | sharp: {unchanged:.0%}"
              f" unchanged, worst {worst:.1f} dB | white areas ({len(whites)} pictures): mean change"
              f" {np.mean(whites) if whites else 0:+.1f} grey levels, worst {min(whites, default=0):+.1f}")


if __name__ == "__main__":
    main()
