#!/usr/bin/env bash
# One call on a lent GPU machine, ending within BUDGET seconds (default 560): resume a recipe (RECIPE, default
# the running one, recipes/leaves.toml) on CUDA with a GPU-sized batch (or, once it has finished,
# continue from it in a new run of its last phase), then a short CUDA inference benchmark.
# Needs, carried from this checkout: data/photos (python scripts/fetch_photos.py, ~10 MB) and the recipe's
# checkpoint runs/NAME.pt (NAME: the recipe's file name; checkpoints/NAME.pt is used when runs/ has none; the
# run starts from the recipe's warm start when neither exists).
# Writes $OUT/NAME.pt (the resumed checkpoint: copy it back to runs/NAME.pt), train.log, inference.md.
# Usage: OUT=gpu_out benchmarks/gpu_check.sh      (DEVICE=cpu BUDGET=120 BATCH=4: a dry run on a CPU)
set -uo pipefail
T0=$(date +%s)
BUDGET=${BUDGET:-560}
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-64}
RECIPE=${RECIPE:-recipes/leaves.toml}
NAME=$(basename "$RECIPE" .toml)
CKPT=runs/$NAME.pt
[ -f "$CKPT" ] || CKPT=checkpoints/$NAME.pt
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}  # the online stream is numpy work: every spare core cuts patches
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
left() { echo $((T0 + BUDGET - $(date +%s))); }
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null; nproc
  $PY -c "import torch, numpy, skimage, sys; print(sys.version.split()[0], torch.__version__, numpy.__version__, skimage.__version__)"
} > "$OUT/train.log" 2>&1
# A run that has not finished resumes; a finished one (its last phase at its last step) is the warm start of a
# new run of that phase with the same recipe, so a GPU never idles on a completed checkpoint.
START=()
if [ -f "$CKPT" ]; then
  LAST=$($PY -c "from napari_gldeblur import models, training; c = models.read_checkpoint('$CKPT')
done = c['phase_index'] == len(c['phases']) - 1 and c['step'] >= training.per_phase(c['train_config']['steps'], c['phase'], 'steps')
print(c['phase'] if done else '')")
  if [ -n "$LAST" ]; then
    START=(--model "$CKPT" --phase "$LAST")
    echo "$CKPT is a finished run: a new run of its last phase starts from it" >> "$OUT/train.log"
  else
    cp "$CKPT" "$OUT/$NAME.pt"
  fi
fi

# 1. the recipe until 70 s before the budget (it checkpoints every 100 steps here; a kill loses less)
timeout $(( $(left) - 70 )) $PY -m napari_gldeblur.cli train --recipe "$RECIPE" --device "$DEVICE" \
  --batch "$BATCH" --workers "$WORKERS" --checkpoint-every 100 "${START[@]}" -o "$OUT/$NAME.pt" >> "$OUT/train.log" 2>&1
echo "train exit $? at $(( $(date +%s) - T0 )) s" >> "$OUT/train.log"

# 2. inference speed on CUDA with the resumed weights
timeout $(( $(left) - 5 )) $PY benchmarks/bench_inference.py --device "$DEVICE" --skip-paper --skip-4k \
  > "$OUT/inference.md" 2>&1
echo "done at $(( $(date +%s) - T0 )) s" >> "$OUT/train.log"
