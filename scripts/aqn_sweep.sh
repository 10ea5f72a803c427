#!/usr/bin/env bash
# AQN on/off accuracy curves (docs/evidence.md): pipelines/r3_aqn_nvfp4.toml
# (LoRA on NVFP4, R3) with aqn.enabled = true and false, for each seed of
# $SEEDS (default "1 2 3"), each run into $OUT_DIR/aqn_{on,off}_s<seed>;
# $PARALLEL runs at a time (default 1; each with OMP_NUM_THREADS=$THREADS,
# default 2), then prints val/accuracy after every eval as a table with the
# mean and standard deviation over seeds. Extra arguments go to every qerl-run
# (e.g. --set run.steps=30). About 5 minutes per run on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-runs/aqn_sweep}
run=${QERL_RUN:-build/tools/qerl-run}
[ -x "$run" ] || bash scripts/build.sh
seeds=${SEEDS:-1 2 3}
parallel=${PARALLEL:-1}
export OMP_NUM_THREADS=${THREADS:-2}
mkdir -p "$out"
jobs_list=()
for seed in $seeds; do
  for aqn in on off; do jobs_list+=("$aqn:$seed"); done
done
launch() {
  local aqn=${1%%:*} seed=${1##*:} enabled=false
  [ "$aqn" = on ] && enabled=true
  local name="aqn_${aqn}_s$seed"
  echo "[aqn_sweep] $name" >&2
  "$run" pipelines/r3_aqn_nvfp4.toml --out "$out/$name" --overwrite --set run.seed="$seed" \
    --set aqn.enabled="$enabled" "${@:2}" > "$out/$name.log" 2>&1 || { echo "[aqn_sweep] $name failed: $out/$name.log" >&2; return 1; }
}
running=0
for job in "${jobs_list[@]}"; do
  launch "$job" "$@" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then wait -n; running=$((running - 1)); fi
done
wait
python3 - "$out" $seeds <<'PY'
import json, os, statistics as st, sys
out, seeds = sys.argv[1], sys.argv[2:]
def curve(name):
    rows = [json.loads(l) for l in open(os.path.join(out, name, "metrics.jsonl"))]
    points = [(0, rows[0]["val/initial_accuracy"])]
    points += [(r["step"] + 1, r["val/accuracy"]) for r in rows if "val/accuracy" in r]
    return points, rows[-1]["elapsed_s"]
curves = {f"aqn_{a}_s{s}": curve(f"aqn_{a}_s{s}") for a in ("on", "off") for s in seeds}
steps = [p[0] for p in next(iter(curves.values()))[0]]
print("| run | " + " | ".join(f"step {s}" for s in steps) + " | gain | wall s |")
print("|---|" + "---|" * (len(steps) + 2))
for name, (points, wall) in curves.items():
    acc = [a for _, a in points]
    print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in acc) + f" | {100 * (acc[-1] - acc[0]):+.1f} | {wall:.0f} |")
for a in ("on", "off"):
    cols = list(zip(*[[acc for _, acc in curves[f"aqn_{a}_s{s}"][0]] for s in seeds]))
    cells = [f"{st.mean(c):.3f} ± {st.stdev(c) if len(c) > 1 else 0:.3f}" for c in cols]
    gains = [100 * (curves[f"aqn_{a}_s{s}"][0][-1][1] - curves[f"aqn_{a}_s{s}"][0][0][1]) for s in seeds]
    print(f"| AQN {a}, mean ± sd over seeds {' '.join(seeds)} | " + " | ".join(cells) +
          f" | {st.mean(gains):+.1f} | |")
PY
