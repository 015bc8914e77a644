"""PSNR gain of each branch's own image (eqs. 2 and 3) and of the whole network (eq. 4) on pair folders.

Shows how much each part restores on its own: phase joint trains neither branch's image head, so after it only
the frozen global branch's image still means something. fp32, full pictures cropped to a multiple of 4.

Usage (from scripts/): python branch_gains.py MODEL [--data-root ../data] [--limit 24]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from evaluate import tuning_sets  # scripts/evaluate.py

from napari_gldeblur.datasets import load_pairs
from napari_gldeblur.evaluation import psnr
from napari_gldeblur.models import load_model
from napari_gldeblur.network import MULTIPLE
from napari_gldeblur.training import restore


PARTS = {"global branch": "global", "local branch": "local", "network": "joint"}  # name -> phase whose output it is


def branch_gains(net: torch.nn.Module, blur: np.ndarray, sharp: np.ndarray) -> dict[str, float]:
    """Gain over the blurry input of the global branch, the local branch and the whole network, in dB."""
    h, w = (s - s % MULTIPLE for s in blur.shape[:2])  # only the whole network pads to a multiple itself
    blur, sharp = blur[:h, :w], sharp[:h, :w]
    base = psnr(blur, sharp)
    return {name: psnr(restore(net, blur, phase), sharp) - base for name, phase in PARTS.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data-root", default="data")
    p.add_argument("--limit", type=int, default=24, help="first N pairs of each set")
    args = p.parse_args()
    net = load_model(args.model).eval()
    for name, roots in tuning_sets(args.data_root).items():
        if "soft" in name:
            continue  # the branches only matter on blur kinds they were trained for
        gains = [branch_gains(net, b, s) for b, s in load_pairs(roots)[: args.limit]]
        print(f"{args.model} {name}: " + ", ".join(f"{k} {np.mean([g[k] for g in gains]):+.2f}" for k in gains[0]))


if __name__ == "__main__":
    main()
