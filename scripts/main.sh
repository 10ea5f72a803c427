#!/usr/bin/env bash
# The main job on the shipped default pipeline. Until the model and RL-loop
# issues land the built-in stages are declared but not implemented, so this
# validates and plans the pipeline (--dry-run): resolved TOML, actor graph
# (+ graph.dot in the run folder) and device placement.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec build/tools/qerl-run pipelines/r3_aqn_nvfp4.toml --dry-run "$@"
