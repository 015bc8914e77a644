#!/usr/bin/env bash
# Synthesises the training and held-out evaluation sets used for the bundled model (see docs/MODEL_CARD.md).
# Training uses scikit-image's bundled images (TRAIN_IMAGES) + procedural content; held-out sets use the
# images in synthesis.HELD_OUT only, with other seeds. Nothing from ../shared/data is used.
set -euo pipefail
OUT=${1:-data}
gldeblur synth -o "$OUT/train/global" --kind global --count 600 --size 256 --seed 1 &
gldeblur synth -o "$OUT/train/dynamic" --kind dynamic --count 1200 --size 256 --seed 2
wait
gldeblur synth -o "$OUT/heldout/global" --kind global --count 60 --size 256 --seed 101 --held-out --procedural 0.2
gldeblur synth -o "$OUT/heldout/dynamic" --kind dynamic --count 60 --size 256 --seed 102 --held-out --procedural 0.2
