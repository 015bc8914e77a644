"""Does the size of the network's change tell a picture it helps from one it harms? For every blurry and
nearly sharp (0.5 px Gaussian) input of the four evaluation sets: the PSNR gain at strength 1 and 0.5 and
the 99th percentile of |output - input|; prints per-set medians and how well that percentile ranks the
pictures that gain above those that lose (AUC, 0.5 = no better than chance). A lead for an automatic strength.

Usage (from scripts/): python change_vs_gain.py [--model lite|CKPT] [--data-root ../data]
"""
from __future__ import annotations

import argparse

import numpy as np
from evaluate import evaluation_sets  # scripts/evaluate.py: the same four sets

from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.evaluation import model_restorer, nearly_sharp, psnr


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="lite")
    p.add_argument("--data-root", default="data")
    args = p.parse_args()
    restore, restore_half = model_restorer(args.model), model_restorer(args.model, strength=0.5)
    rows = []  # (set, kind, gain at strength 1, gain at 0.5, p99 change in grey levels)
    for name, roots in evaluation_sets(args.data_root).items():
        for blur, sharp in load_pairs(roots):
            for kind, x in (("blurry", blur), ("nearly sharp", nearly_sharp(sharp))):
                out = restore(x)
                half = restore_half(x)  # the engine's own strength, not a re-implementation of it
                base = psnr(x, sharp)
                p99 = float(np.percentile(np.abs(out - x), 99) * 255)
                rows.append((name, kind, psnr(out, sharp) - base, psnr(half, sharp) - base, p99))
        for kind in ("blurry", "nearly sharp"):
            r = np.array([row[2:] for row in rows if row[0] == name and row[1] == kind])
            print(f"{name}, {kind}: gain {r[:, 0].mean():+.2f} (strength 0.5: {r[:, 1].mean():+.2f}), "
                  f"median p99 change {np.median(r[:, 2]):.1f} grey levels")
    r = np.array([row[2:] for row in rows])
    blurry = np.array([row[1] == "blurry" for row in rows])
    print(f"AUC of the p99 change for 'gains at strength 1': all inputs {auc(r[:, 2], r[:, 0] > 0):.2f}, "
          f"blurry {auc(r[blurry, 2], r[blurry, 0] > 0):.2f}, nearly sharp {auc(r[~blurry, 2], r[~blurry, 0] > 0):.2f}")


if __name__ == "__main__":
    main()
