#!/usr/bin/env bash
# The paper's Table 1 on our data: LB-Net, DB-Net and DBAF-Net at the `lite` size with the same budget of
# optimizer steps (3 x STEPS, same batch/patch/lr): LB and DB train end to end (eq. 4), DBAF trains its three
# phases of STEPS each (global eq. 2, local eq. 3, joint eq. 4). Resumable. Then: scripts/evaluate.py.
set -euo pipefail
DATA=${1:-data}
STEPS=${STEPS:-400}
OUT=${OUT:-runs/ablation}
mkdir -p "$OUT"
[ -d "$DATA/train/dynamic" ] || scripts/make_data.sh "$DATA"
common=(--batch 8 --patch 96 --lr 1e-3 --val-every "${VAL_EVERY:-200}" --checkpoint-every 100 --data "$DATA/train/dynamic")
gldeblur train --model scratch:lite --variant LB --phase end2end --steps $((3 * STEPS)) "${common[@]}" -o "$OUT/LB.pt"
gldeblur train --model scratch:lite --variant DB --phase end2end --steps $((3 * STEPS)) "${common[@]}" -o "$OUT/DB.pt"
gldeblur train --model scratch:lite --variant DBAF --phase all --steps "$STEPS" --global-data "$DATA/train/global" \
  "${common[@]}" -o "$OUT/DBAF.pt"
