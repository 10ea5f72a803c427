#!/usr/bin/env bash
# Builds qerl with QERL_CUDA=ON on a CUDA host without apt: the Debian
# packages from scripts/fetch_debs.sh (folder $1, default ./debs) are unpacked
# into $1/prefix, CMake is pointed at that prefix plus torch's CMake prefix,
# and NCCL comes from the nvidia-nccl Python package when present.
# After it: export LD_LIBRARY_PATH as printed, then run ctest --test-dir build-cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
debs=$(cd "${1:-debs}" && pwd)
prefix="$debs/prefix"
if [ ! -f "$prefix/.unpacked" ]; then
  mkdir -p "$prefix"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
  touch "$prefix/.unpacked"
fi
libdir="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python=$(command -v python3)
torch_prefix=$("$python" -c 'import torch;print(torch.utils.cmake_prefix_path)')
nccl_root=$("$python" -c 'import nvidia.nccl,os;print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
# QERL_HOST_CXX picks the C++ compiler (and nvcc's host compiler): the
# GPU host's default GCC 13.3 fails on CAF 0.17's constexpr atoms inside
# qerl's CAF translation units (seen 2026-12-06), its g++-12 does not.
host_cxx=()
if [ -n "${QERL_HOST_CXX:-}" ]; then
  host_cxx=(-DCMAKE_CXX_COMPILER="$QERL_HOST_CXX" -DCMAKE_CUDA_HOST_COMPILER="$QERL_HOST_CXX")
fi
cmake -S . -B build-cuda -G Ninja -DQERL_CUDA=ON -DQERL_PYTHON="$python" "${host_cxx[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix/usr;$torch_prefix${nccl_root:+;$nccl_root}" \
  -DCMAKE_CUDA_ARCHITECTURES="${QERL_CUDA_ARCH:-90}" "${@:2}"
# QERL_BUILD_TARGETS (space-separated) limits the build to those targets.
cmake --build build-cuda -j "$(nproc)" ${QERL_BUILD_TARGETS:+--target $QERL_BUILD_TARGETS}
echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
