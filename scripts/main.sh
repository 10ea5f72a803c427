#!/usr/bin/env bash
# The main job on the shipped default: GRPO on the shipped tiny MoE
# (pipelines/grpo_tiny.toml), which trains on a 2-core CPU in under ten
# minutes, writes runs/grpo_tiny/ (resolved.toml, metrics.jsonl with
# val/initial_accuracy and val/accuracy) and prints a summary (accuracy
# before/after, wall time, rollout tokens/s, runtime overhead). The headline QeRL pipeline
# (pipelines/r3_aqn_nvfp4.toml) also runs, but its quantization, LoRA, AQN
# and router-replay sections are not implemented yet (it says so), so it is
# not the default. Extra arguments go to qerl-run (e.g. --set run.seed=2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
build/tools/qerl-run pipelines/grpo_tiny.toml --out runs/grpo_tiny --overwrite "$@"
python3 scripts/run_summary.py runs/grpo_tiny
