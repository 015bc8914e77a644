"""Effective receptive field of a model: the radius around a pixel holding 95% of the input gradient of its
correction (output - input), averaged over pictures of the evaluation set (Luo et al., NeurIPS 2016).

A network that undoes a 45 px shake has to look ~20 px or more away; local sharpening needs a few pixels.
Usage (from the repo root): python scripts/receptive_field.py [--model lite] [--data data/eval/uniform] [--n 8]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from napari_gldeblur.datasets import load_pairs, to_tensor
from napari_gldeblur.models import load_model
from napari_gldeblur.network import DBAFNet


def effective_radius(net: DBAFNet, image: np.ndarray, share: float = 0.95) -> float:
    """Radius (px) of the disk around the centre that holds ``share`` of |d correction(centre) / d input|."""
    x = to_tensor([image]).requires_grad_(True)
    out = net(x).image
    h, w = image.shape[:2]
    (out - x)[0, :, h // 2, w // 2].sum().backward()
    g = x.grad[0].abs().sum(0).numpy()
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h // 2, xx - w // 2).ravel()
    order = np.argsort(r)
    mass = np.cumsum(g.ravel()[order])
    return float(r[order][np.searchsorted(mass, share * mass[-1])])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="lite or a checkpoint (repeatable)")
    p.add_argument("--data", default="data/eval/uniform")
    p.add_argument("--n", type=int, default=8)
    args = p.parse_args()
    pairs = load_pairs([args.data])[: args.n]
    for model in args.model or ["lite"]:
        net = load_model(model)
        radii = [effective_radius(net, blur) for blur, _ in pairs]
        print(f"{model}: effective radius (95% of the gradient) {np.mean(radii):.1f} px "
              f"(median {np.median(radii):.1f}, n={len(radii)}), blocks {net.config.blocks}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
