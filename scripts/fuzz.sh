#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz for SECONDS with ASan + UBSan:
#   scripts/fuzz.sh TARGET SECONDS [SEED_DIR...]
# Builds tests/fuzz as a standalone clang project in build-fuzz/ (no LibTorch
# or CAF needed), prints the number of executions, and exits non-zero on a
# crash, a leak or a hang (reproducers land in build-fuzz/artifacts/TARGET/).
set -euo pipefail

target=$1
seconds=${2:-60}
shift 2 || shift $#
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QERL_FUZZ_BUILD:-$root/build-fuzz}

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DQERL_FUZZ=ON >/dev/null
cmake --build "$build" --target "$target"

corpus=$build/corpus/$target
artifacts=$build/artifacts/$target
mkdir -p "$corpus" "$artifacts"
dict=()
[ -f "$root/tests/fuzz/$target.dict" ] && dict=(-dict="$root/tests/fuzz/$target.dict")
log=$build/$target.log
rc=0
"$build/$target" "$corpus" "$@" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?

grep -E "INITED|DONE|ERROR|SUMMARY|runtime error|Test unit written" "$log" || true
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
echo "$target: ${execs} executions in ${seconds}s, exit code ${rc} (log: ${log})"
exit "$rc"
