"""Measures test-time self-ensemble (8 flips/rotations, outputs averaged) against one pass, on the tuning set.

A trial, not a product feature: it costs 8x the time. Run from the repository root after scripts/make_data.sh:
    python scripts/self_ensemble_trial.py [MODEL] [PAIRS_PER_SET]
"""
import os
import sys

import numpy as np
from skimage.io import imread

from napari_gldeblur.evaluation import model_restorer, psnr

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
    single, ensemble = [], []
    for n in sorted(os.listdir(f"{d}/blur"))[:count]:
        b = imread(f"{d}/blur/{n}").astype(np.float32) / 255
        s = imread(f"{d}/sharp/{n}").astype(np.float32) / 255
        single.append(psnr(restore(b), s) - psnr(b, s))
        ensemble.append(psnr(self_ensemble(b), s) - psnr(b, s))
    print(f"{d}: mean gain one pass {np.mean(single):+.3f} dB, self-ensemble x8 {np.mean(ensemble):+.3f} dB")
