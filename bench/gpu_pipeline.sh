#!/usr/bin/env bash
# One command on the GPU host for the shipped pipeline (issue 16): build
# qerl-run (scripts/build_cuda_host.sh, that target only), run
# pipelines/r3_aqn_nvfp4.toml (60 steps; its stages are placed on GPU 0
# when a GPU is visible) and print scripts/run_summary.py's summary and the
# per-stage seconds. QERL_PIPELINE_TIMEOUT (s) cuts the run short; the
# summary then covers the steps that finished.
# usage: bash bench/gpu_pipeline.sh [DEBS_DIR]   (after scripts/fetch_debs.sh on a machine with apt)
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
mkdir -p build-cuda
# qerl-run's CAF code needs g++-12 there (scripts/build_cuda_host.sh).
command -v g++-12 > /dev/null && export QERL_HOST_CXX=${QERL_HOST_CXX:-g++-12}
QERL_BUILD_TARGETS="qerl-run ${QERL_EXTRA_TARGETS:-}" bash scripts/build_cuda_host.sh "${1:-debs}" -DCMAKE_BUILD_TYPE=Release \
  > build-cuda/build.log 2>&1 || { grep -B3 -A12 -E "error:|FAILED:|Killed" build-cuda/build.log | head -80; exit 1; }
export LD_LIBRARY_PATH="$(cd "${1:-debs}" && pwd)/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
start=$(date +%s.%N)
timeout "${QERL_PIPELINE_TIMEOUT:-420}" build-cuda/tools/qerl-run pipelines/r3_aqn_nvfp4.toml --out runs/gpu \
  --overwrite --no-tensorboard > build-cuda/pipeline.log 2>&1
status=$?
echo "qerl-run exit $status after $(python3 -c "import time;print(round(time.time()-$start,1))") s"
grep -E "sampling|engine|error|Error" build-cuda/pipeline.log | head -12
tail -4 build-cuda/pipeline.log
python3 scripts/run_summary.py runs/gpu || true
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("runs/gpu/metrics.jsonl") if l.strip()]
steps = [r for r in rows if "step" in r]
stages = sorted({k for r in steps for k in r if k.startswith("timing_s/")})
print(f"{len(steps)} steps | stage | total s | first step s | median s (steps 2+) |")
for k in stages:
    values = [r.get(k, 0.0) for r in steps]
    rest = sorted(values[1:]) or [0.0]
    print(f"| {k[9:]} | {sum(values):.1f} | {values[0]:.3f} | {rest[len(rest) // 2]:.3f} |")
PY
exit $status
