"""Measures test-time self-ensemble (8 flips/rotations, outputs averaged) against one pass, on the tuning set.

A trial, not a product feature: it costs 8x the time. Run from the repository root after scripts/make_data.sh:
    python scripts/self_ensemble_trial.py [MODEL] [PAIRS_PER_SET]
"""
import sys

import numpy as np

from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.evaluation import model_restorer, psnr_gains

model = sys.argv[1] if len(sys.argv) > 1 else "lite"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 16
restore = model_restorer(model, device="cpu", precision="fp32")


def self_ensemble(blur: np.ndarray) -> np.ndarray:
    outs = []
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(blur, k)[:, ::-1] if flip else np.rot90(blur, k)
            y = restore(np.ascontiguousarray(x))
            outs.append(np.rot90(y[:, ::-1] if flip else y, -k))
    return np.mean(outs, 0)


for d in ("data/tuning/global", "data/tuning/dynamic"):
    pairs = load_pairs([d])[:count]
    single, ensemble = np.mean(psnr_gains(restore, pairs)), np.mean(psnr_gains(self_ensemble, pairs))
    print(f"{d}: mean gain one pass {single:+.3f} dB, self-ensemble x8 {ensemble:+.3f} dB")
