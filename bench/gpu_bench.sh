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
echo "== kernel tests (CPU reference; the compressed-tensors parity case needs that PyPI package, absent on the GPU host, and runs in CI)"
OMP_NUM_THREADS=4 build-cuda/tests/kernels/qerl_kernels_tests -tce="*compressed-tensors*" || status=1
echo "== fp4_bench"
build-cuda/bench/fp4_bench || status=1
if [ "${QERL_NCU:-0}" = 1 ]; then  # every kernel of `fp4_bench profile` under ncu (clocks as found, like the bench): time, DRAM, SM, occupancy
  echo "== ncu (fp4_bench profile)"
  metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
  metrics+=,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed
  metrics+=,launch__registers_per_thread,launch__grid_size,launch__block_size
  metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active
  ncu --clock-control none --csv --metrics "$metrics" build-cuda/bench/fp4_bench profile > build-cuda/ncu.csv 2> build-cuda/ncu.err || status=1
  python3 bench/ncu_table.py build-cuda/ncu.csv || { tail -20 build-cuda/ncu.err; status=1; }
fi
if [ "${QERL_SANITIZE:-0}" = 1 ]; then  # memcheck on the ragged-shape cases (slow)
  echo "== compute-sanitizer memcheck"
  compute-sanitizer --tool memcheck --error-exitcode 9 build-cuda/tests/kernels/qerl_kernels_cuda_tests \
    -tc="*odd multiple*,*empty experts*,*MoE experts forward*,*no bias*,*decode rows and beyond*" || status=1
fi
exit $status
