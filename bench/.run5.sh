#!/usr/bin/env bash
set -uo pipefail
export NCCL_NVLS_ENABLE=0
t0=$(date +%s); mark(){ echo "[$(( $(date +%s)-t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ ! -f models/a27b/config.json ]; then
  ( python3 bench/hf_random_model.py pipelines/bench/a27b_config.json models/a27b > $OUT/hfinit.log 2>&1 && cp bench/.a27b-tok/* models/a27b/ && echo OK >> $OUT/hfinit.log ) &
fi
command -v g++-12 >/dev/null && export QERL_HOST_CXX=g++-12
QERL_BUILD_TARGETS="qerl-run qerl_generate_tests" timeout 150 bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1
rc=$?; mark "build rc=$rc"
[ $rc -ne 0 ] && { grep -B3 -A12 -E "error:|FAILED:" $OUT/build.log | head -40; exit 1; }
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
timeout 60 build-cuda/tests/models/generate/qerl_generate_tests -tc="*CUDA*" > $OUT/gen.log 2>&1; mark "generate cuda tests rc=$?"; grep -E "ERROR|relative distance|test cases" $OUT/gen.log | head -8
wait; mark "model: $(tail -1 $OUT/hfinit.log 2>/dev/null)"
T=130 STEPS=1 bash bench/.run2.sh --set data.prompts_per_step=8
grep -E "error" $OUT/a27b.log | head -3; mark "a27b done"
timeout 25 build-cuda/tools/qerl-run pipelines/r3_aqn_nvfp4.toml --out runs/dbg --overwrite --no-tensorboard --set run.steps=8 --log-level debug > $OUT/dbg.log 2>&1; mark "debug run rc=$?"
