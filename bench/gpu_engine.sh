#!/usr/bin/env bash
# One command on the GPU host for the rollout engine (issue 16): build the
# generation tests and engine_bench (scripts/build_cuda_host.sh, only those
# targets), run the tests (the static-cache loop on the CPU, the CUDA graph
# backend on the GPU), time Hugging Face generate at the A2.7B shape, then
# print engine_bench's table (which reads HF's figures from this run).
# usage: bash bench/gpu_engine.sh [DEBS_DIR]   (after scripts/fetch_debs.sh on a machine with apt)
set -euo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
mkdir -p build-cuda
QERL_BUILD_TARGETS="qerl_generate_tests engine_bench ${QERL_EXTRA_TARGETS:-}" \
  bash scripts/build_cuda_host.sh "${1:-debs}" -DCMAKE_BUILD_TYPE=Release > build-cuda/build.log 2>&1 ||
  { tail -80 build-cuda/build.log; exit 1; }
export LD_LIBRARY_PATH="$(cd "${1:-debs}" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
status=0
echo "== generation tests (static-cache loop on the CPU; CUDA graph backend on the GPU)"
OMP_NUM_THREADS=4 build-cuda/tests/models/generate/qerl_generate_tests || status=1
echo "== Hugging Face generate, A2.7B shape"
python3 scripts/hf_generate_bench.py pipelines/bench/a27b_config.json build-cuda/hf.json \
  --batches "${QERL_BATCHES:-32,128}" --new "${QERL_HF_NEW:-32}" || status=1
echo "== engine_bench"
build-cuda/bench/engine_bench --hf build-cuda/hf.json --batches "${QERL_BATCHES:-32,128}" || status=1
exit $status
