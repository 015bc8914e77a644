"""Weighted average of the weights of checkpoints with one config (a "model soup"), written as a checkpoint.

    python scripts/average_weights.py runs/soup.pt 3:runs/lite_dbaf_joint5.pt 7:runs/lite_dbaf_joint6.pt

Used for the weight-averaging trial in docs/MODEL_CARD.md (not shipped).
"""
from __future__ import annotations

import sys

from napari_gldeblur import models


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, parts = argv[0], [a.split(":", 1) for a in argv[1:]]
    weights = [float(w) for w, _ in parts]
    ckpts = [models.read_checkpoint(path) for _, path in parts]
    if any(c["config"] != ckpts[0]["config"] for c in ckpts):
        print("error: the checkpoints have different network configs", file=sys.stderr)
        return 1
    total = sum(weights)
    avg = {k: sum(w * c["model"][k].float() for w, c in zip(weights, ckpts)) / total for k in ckpts[0]["model"]}
    models.write_checkpoint(out, {"config": ckpts[0]["config"], "model": avg})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
