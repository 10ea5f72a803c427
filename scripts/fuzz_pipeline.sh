#!/usr/bin/env bash
# Fuzz the pipeline loader for SECONDS (default 60) with libFuzzer + ASan +
# UBSan. Builds tests/fuzz as a standalone project in build-fuzz/ (clang, no
# LibTorch needed), seeds from tests/dsl/{data,malformed}, prints the number
# of executions, and exits non-zero on a crash, a leak or a hang (inputs that
# reproduce it land in build-fuzz/artifacts/).
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DQERL_FUZZ=ON -DQERL_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzz_pipeline

mkdir -p "$build/corpus" "$build/artifacts"
log=$build/fuzz.log
rc=0
"$build/fuzz_pipeline" "$build/corpus" "$root/tests/dsl/data" "$root/tests/dsl/malformed" \
  -dict="$root/tests/fuzz/pipeline.dict" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/" >"$log" 2>&1 || rc=$?

grep -E "INITED|DONE|ERROR|SUMMARY|runtime error|Test unit written" "$log" || true
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
echo "fuzz_pipeline: ${execs} executions in ${seconds}s, exit code ${rc} (log: ${log})"
exit "$rc"
