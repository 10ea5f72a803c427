#!/usr/bin/env bash
# What a plugin author does with an installed qerl, start to finish:
#   1. cmake --install the build into a scratch prefix;
#   2. copy examples/plugins/dapo_filter out of the tree and build it with
#      find_package(qerl) + target_link_libraries(... qerl::plugin);
#   3. run the installed qerl-run on examples/pipelines/grpo_dapo_filter.toml
#      with that .so for two short steps and check the filter's metrics.
# Also checks that the installed headers carry the build's plugin ABI
# version. Any failure prints what failed and exits non-zero.
#
#   out_of_tree_plugin.sh <qerl build dir> <qerl source dir> <scratch dir>
set -euo pipefail
build=$1 source=$2 work=$3

fail() { echo "out_of_tree_plugin: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || fail "cmake --install failed (see $work/install.log)"

generated="$build/generated/runtime/plugin_abi_version.hpp"
installed="$work/prefix/include/qerl/runtime/plugin_abi_version.hpp"
cmp -s "$generated" "$installed" || fail "$installed differs from $generated"

cp -r "$source/examples/plugins/dapo_filter" "$work/dapo_filter"  # outside the tree: no path back into it
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$work/dapo_filter" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; fail "configuring the plugin against the installed qerl failed"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; fail "building the plugin against the installed qerl failed"; }
plugin="$work/build/libqerl_dapo_filter.so"
[[ -f $plugin ]] || fail "the build made no $plugin"

"$work/prefix/bin/qerl-run" "$source/examples/pipelines/grpo_dapo_filter.toml" --out "$work/run" \
    --set "plugins=[\"$plugin\"]" --set run.steps=2 --set data.prompts_per_step=2 \
    --set data.samples_per_prompt=4 --set data.heldout_size=2 --set stages.rollout.max_new_tokens=24 \
    --set stages.eval.at_start=false --set stages.eval.every=100 --set stages.eval.max_new_tokens=8 \
    >"$work/run.log" 2>&1 || { tail -20 "$work/run.log" >&2; fail "qerl-run with the out-of-tree plugin failed"; }

lines=$(wc -l <"$work/run/metrics.jsonl")
[[ $lines -eq 2 ]] || fail "metrics.jsonl has $lines lines, expected 2"
for metric in filter/groups filter/kept_groups filter/dropped_groups filter/passthrough; do
  [[ $(grep -c "\"$metric\"" "$work/run/metrics.jsonl") -eq 2 ]] || fail "metric $metric missing from a step"
done
echo "out_of_tree_plugin: built $plugin against $work/prefix and ran 2 steps with it"
