#!/usr/bin/env bash
# Builds everything and runs every test suite (ctest), then a short smoke run
# of the pipeline-loader fuzzer. This is the command CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${QERL_JOBS:-$(nproc)}"
bash scripts/fuzz_pipeline.sh "${QERL_FUZZ_SECONDS:-20}"
