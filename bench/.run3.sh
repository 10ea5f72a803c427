#!/usr/bin/env bash
set -uo pipefail
export NCCL_NVLS_ENABLE=0
t0=$(date +%s); mark(){ echo "[$(( $(date +%s)-t0 ))s] $*"; }
command -v g++-12 >/dev/null && export QERL_HOST_CXX=g++-12
QERL_BUILD_TARGETS="qerl-run qerl_generate_tests" timeout 400 bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1
rc=$?; mark "build rc=$rc"
if [ $rc -ne 0 ]; then grep -B3 -A12 -E "error:|FAILED:|Killed" $OUT/build.log | head -80; exit 1; fi
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
timeout 150 build-cuda/tests/models/generate/qerl_generate_tests -tc="*CUDA*" > $OUT/gen.log 2>&1; mark "generate cuda tests rc=$?"; grep -E "ERROR|CHECK|MESSAGE|relative|test cases" $OUT/gen.log | head -30
bash bench/.run2.sh "$@"
