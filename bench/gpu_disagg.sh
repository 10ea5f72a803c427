#!/usr/bin/env bash
# One command on a host with two GPUs for issue 18 (the disaggregated
# pipeline over NCCL). Builds qerl-run and nccl_sync_bench, then by PART:
#  sync     nccl_sync_bench: the A2.7B weight sync (bf16, NVFP4 packed
#           before sending, LoRA only) against a broadcast of one buffer.
#  shipped  r3_aqn_nvfp4.toml colocated on GPU 0, then its disaggregated
#           twin as two processes (rollout+eval on GPU 0, learner+reference+
#           weight_sync on GPU 1, weights over NCCL) at staleness 0 and 1;
#           bench/disagg_table.py compares the curves and reports step time,
#           weight-sync transfer time and the rollout time hidden behind the
#           learner.
#  kill     the two-process run with checkpoints every 2 steps; worker 1 is
#           killed (-9) after step 4; the coordinator's line and status, the
#           checkpoint left, then --resume to the end.
#  a27b     the A2.7B LoRA NVFP4 pipeline disaggregated the same way, at
#           staleness 0 and 1 (QERL_A27B_STEPS steps each, default 3).
# NCCL_NVLS_ENABLE=0 in every process (qerl-run sets it too).
# usage: bash bench/gpu_disagg.sh [DEBS_DIR] [sync|shipped|kill|a27b|all]
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
debs=${1:-debs}
part=${2:-all}
mkdir -p build-cuda
command -v g++-12 > /dev/null && export QERL_HOST_CXX=${QERL_HOST_CXX:-g++-12}
QERL_BUILD_TARGETS="qerl-run qerl-model nccl_sync_bench" bash scripts/build_cuda_host.sh "$debs" \
  -DCMAKE_BUILD_TYPE=Release > build-cuda/build.log 2>&1 ||
  { grep -B3 -A12 -E "error:|FAILED:|Killed" build-cuda/build.log | head -80; exit 1; }
export LD_LIBRARY_PATH="$(cd "$debs" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
nvidia-smi topo -m 2>/dev/null | head -4 || true
run=build-cuda/tools/qerl-run
procs="--set cluster.workers=local --set stages.learner.worker=1 --set stages.reference.worker=1
     --set stages.weight_sync.worker=1 --set stages.rollout.worker=2
     --set stages.weight_sync.transport=nccl --log-level debug"
two="$procs --set stages.eval.worker=2"
stale1=(--set 'stages.rollout.inputs.weights={ from = "weight_sync.weights", staleness = 1 }')
status=0
want() { [ "$part" = all ] || [ "$part" = "$1" ]; }

if want sync; then
  echo "== nccl_sync_bench"
  build-cuda/bench/nccl_sync_bench || status=1
fi

if want shipped; then
  echo "== shipped pipeline: colocated (GPU 0) vs two processes over NCCL"
  $run pipelines/r3_aqn_nvfp4.toml --out runs/colo --overwrite --no-tensorboard > build-cuda/colo.log 2>&1 || status=1
  # shellcheck disable=SC2086
  $run pipelines/r3_aqn_nvfp4_disagg.toml --out runs/disagg0 --overwrite --no-tensorboard $two \
    > build-cuda/disagg0.log 2>&1 || { status=1; grep -E "error" build-cuda/disagg0.log | head -5; }
  # shellcheck disable=SC2086
  $run pipelines/r3_aqn_nvfp4_disagg.toml --out runs/disagg1 --overwrite --no-tensorboard $two "${stale1[@]}" \
    > build-cuda/disagg1.log 2>&1 || { status=1; grep -E "error" build-cuda/disagg1.log | head -5; }
  python3 bench/disagg_table.py runs/colo:build-cuda/colo.log runs/disagg0:build-cuda/disagg0.log \
    runs/disagg1:build-cuda/disagg1.log || status=1
fi

if want kill; then
  echo "== a worker killed mid-run, then --resume"
  # shellcheck disable=SC2086
  $run pipelines/r3_aqn_nvfp4_disagg.toml --out runs/killed --overwrite --no-tensorboard $two \
    --set run.steps=12 --set run.checkpoint_every=2 > build-cuda/killed.log 2>&1 &
  coordinator=$!
  for _ in $(seq 600); do
    [ -f runs/killed/metrics.jsonl ] && [ "$(wc -l < runs/killed/metrics.jsonl)" -ge 5 ] && break
    sleep 0.2
  done
  pid=$(grep -oE "local worker 1 started: [0-9.:]+, pid [0-9]+" build-cuda/killed.log | grep -oE "[0-9]+$" | head -1)
  echo "killing worker 1 (pid ${pid:-?}) after $(wc -l < runs/killed/metrics.jsonl) steps"
  [ -n "$pid" ] && kill -9 "$pid"
  wait "$coordinator"
  echo "coordinator exit status $?"
  grep -E "qerl-run: error" build-cuda/killed.log | head -2
  ls runs/killed/checkpoints
  # shellcheck disable=SC2086
  $run --resume runs/killed > build-cuda/resumed.log 2>&1
  echo "resumed run exit status $? ($(wc -l < runs/killed/metrics.jsonl) metric lines)"
  tail -2 build-cuda/resumed.log
fi

if want a27b; then
  echo "== A2.7B LoRA NVFP4, two processes over NCCL: staleness 0 vs 1"
  if [ ! -f models/a27b/config.json ]; then
    python3 bench/hf_random_model.py pipelines/bench/a27b_config.json models/a27b > build-cuda/a27b_init.log 2>&1 ||
      { cat build-cuda/a27b_init.log; exit 1; }
    build-cuda/tools/qerl-model char-tokenizer --special "<|endoftext|>" --out models/a27b > /dev/null || exit 1
  fi
  gpus="--set stages.rollout.gpus=[0] --set stages.learner.gpus=[1] --set stages.reference.gpus=[1]"
  for s in 0 1; do
    extra=(); [ "$s" = 1 ] && extra=("${stale1[@]}")
    # shellcheck disable=SC2086
    timeout "${QERL_PIPELINE_TIMEOUT:-270}" $run pipelines/bench/a27b_lora_nvfp4.toml --out "runs/a27b_disagg$s" \
      --overwrite --no-tensorboard --set run.steps="${QERL_A27B_STEPS:-3}" --set aqn.num_stages=1 $gpus $procs "${extra[@]}" \
      > "build-cuda/a27b_disagg$s.log" 2>&1 || { status=1; grep -E "error" "build-cuda/a27b_disagg$s.log" | head -5; }
  done
  python3 bench/disagg_table.py runs/a27b_disagg0:build-cuda/a27b_disagg0.log \
    runs/a27b_disagg1:build-cuda/a27b_disagg1.log || status=1
fi
exit $status
