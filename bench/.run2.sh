#!/usr/bin/env bash
set -uo pipefail
export NCCL_NVLS_ENABLE=0
[ -f debs/prefix/.unpacked ] || { mkdir -p debs/prefix; for f in debs/*.deb; do dpkg -x "$f" debs/prefix; done; touch debs/prefix/.unpacked; }
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 250 > $OUT/smi.csv &
smi=$!
s=$(date +%s.%N)
timeout ${T:-560} build-cuda/tools/qerl-run pipelines/bench/a27b_lora_nvfp4.toml --out runs/a27b --overwrite --no-tensorboard --set run.steps=${STEPS:-2} --set aqn.num_stages=1 "$@" > $OUT/a27b.log 2>&1
echo "a27b rc=$? in $(python3 -c "import time;print(round(time.time()-$s,1))") s"
kill $smi
tail -8 $OUT/a27b.log; cp runs/a27b/metrics.jsonl $OUT/a27b_metrics.jsonl 2>/dev/null
python3 scripts/run_summary.py runs/a27b 2>&1 | tail -5
python3 - <<'PY'
import json
rows=[json.loads(l) for l in open("runs/a27b/metrics.jsonl") if l.strip()]
for r in rows:
    if "step" in r:
        print({k: round(v,3) if isinstance(v,float) else v for k,v in r.items() if k.startswith(("timing_s/","perf/max_memory","step","elapsed","rollout/chunk","weight_sync"))})
PY
sort -t, -k2 -n $OUT/smi.csv | tail -1
