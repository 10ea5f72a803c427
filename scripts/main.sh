#!/usr/bin/env bash
# The main job on the shipped default: the headline QeRL pipeline
# (pipelines/r3_aqn_nvfp4.toml: GRPO with LoRA on a frozen NVFP4 W4A16 base
# of the shipped tiny MoE, AQN noise on the rollout, MoE router replay R3),
# on the CPU when no GPU is visible. Writes runs/<pipeline name>/
# (resolved.toml, metrics.jsonl with val/initial_accuracy and val/accuracy,
# checkpoints, TensorBoard event files in tensorboard/) and prints a summary
# (accuracy before/after, wall time, rollout tokens/s, runtime overhead),
# then writes the run's HTML report (qerl-report: runs/<name>/report.html)
# and prints its path.
# A first argument ending in .toml runs that pipeline instead (plain GRPO:
# scripts/main.sh pipelines/grpo_tiny.toml); other arguments go to qerl-run
# (e.g. --set run.seed=2).
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline=pipelines/r3_aqn_nvfp4.toml
if [[ $# -gt 0 && "$1" == *.toml ]]; then
  pipeline=$1
  shift
fi
name=$(basename "$pipeline" .toml)
bash scripts/build.sh
build/tools/qerl-run "$pipeline" --out "runs/$name" --overwrite "$@"
python3 scripts/run_summary.py "runs/$name"
report=$(build/tools/qerl-report "runs/$name" --out "runs/$name/report.html")
echo "report: $report (open it in a browser; TensorBoard: tensorboard --logdir runs/$name/tensorboard)"
