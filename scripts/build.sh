#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds qerl
# into ./build with Ninja and ccache. Extra arguments go to CMake's configure
# step, e.g. scripts/build.sh -DCMAKE_BUILD_TYPE=Debug.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/setup.sh | tail -n 1)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/qerl-ccache}"
jobs="${QERL_JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DQERL_PYTHON="$python" "$@" >/dev/null
start=$(date +%s)
cmake --build build -j "$jobs"
echo "[build] built in $(( $(date +%s) - start )) s (ccache: $(ccache -s 2>/dev/null | grep -m1 -E 'Hits|hit' | tr -s ' ' || true))" >&2
