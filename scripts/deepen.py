"""Give a trained checkpoint more residual blocks per scale without changing what it computes
(``network.deepen``: the new blocks start as the identity). Writes a checkpoint to fine-tune from.
Usage: python scripts/deepen.py FROM TO --blocks 1,1,5   (fine to coarse)
"""
from __future__ import annotations

import argparse

import torch

from napari_gldeblur import models
from napari_gldeblur.network import count_parameters, deepen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--blocks", required=True, help="blocks per scale, fine to coarse, e.g. 1,1,5")
    args = p.parse_args()
    ckpt = models.read_checkpoint(args.source)
    net = models.model_from_checkpoint(ckpt, args.source).eval()
    deep = deepen(net, tuple(int(b) for b in args.blocks.split(","))).eval()
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        diff = (deep(x).image - net(x).image).abs().max().item()
    assert diff == 0.0, f"the deepened network computes something else (max difference {diff})"
    out = {k: v for k, v in ckpt.items() if k not in ("model", "config", "optimizer")}
    out.update(config=deep.config.as_dict(), model=deep.state_dict(), optimizer=None)
    models.write_checkpoint(args.target, out)
    print(f"{args.target}: {deep.config}, {count_parameters(deep):,} parameters, same output")


if __name__ == "__main__":
    main()
