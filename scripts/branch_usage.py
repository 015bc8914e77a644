"""How much each branch gives the fused output: mean PSNR gain over the blurry input at strength 1, as the
network is, with Ψ_G replaced by its per-channel mean over the picture (the global branch's spatial
information removed; M sees the same replacement), and with the mask M fixed at 1 (eq. 1 as a plain sum).

A global branch whose removal costs nothing is frozen dead weight that still costs half of every forward pass.
Usage (from the repo root): python scripts/branch_usage.py [--model lite] [--data data/eval/uniform] [--n 30]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from napari_gldeblur.datasets import load_pairs, to_tensor
from napari_gldeblur.evaluation import psnr
from napari_gldeblur.models import load_model
from napari_gldeblur.network import DBAFNet


@torch.no_grad()
def ablated_outputs(net: DBAFNet, image: np.ndarray) -> dict[str, np.ndarray]:
    """The restored image as the network computes it and with one part of eq. (1) taken away."""
    x = to_tensor([image])
    psi_l, psi_g = net.local_branch.features(x), net.global_branch.features(x)
    flat_g = psi_g.mean(dim=(2, 3), keepdim=True).expand_as(psi_g)
    fused = {
        "as trained": net.fuse(x, psi_l, psi_g)[0],  # Ψ_B = Ψ_L ⊙ M(x, Ψ_L, Ψ_G) + Ψ_G   (1)
        "Ψ_G -> its mean": psi_l * net.attention(x, psi_l, flat_g) + flat_g,
        "M = 1": psi_l + psi_g,
    }
    return {k: net.reconstruction(x, v)[0].permute(1, 2, 0).clamp(0, 1).numpy() for k, v in fused.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="lite or a checkpoint (repeatable)")
    p.add_argument("--data", default="data/eval/uniform")
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    pairs = load_pairs([args.data])[: args.n]
    for model in args.model or ["lite"]:
        net = load_model(model)
        if net.attention is None:
            raise SystemExit(f"{model} is a {net.config.variant}-Net: it has no branch attention to ablate")
        gains: dict[str, list[float]] = {}
        for blur, sharp in pairs:
            for name, out in ablated_outputs(net, blur).items():
                gains.setdefault(name, []).append(psnr(out, sharp) - psnr(blur, sharp))
        print(f"{model} (n={len(pairs)}): " + ", ".join(f"{k} {np.mean(v):+.2f} dB" for k, v in gains.items()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
