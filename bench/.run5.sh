#!/usr/bin/env bash
set -uo pipefail
export NCCL_NVLS_ENABLE=0
command -v g++-12 > /dev/null && export QERL_HOST_CXX=g++-12
t0=$(date +%s)
QERL_BUILD_TARGETS="qerl_kernels_cuda_tests engine_bench fp4_bench" bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1 || { grep -B3 -A12 -E "error:|FAILED:" $OUT/build.log | head -60; exit 1; }
echo "== build $(( $(date +%s) - t0 )) s"
export LD_LIBRARY_PATH="$(pwd)/debs/prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="*error sums*,*experts: stacked*,*MoE experts forward*" 2>&1 | tail -4
echo "== repack"
timeout 90 build-cuda/bench/engine_bench --repack-only 1 2>&1 | tail -4
echo "== ncu prefill kernels ($(( $(date +%s) - t0 )) s)"
timeout 120 ncu --kernel-name regex:fp4_prefill --launch-count 2 --section SpeedOfLight --section WarpStateStats --section InstructionStats --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__inst_executed.sum build-cuda/bench/fp4_bench profile > $OUT/ncu_prefill.txt 2>&1
grep -E "fp4_prefill|Duration|inst_executed.sum|Executed Ipc A|Issue Slots Busy" $OUT/ncu_prefill.txt | head -12
for k in 1 2; do
  awk -v k=$k '/fp4_prefill/{n++} n==k' $OUT/ncu_prefill.txt | grep -E "stalled_" | awk '{print $1, $NF}' | sort -k2 -g -r | head -8
  echo "--"
done
echo "== total $(( $(date +%s) - t0 )) s"
