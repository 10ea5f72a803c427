#!/usr/bin/env bash
set -uo pipefail
export NCCL_NVLS_ENABLE=0
t0=$(date +%s); mark(){ echo "[$(( $(date +%s)-t0 ))s] $*"; }
if [ ! -f models/a27b/config.json ]; then
  ( python3 bench/hf_random_model.py pipelines/bench/a27b_config.json models/a27b > $OUT/hfinit.log 2>&1 && cp bench/.a27b-tok/* models/a27b/ && echo OK >> $OUT/hfinit.log ) &
fi
command -v g++-12 >/dev/null && export QERL_HOST_CXX=g++-12
QERL_BUILD_TARGETS="qerl-run qerl_generate_tests" timeout 400 bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1
rc=$?; mark "build rc=$rc"
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
timeout 150 build-cuda/tests/models/generate/qerl_generate_tests -tc="*CUDA*" > $OUT/gen.log 2>&1; mark "generate cuda tests rc=$?"; grep -E "ERROR|relative distance|test cases" $OUT/gen.log | head -10
wait; tail -1 $OUT/hfinit.log; mark "model ready"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 30 build-cuda/tools/qerl-run pipelines/bench/a27b_lora_nvfp4.toml --dry-run > $OUT/a27b_plan.log 2>&1; grep -E "planned peak|rows" $OUT/a27b_plan.log | tail -3
bash bench/.run2.sh "$@"
grep -E "error" $OUT/a27b.log | head -3
