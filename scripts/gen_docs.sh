#!/usr/bin/env bash
# Regenerates docs/pipeline-reference.md from the schema (a test fails when
# the committed page differs from what the schema generates).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tools/qerl-run ] || bash scripts/build.sh
build/tools/qerl-run --print-reference > docs/pipeline-reference.md.tmp
mv docs/pipeline-reference.md.tmp docs/pipeline-reference.md
echo "docs/pipeline-reference.md: $(wc -l < docs/pipeline-reference.md) lines"
