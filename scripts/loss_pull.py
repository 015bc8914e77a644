"""Which patches the per-image PSNR loss listens to: the share of its pull (each patch's 1 / (MSE + eps))
that goes to blurred patches (input under 33 dB) of a batch from the training stream, for several caps.

With the default cap of 50 dB, nearly sharp patches that the network already returns almost exactly take
nearly all of it, so the blur is barely what it learns; `psnr_cap` in a recipe lowers the cap.
Usage (from the repo root): python scripts/loss_pull.py [--model lite] [--recipe recipes/end2end.toml] [--n 48]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from napari_gldeblur.models import load_model
from napari_gldeblur.training import content_pool, load_recipe, online_data

BLURRED_BELOW_DB = 33.0


def pull_shares(blurred: np.ndarray, mse_out: np.ndarray, cap_db: float) -> tuple[float, float]:
    """(share of the loss's pull on the ``blurred`` patches, largest pull / median pull) at one cap."""
    pull = 1 / (mse_out + 10 ** (-cap_db / 10))
    return float(pull[blurred].sum() / pull.sum()), float(pull.max() / np.median(pull))


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lite", help="lite or a checkpoint")
    p.add_argument("--recipe", default="recipes/end2end.toml", help="the recipe whose stream to draw from")
    p.add_argument("--n", type=int, default=48, help="patches")
    p.add_argument("--caps", type=float, nargs="+", default=[50, 40, 35, 30])
    args = p.parse_args()

    config = load_recipe(args.recipe)
    stream, _ = online_data(config, "end2end", content_pool(config), seed=123, with_val=False)
    net = load_model(args.model).eval()
    x, y = stream.batch(args.n)
    out = torch.cat([net(x[i : i + 8]).image for i in range(0, args.n, 8)]).clamp(0, 1)
    mse_in = ((x - y) ** 2).mean(dim=(1, 2, 3)).numpy()
    mse_out = ((out - y) ** 2).mean(dim=(1, 2, 3)).numpy()
    blurred = mse_in > 10 ** (-BLURRED_BELOW_DB / 10)
    print(f"{args.n} patches of {config.patch} px, {blurred.mean():.0%} blurred (input under {BLURRED_BELOW_DB:g} dB)")
    for cap in args.caps:
        share, peak = pull_shares(blurred, mse_out, cap)
        print(f"cap {cap:g} dB: blurred patches draw {share:.1%} of the pull; largest / median pull {peak:.1f}")


if __name__ == "__main__":
    main()
