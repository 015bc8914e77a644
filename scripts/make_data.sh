#!/usr/bin/env bash
# Synthesises the training and held-out evaluation sets used for the bundled model (see docs/MODEL_CARD.md).
# Training uses scikit-image's bundled images (synthesis.TRAIN_IMAGES) + procedural content; held-out sets
# use only synthesis.HELD_OUT images (+ procedural content from other seeds). Nothing from ../shared/data.
# All global-blur sets use the same 56-kernel bank (kernel seed 1), as the paper's global blur dataset
# does; heldout/global_unseen_kernels uses another bank as a harder test.
set -euo pipefail
OUT=${1:-data}
# stage 1 (the three phases)
gldeblur synth -o "$OUT/train/global" --kind global --count 600 --size 256 --seed 1 &
gldeblur synth -o "$OUT/train/dynamic" --kind dynamic --count 1200 --size 256 --seed 2
wait
# stage 2 (longer phase joint): the same pictures with scale/colour jitter, new crops and objects
gldeblur synth -o "$OUT/train_aug/global" --kind global --count 600 --size 256 --seed 3 --kernel-seed 1 --augment &
gldeblur synth -o "$OUT/train_aug/dynamic" --kind dynamic --count 1200 --size 256 --seed 4 --augment
wait
gldeblur synth -o "$OUT/train_aug/sharp" --kind sharp --count 300 --size 256 --seed 5 --augment
# held-out evaluation sets
gldeblur synth -o "$OUT/heldout/global" --kind global --count 60 --size 256 --seed 103 --kernel-seed 1 --held-out --procedural 0.2
gldeblur synth -o "$OUT/heldout/global_unseen_kernels" --kind global --count 60 --size 256 --seed 101 --held-out --procedural 0.2
gldeblur synth -o "$OUT/heldout/dynamic" --kind dynamic --count 60 --size 256 --seed 102 --held-out --procedural 0.2
# tuning set for the automatic Deblur strength (scripts/tune_auto_strength.py): a real photograph that is in
# neither the training nor the held-out sets (scikit-image's stereo_motorcycle, both views) + procedural content
mkdir -p "$OUT/tuning_src"
python -c "import sys, skimage.data, skimage.io; l, r, _ = skimage.data.stereo_motorcycle(); skimage.io.imsave(sys.argv[1] + '/motorcycle_left.png', l); skimage.io.imsave(sys.argv[1] + '/motorcycle_right.png', r)" "$OUT/tuning_src"
gldeblur synth "$OUT/tuning_src" -o "$OUT/tuning/global" --kind global --count 80 --size 256 --seed 201 --kernel-seed 1 --augment --procedural 0.2 &
gldeblur synth "$OUT/tuning_src" -o "$OUT/tuning/dynamic" --kind dynamic --count 80 --size 256 --seed 202 --augment --procedural 0.2
wait
# soft content for the tuning set (what stage 6 of training adds): the same sources made soft (--kind soft),
# then blurred slightly or by a dynamic scene; soft footage is where the network over-sharpens
gldeblur synth "$OUT/tuning_src" -o "$OUT/tuning_soft_src" --kind soft --count 80 --size 256 --seed 203 --augment --procedural 0.2
gldeblur synth "$OUT/tuning_soft_src/sharp" -o "$OUT/tuning/softblur_mild" --kind mild --count 80 --size 256 --seed 204 --procedural 0 &
gldeblur synth "$OUT/tuning_soft_src/sharp" -o "$OUT/tuning/softblur_dynamic" --kind dynamic --count 80 --size 256 --seed 205 --procedural 0
wait
