#!/usr/bin/env bash
# One command on the GPU host for the A2.7B RL step (issue 16): build
# qerl-run and qerl-model (scripts/build_cuda_host.sh, those targets), make
# the random-weight A2.7B checkpoint when models/a27b lacks one
# (bench/hf_random_model.py on the GPU, ~30 s, plus the character
# tokenizer), print the memory plan, run the pipeline with nvidia-smi
# sampling the device, and print bench/step_table.py's table: seconds per
# stage and step, the share outside the stages, the weight sync's share,
# each stage's peak memory against the plan's.
# usage: bash bench/gpu_a27b.sh [DEBS_DIR] [qerl-run options...]
#   QERL_A27B_PIPELINE (default pipelines/bench/a27b_lora_nvfp4.toml; the bf16
#   twin is a27b_lora_bf16.toml), QERL_A27B_STEPS (default 2),
#   QERL_PIPELINE_TIMEOUT (s, default 540): the table covers the steps that finished.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
debs=${1:-debs}
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p build-cuda
command -v g++-12 > /dev/null && export QERL_HOST_CXX=${QERL_HOST_CXX:-g++-12}
if [ ! -f models/a27b/config.json ]; then
  python3 bench/hf_random_model.py pipelines/bench/a27b_config.json models/a27b > build-cuda/a27b_init.log 2>&1 &
  init=$!
fi
QERL_BUILD_TARGETS="qerl-run qerl-model" bash scripts/build_cuda_host.sh "$debs" -DCMAKE_BUILD_TYPE=Release \
  > build-cuda/build.log 2>&1 || { grep -B3 -A12 -E "error:|FAILED:|Killed" build-cuda/build.log | head -80; exit 1; }
export LD_LIBRARY_PATH="$(cd "$debs" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "${init:-}" ]; then
  wait "$init" || { cat build-cuda/a27b_init.log; exit 1; }
  tail -1 build-cuda/a27b_init.log
  build-cuda/tools/qerl-model char-tokenizer --special "<|endoftext|>" --out models/a27b || exit 1
fi
pipeline=${QERL_A27B_PIPELINE:-pipelines/bench/a27b_lora_nvfp4.toml}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
build-cuda/tools/qerl-run "$pipeline" --dry-run "$@" > build-cuda/a27b_plan.txt 2>&1 || { tail -5 build-cuda/a27b_plan.txt; exit 1; }
grep -E "planned peak" build-cuda/a27b_plan.txt
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 250 > build-cuda/a27b_smi.csv &
smi=$!
start=$(date +%s.%N)
timeout "${QERL_PIPELINE_TIMEOUT:-540}" build-cuda/tools/qerl-run "$pipeline" --out runs/a27b --overwrite --no-tensorboard \
  --set run.steps="${QERL_A27B_STEPS:-2}" "$@" > build-cuda/a27b_run.log 2>&1
status=$?
kill "$smi"
echo "qerl-run exit $status after $(python3 -c "import time;print(round(time.time()-$start,1))") s"
grep -E "error|sampling engine|memory plan" build-cuda/a27b_run.log | head -5
python3 bench/step_table.py runs/a27b --plan build-cuda/a27b_plan.txt --smi build-cuda/a27b_smi.csv
exit $status
