"""Copy a trained checkpoint into the package as the bundled model: weights, config and metrics only (no
optimizer state or training weights: a recipe checkpoint's "model" is its EMA), with its SHA-256 beside it.

Usage (from the repo root): python scripts/bundle_weights.py CKPT [--name lite]"""
from __future__ import annotations

import argparse

from napari_gldeblur import models

KEEP = ("config", "train_config", "phases", "phase", "phase_index", "step", "metrics", "model", "auto_strength",
        "auto_strength_measure")
# "model" is the EMA; "auto_strength" (and its measure) the gate scripts/tune_auto_strength.py --write tuned for it


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--name", default="lite")
    args = p.parse_args()
    ckpt = models.read_checkpoint(args.checkpoint)
    models.model_from_checkpoint(ckpt, args.checkpoint)  # refuse anything that does not build
    bundled = {k: ckpt[k] for k in KEEP if k in ckpt}
    target = models.WEIGHTS_DIR / f"{args.name}.pt"
    models.write_checkpoint(target, bundled)
    digest = models.sha256(target)
    target.with_suffix(".sha256").write_text(f"{digest}  {target.name}\n")
    print(f"{target} ({target.stat().st_size / 1e6:.2f} MB) sha256 {digest}")


if __name__ == "__main__":
    main()
