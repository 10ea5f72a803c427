#!/usr/bin/env bash
# One command on the GPU host: build the CUDA kernels, their tests and
# fp4_bench (scripts/build_cuda_host.sh, only these targets), run the kernel
# tests (CUDA, the MoE device path, the CPU reference), then print
# fp4_bench's tables.
# usage: bash bench/gpu_bench.sh [DEBS_DIR]   (after scripts/fetch_debs.sh on a machine with apt)
set -euo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
mkdir -p build-cuda
QERL_BUILD_TARGETS="qerl_kernels_tests qerl_kernels_cuda_tests qerl_nn_tests fp4_bench" \
  bash scripts/build_cuda_host.sh "${1:-debs}" -DCMAKE_BUILD_TYPE=Release > build-cuda/build.log 2>&1 ||
  { tail -80 build-cuda/build.log; exit 1; }
grep -E "warning|spill" build-cuda/build.log | grep -v "^--" | head -20 || true
export LD_LIBRARY_PATH="$(cd "${1:-debs}" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
status=0
echo "== kernel tests (CUDA)"
build-cuda/tests/kernels/qerl_kernels_cuda_tests || status=1
echo "== SparseMoe device path vs per-expert loop (CUDA)"
build-cuda/tests/models/nn/qerl_nn_tests -tc="SparseMoe on CUDA*" || status=1
echo "== kernel tests (CPU reference)"
OMP_NUM_THREADS=4 build-cuda/tests/kernels/qerl_kernels_tests || status=1
echo "== fp4_bench"
build-cuda/bench/fp4_bench || status=1
if [ -n "${QERL_NCU:-}" ]; then  # e.g. QERL_NCU="4096 4096 1": one W4A16 launch under ncu
  echo "== ncu fp4_mma_kernel $QERL_NCU"
  ncu --kernel-name regex:fp4_mma --launch-skip 3 --launch-count 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy --section WarpStateStats \
    build-cuda/bench/fp4_bench one $QERL_NCU 2>&1 | grep -vE "^==PROF==|^\s*$" | tail -80 || true
fi
if [ "${QERL_SANITIZE:-0}" = 1 ]; then  # memcheck on the ragged-shape cases (slow)
  echo "== compute-sanitizer memcheck"
  compute-sanitizer --tool memcheck --error-exitcode 9 build-cuda/tests/kernels/qerl_kernels_cuda_tests \
    -tc="*odd multiple*,*empty experts*,*MoE experts forward*" || status=1
fi
exit $status
