#!/usr/bin/env bash
# Fuzzes the pipeline loader for SECONDS (default 60), seeded with the DSL
# test pipelines; see scripts/fuzz.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec bash "$root/scripts/fuzz.sh" fuzz_pipeline "${1:-60}" "$root/tests/dsl/data" "$root/tests/dsl/malformed"
