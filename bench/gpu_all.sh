#!/usr/bin/env bash
# Everything the one-GPU benchmarks measure, in one call on the GPU host,
# most important first, within a time budget (device time is scarce: a
# machine may not start again soon). One build of every GPU target, then:
#   1. the CUDA tests (kernels, nn, rl, generation);
#   2. bench/gpu_engine.sh: A2.7B decode steps (fused and unfused, NVFP4 and
#      bf16) against HF generate and the floor, plus the full re-pack sync;
#   3. fp4_bench (bench/gpu_bench.sh's tables);
#   4. bench/gpu_pipeline.sh: the shipped pipeline, 60 steps;
#   5. bench/gpu_a27b.sh: the A2.7B RL step (2 steps);
#   6. ncu of the in-register prefill kernels.
# QERL_ALL_PARTS="a27b fp4_bench" runs only the named parts (a second call
# on a warm machine, whose build is kept).
# A part starts only if the budget left covers its usual length; each
# part's output goes to build-cuda/all/<part>.log (and to $OUT when set,
# as on the device machine), a summary line per part to stdout.
# usage: bash bench/gpu_all.sh [DEBS_DIR] [BUDGET_S (default 560)]
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
debs=${1:-debs}
budget=${2:-560}
t0=$(date +%s)
logs=build-cuda/all
mkdir -p "$logs"
command -v g++-12 > /dev/null && export QERL_HOST_CXX=${QERL_HOST_CXX:-g++-12}
left() { echo $(( budget - ($(date +%s) - t0) )); }
keep() { [ -n "${OUT:-}" ] && cp "$@" "$OUT"/ 2> /dev/null; return 0; }

# part NAME SECONDS_NEEDED COMMAND...: runs COMMAND under a timeout of the
# budget left, if that covers SECONDS_NEEDED.
part() {
  local name=$1 needed=$2
  shift 2
  if [ -n "${QERL_ALL_PARTS:-}" ] && [[ " $QERL_ALL_PARTS " != *" $name "* ]]; then
    return 0
  fi
  if [ "$(left)" -lt "$needed" ]; then
    echo "== $name: skipped ($(left) s left, needs ~$needed s)"
    return 0
  fi
  local start=$(date +%s)
  timeout "$(left)" "$@" > "$logs/$name.log" 2>&1
  local status=$?
  echo "== $name: exit $status after $(( $(date +%s) - start )) s"
  keep "$logs/$name.log"
}

targets="qerl-run qerl-model qerl_kernels_cuda_tests qerl_kernels_tests qerl_nn_tests qerl_rl_tests"
targets+=" qerl_generate_tests engine_bench fp4_bench optimizer_bench"
QERL_BUILD_TARGETS="$targets" bash scripts/build_cuda_host.sh "$debs" -DCMAKE_BUILD_TYPE=Release \
  > "$logs/build.log" 2>&1 || { keep "$logs/build.log"; grep -B3 -A12 -E "error:|FAILED:" "$logs/build.log" | head -80; exit 1; }
echo "== build: $(( $(date +%s) - t0 )) s"
export LD_LIBRARY_PATH="$(cd "$debs" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# The in-register prefill kernels first, each in a process of its own (not
# the default path; if v2, wgmma, fails, fp4_bench leaves out its columns).
part prefill_test 20 build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="*mma.sync kernel*"
grep -E "ERROR|test cases|assertions" "$logs/prefill_test.log" 2> /dev/null | head -8
part wgmma_test 20 build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="*wgmma kernel*"
if ! grep -q "Status: SUCCESS" "$logs/wgmma_test.log" 2> /dev/null; then
  export QERL_BENCH_SKIP_WGMMA=1
  echo "== prefill kernel v2 (wgmma) test did not pass: fp4_bench skips it"
  grep -E "ERROR|CHECK|test cases|assertions|error" "$logs/wgmma_test.log" | head -12
fi
# Likewise the decode-path fusions (QERL_FUSED_DECODE=0 on failure).
part fused_test 20 build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="fused*"
if ! grep -q "Status: SUCCESS" "$logs/fused_test.log" 2> /dev/null; then
  export QERL_FUSED_DECODE=0
  echo "== fused decode kernels' tests did not pass: QERL_FUSED_DECODE=0 from here on"
  grep -E "ERROR|test cases|assertions" "$logs/fused_test.log" | head -8
fi
part prefill_memcheck 60 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
  build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="*prefill*"
[ -f "$logs/prefill_memcheck.log" ] && grep -E "ERROR SUMMARY|test cases" "$logs/prefill_memcheck.log" | head -3
part kernels_cuda_tests 20 build-cuda/tests/kernels/qerl_kernels_cuda_tests -tce="*wgmma kernel*"
part nn_cuda_tests 20 build-cuda/tests/models/nn/qerl_nn_tests -s -tc="*CUDA*"
part rl_gpu_tests 20 build-cuda/tests/rl/qerl_rl_tests -tc="*GPU*,*CUDA*"
for t in kernels_cuda_tests nn_cuda_tests rl_gpu_tests; do
  [ -f "$logs/$t.log" ] && { echo "-- $t"; grep -E "ERROR|test cases|assertions" "$logs/$t.log" | head -12; }
done
part engine 150 bash bench/gpu_engine.sh "$debs"
[ -f "$logs/engine.log" ] && sed -n '/== engine_bench/,$p' "$logs/engine.log"
part fp4_bench 60 build-cuda/bench/fp4_bench
[ -f "$logs/fp4_bench.log" ] && grep -E '^\| (4096x4096|14336x4096|2816x2048|2048x2048) |^\| [0-9]+ \| [0-9]+ \||^#|Ceilings' "$logs/fp4_bench.log"
QERL_PIPELINE_TIMEOUT=120 part pipeline 60 bash bench/gpu_pipeline.sh "$debs"
[ -f "$logs/pipeline.log" ] && tail -14 "$logs/pipeline.log"
QERL_PIPELINE_TIMEOUT=$(( $(left) > 60 ? $(left) - 30 : 30 )) QERL_A27B_STEPS=2 \
  part a27b 290 bash bench/gpu_a27b.sh "$debs" --set aqn.num_stages=1
[ -f "$logs/a27b.log" ] && tail -16 "$logs/a27b.log"
# Where the in-register prefill kernels' cycles go (stall reasons of v1 and
# v2 at 4096^2, M = 4096; bench/NOTES.md asks for them).
part ncu_prefill 40 ncu --kernel-name regex:fp4_prefill --launch-count 2 --section SpeedOfLight \
  --section WarpStateStats --section InstructionStats \
  --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__inst_executed.sum' \
  build-cuda/bench/fp4_bench profile
[ -f "$logs/ncu_prefill.log" ] && grep -E "fp4_prefill_|Duration|inst_executed.sum" "$logs/ncu_prefill.log" | head -8
echo "== total: $(( $(date +%s) - t0 )) s"
