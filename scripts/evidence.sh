#!/usr/bin/env bash
# Re-runs the measurements of docs/evidence.md on the CPU (about 12 minutes
# on 2 cores): short GRPO runs of pipelines/grpo_tiny.toml on the shipped
# model that differ only in [quantization], [router_replay] and [aqn], each
# into $OUT_DIR/<name>, then prints the table rows docs/evidence.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-runs/evidence}
run=build/tools/qerl-run
[ -x "$run" ] || bash scripts/build.sh
common=(pipelines/grpo_tiny.toml --set run.steps=50 --set stages.eval.every=1000)
go() { local name=$1; shift; echo "[evidence] $name: $*" >&2; "$run" "${common[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1; }
mkdir -p "$out"
go fp32 
go nvfp4_rollout --set quantization.scheme=nvfp4
go nvfp4_qat --set quantization.scheme=nvfp4 --set quantization.train=qat
go mxfp4_qat --set quantization.scheme=mxfp4 --set quantization.train=qat
go nvfp4_r1 --set quantization.scheme=nvfp4 --set router_replay.mode=R1
go nvfp4_r3 --set quantization.scheme=nvfp4 --set router_replay.mode=R3
go aqn --set aqn.enabled=true --set aqn.num_stages=5
python3 - "$out" <<'PY'
import json, sys, os, statistics as st
out = sys.argv[1]
def rows(name):
    return [json.loads(l) for l in open(os.path.join(out, name, "metrics.jsonl"))]
def mean(rs, key):
    v = [r[key] for r in rs if key in r]
    return st.mean(v) if v else float("nan")
print("| run | rollout_corr/kl mean (steps 1-10) | (steps 41-50) | router/mismatch_rate | held-out before -> after 50 steps |")
print("|---|---|---|---|---|")
for name in ["fp32", "nvfp4_rollout", "nvfp4_qat", "mxfp4_qat", "nvfp4_r1", "nvfp4_r3"]:
    rs = rows(name)
    acc = [r["val/accuracy"] for r in rs if "val/accuracy" in r]
    print(f"| {name} | {mean(rs[:10], 'rollout_corr/kl'):.3e} | {mean(rs[-10:], 'rollout_corr/kl'):.3e} | "
          f"{mean(rs, 'router/mismatch_rate'):.4f} | {rs[0]['val/initial_accuracy']} -> {acc[-1] if acc else 'n/a'} |")
print()
print("| step | aqn/sigma | aqn/applied_rms |")
print("|---|---|---|")
for r in rows("aqn")[::5]:
    print(f"| {r['step'] + 1} | {r['aqn/sigma']:.3e} | {r['aqn/applied_rms']:.3e} |")
PY
