#!/usr/bin/env bash
# session device call 1: build, CUDA tests, shipped pipeline, two-process run, A2.7B checkpoint
set -uo pipefail
export NCCL_NVLS_ENABLE=0
t0=$(date +%s); mark(){ echo "[$(( $(date +%s)-t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p build-cuda models
if [ ! -f models/a27b/config.json ]; then
  ( python3 bench/hf_random_model.py pipelines/bench/a27b_config.json models/a27b > $OUT/hfinit.log 2>&1 && cp bench/.a27b-tok/* models/a27b/ && echo OK >> $OUT/hfinit.log ) &
fi
command -v g++-12 >/dev/null && export QERL_HOST_CXX=g++-12
QERL_BUILD_TARGETS="qerl-run qerl_nn_tests qerl_generate_tests qerl_kernels_cuda_tests" timeout 420 bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1
rc=$?; mark "build rc=$rc"
if [ $rc -ne 0 ]; then grep -B3 -A12 -E "error:|FAILED:|Killed" $OUT/build.log | head -80; tail -5 $OUT/build.log; exit 1; fi
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
timeout 100 build-cuda/tests/models/nn/qerl_nn_tests -tc="*CUDA*" > $OUT/nn.log 2>&1; mark "nn cuda tests rc=$?"; tail -4 $OUT/nn.log
timeout 100 build-cuda/tests/kernels/qerl_kernels_cuda_tests > $OUT/kern.log 2>&1; mark "kernel cuda tests rc=$?"; tail -3 $OUT/kern.log
timeout 150 build-cuda/tests/models/generate/qerl_generate_tests -tc="*CUDA*" > $OUT/gen.log 2>&1; mark "generate cuda tests rc=$?"; tail -4 $OUT/gen.log
s=$(date +%s.%N)
timeout 120 build-cuda/tools/qerl-run pipelines/r3_aqn_nvfp4.toml --out runs/gpu --overwrite --no-tensorboard > $OUT/pipeline.log 2>&1
mark "shipped pipeline rc=$? in $(python3 -c "import time;print(round(time.time()-$s,1))") s"
tail -3 $OUT/pipeline.log; python3 scripts/run_summary.py runs/gpu 2>&1 | tail -12; cp runs/gpu/metrics.jsonl $OUT/pipeline_metrics.jsonl
s=$(date +%s.%N)
timeout 150 build-cuda/tools/qerl-run pipelines/r3_aqn_nvfp4.toml --out runs/gpu2p --overwrite --no-tensorboard --set cluster.workers=local --set stages.learner.worker=1 --set stages.reference.worker=1 --set stages.rollout.worker=2 --set stages.eval.worker=2 > $OUT/twoproc.log 2>&1
mark "two-process pipeline rc=$? in $(python3 -c "import time;print(round(time.time()-$s,1))") s"
tail -3 $OUT/twoproc.log; python3 scripts/run_summary.py runs/gpu2p 2>&1 | tail -12; cp runs/gpu2p/metrics.jsonl $OUT/twoproc_metrics.jsonl
wait; mark "hf init:"; cat $OUT/hfinit.log 2>/dev/null | tail -3; ls -la models/a27b | head; df -h . | tail -1
timeout 60 build-cuda/tools/qerl-run pipelines/bench/a27b_lora_nvfp4.toml --dry-run > $OUT/a27b_plan.log 2>&1; mark "a27b plan rc=$?"; tail -4 $OUT/a27b_plan.log
