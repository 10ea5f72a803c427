#!/usr/bin/env bash
# Builds everything and runs every test suite (ctest), then a short smoke run
# of each libFuzzer target (pipeline loader, safetensors header,
# tokenizer.json). This is the command CI runs (.ci/run). QERL_TEST_DEPS=1
# makes setup.sh also install what only the tests need (chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export QERL_TEST_DEPS=1
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${QERL_JOBS:-$(nproc)}"
seconds="${QERL_FUZZ_SECONDS:-10}"
bash scripts/fuzz_pipeline.sh "$seconds"
for target in fuzz_safetensors fuzz_tokenizer; do
  bash scripts/fuzz.sh "$target" "$seconds"
done
