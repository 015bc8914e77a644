#!/usr/bin/env bash
# The paper's fixed datasets, for the Table 1 ablation (scripts/ablation.sh): the global blur dataset (600 pairs
# under the 56-kernel bank, kernel seed 1, as section 4.1) and 1200 dynamic-scene pairs, from scikit-image's
# training pictures. The bundled model trains on the online stream instead (recipes/bundled.toml).
set -euo pipefail
OUT=${1:-data}
gldeblur synth -o "$OUT/train/global" --kind global --count 600 --size 256 --seed 1 &
gldeblur synth -o "$OUT/train/dynamic" --kind dynamic --count 1200 --size 256 --seed 2
wait
