#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine lacks to build and test qerl:
# Debian packages (compilers, CAF, toml++, spdlog, doctest, ...) and the
# torch==2.11.0 wheel from PyPI (LibTorch for C++, plus the Python oracles).
# Also plotly and tensorboard (qerl-report, qerl-run's TensorBoard logs) and,
# with QERL_TEST_DEPS=1 (scripts/test.sh), Debian's chromium for the report's
# headless-browser test.
# Idempotent: each step checks first and does nothing when already satisfied.
# Prints the python interpreter to use on its last line (consumed by build.sh).
set -euo pipefail

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev
  libcaf-dev libtomlplusplus-dev libspdlog-dev libfmt-dev doctest-dev
  nlohmann-json3-dev libcli11-dev libpcre2-dev
  python3 python3-pip python3-venv
)
# The headless browser of the report test (tests/scripts/qerl_report_test.py).
if [ "${QERL_TEST_DEPS:-0}" = 1 ]; then apt_packages+=(chromium); fi
torch_version="2.11.0"
# Python oracles for the peer-parity tests (HF is the truth for models and
# tokenizers); pinned so a test's reference does not move under it.
oracle_packages=(numpy "transformers==5.23.0" "tokenizers==0.23.3" "safetensors==0.8.0" "compressed-tensors==0.20.1" "peft==0.21.2")
# qerl-report's plots (plotly's JavaScript is inlined in the report) and the
# TensorBoard writer of qerl-run (scripts/qerl_tensorboard.py) and reader.
report_packages=("plotly==6.9.0" "tensorboard==2.21.0")

log() { echo "[setup] $*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "[setup] need root for apt-get: run as root or install sudo" >&2; exit 1; fi
}

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  log "apt: all packages present"
fi

# Python: prefer an interpreter that already has the right torch; else pip into
# python3 when it is not externally managed (pyenv, venvs); else a private venv.
has_torch() { "$1" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$torch_version' else 1)" 2>/dev/null; }
py=""
for cand in "${QERL_PYTHON:-}" python3 "$HOME/.local/share/qerl/venv/bin/python"; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && has_torch "$cand" && { py=$(command -v "$cand"); break; }
done
if [ -z "$py" ]; then
  if python3 -c 'import sys,sysconfig,os; sys.exit(1 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"],"EXTERNALLY-MANAGED")) and sys.prefix==sys.base_prefix else 0)'; then
    py=$(command -v python3)
  else
    venv="$HOME/.local/share/qerl/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
    py="$venv/bin/python"
  fi
  log "pip: installing torch==$torch_version into $py (large download, once)"
  "$py" -m pip install -q "torch==$torch_version" >&2
fi
if ! "$py" -c 'import numpy, transformers, tokenizers, safetensors, compressed_tensors, peft
assert (transformers.__version__, tokenizers.__version__, safetensors.__version__, compressed_tensors.__version__, peft.__version__) == ("5.23.0", "0.23.3", "0.8.0", "0.20.1", "0.21.2")' 2>/dev/null; then
  log "pip: installing ${oracle_packages[*]}"
  "$py" -m pip install -q "${oracle_packages[@]}" >&2
fi
if ! "$py" -c 'import plotly, tensorboard
assert (plotly.__version__, tensorboard.__version__) == ("6.9.0", "2.21.0")' 2>/dev/null; then
  log "pip: installing ${report_packages[*]}"
  "$py" -m pip install -q "${report_packages[@]}" >&2
fi
log "python with torch $torch_version: $py"
echo "$py"
