#!/usr/bin/env bash
# Everything a lent GPU machine is for, in one call that ends within BUDGET seconds (default 560):
#   1. the inference benchmark on CUDA (alone on the machine, so its timings are clean);
#   2. the tests of the Qt-free core, CUDA tests included (napari is not installed there), while
#   3. the stage 7 training data is synthesised on the spare cores (chunked: one folder per process);
#   4. the training benchmark, which sizes step 5 to the time left;
#   5. a GPU training trial: phase joint from stage 6 on stage 7's data, batch 64 x 128^2, until the budget.
# Writes at most 8 files to $OUT (default gpu_out/). Usage: OUT=... benchmarks/gpu_check.sh
set -uo pipefail
T0=$(date +%s)
BUDGET=${BUDGET:-560}
OUT=${OUT:-gpu_out}
DATA=${DATA:-/tmp/gldeblur_data}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu SHRINK=50 BUDGET=200: a dry run of the whole script on a CPU
SHRINK=${SHRINK:-1}  # divides every synthesised set's size
mkdir -p "$OUT" "$DATA"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
left() { echo $((T0 + BUDGET - $(date +%s))); }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  $PY -c "import torch, numpy, skimage, sys; print(sys.version.split()[0], torch.__version__, numpy.__version__, skimage.__version__)"
} > "$OUT/bench_inference.md" 2>&1

# 1. inference benchmark
timeout 150 $PY benchmarks/bench_inference.py ${BENCH_ARGS:-} --device "$DEVICE" --json "$OUT/inference_cuda.json" \
  >> "$OUT/bench_inference.md" 2>&1
echo "benchmark done at $(( $(date +%s) - T0 )) s" >> "$OUT/bench_inference.md"

# 3. data: stage 7's sets (scripts/train_bundled.sh), each split into chunks with their own seeds
synth_jobs() {  # NAME KIND COUNT SEED CHUNKS [SRC] [EXTRA...]
  local name=$1 kind=$2 count=$3 seed=$4 chunks=$5 src=${6:-}; shift 6 2>/dev/null || shift $#
  for i in $(seq 0 $((chunks - 1))); do
    echo "$DATA/${name}_$i ${src:+${src}_$i/sharp} --kind $kind --count $((count / chunks / SHRINK)) --size 256 --seed $((seed * 100 + i))${*:+ $*}"  # no trailing blank: xargs would join the next line
  done
}
run_jobs() { xargs -P "${JOBS:-13}" -L 1 sh -c "nice -n 10 $PY -m napari_gldeblur.cli synth -o \"\$@\" > /dev/null 2>&1 || echo \"failed: \$@\"" _; }
(
  synth_jobs soft soft 900 8 12 "" --augment | run_jobs
  { synth_jobs dyn dynamic 1200 2 10 ""
    synth_jobs augdyn dynamic 1200 4 10 "" --augment
    synth_jobs softdyn dynamic 600 10 6 "$DATA/soft" --procedural 0
    synth_jobs glob global 600 1 4 "" --kernel-seed 1
    synth_jobs augglob global 600 3 4 "" --kernel-seed 1 --augment
    synth_jobs softglob global 600 8 4 "$DATA/soft" --kernel-seed 1 --procedural 0
    synth_jobs softmild mild 600 9 4 "$DATA/soft" --procedural 0
    synth_jobs mild mild 600 7 4 "" --augment
    synth_jobs sharp sharp 600 5 4 "" --augment
  } | run_jobs
  echo "synth done at $(( $(date +%s) - T0 )) s"
) > "$OUT/synth.log" 2>&1 &
SYNTH=$!

# 2. tests of the core (CUDA ones are skipped on machines without a GPU)
timeout 240 $PY -m pytest -q ${TEST_ARGS:-} -p no:cacheprovider -rs tests/test_network.py tests/test_synthesis.py \
  tests/test_datasets.py tests/test_training.py tests/test_inference.py tests/test_cli_deblur.py \
  tests/test_evaluation.py tests/test_imageio.py tests/test_models.py > "$OUT/pytest.txt" 2>&1
echo "tests done at $(( $(date +%s) - T0 )) s" >> "$OUT/pytest.txt"
wait $SYNTH

# 4. training speed, which sizes the trial
timeout 90 $PY benchmarks/bench_training.py --device "$DEVICE" ${TRAIN_BENCH_ARGS:-} --json "$OUT/bench_training.json" > "$OUT/train.log" 2>&1
RATE=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(next(x['steps_per_s'] for x in r if x['model']=='lite' and x['batch']==64))" "$OUT/bench_training.json" 2>/dev/null || echo 20)
LOAD=${LOAD:-75}  # seconds to read ~15,000 PNGs before the first step
STEPS=$($PY -c "import sys; print(max(500, int(float(sys.argv[1]) * 0.8 * (int(sys.argv[2]) - int(sys.argv[3]) - 30))))" "$RATE" "$(left)" "$LOAD")
echo "rate $RATE steps/s, $(left) s left: $STEPS steps" >> "$OUT/train.log"

# 5. the trial: stage 6's phase joint recipe, stage 7's data, a GPU-sized batch
if (( $(left) < LOAD + 60 )); then echo "no time left for the trial" >> "$OUT/train.log"; exit 0; fi
MORE=()
for d in "$DATA"/*_*/; do [[ $d == "$DATA"/soft_* ]] || MORE+=(--joint-data "$d"); done
timeout $(( $(left) - 5 )) $PY -m napari_gldeblur.cli train --model checkpoints/lite_dbaf_joint6.pt --phase joint \
  --data "$DATA/dyn_0" "${MORE[@]}" --steps "$STEPS" --batch 64 --patch 128 --device "$DEVICE" --lr "${LR:-2e-4}" --loss psnr \
  --val-every $(( STEPS / 3 + 1 )) --checkpoint-every 500 -o "$OUT/lite_gpu.pt" >> "$OUT/train.log" 2>&1
echo "exit $? at $(( $(date +%s) - T0 )) s" >> "$OUT/train.log"
