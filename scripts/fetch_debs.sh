#!/usr/bin/env bash
# Downloads the Debian packages qerl builds against into ./debs (ignored by
# git), for a CUDA host that has no apt and no internet: carry the folder
# there and run scripts/build_cuda_host.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p debs && cd debs
apt-get download libcaf-dev libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17 \
  libtomlplusplus-dev libtomlplusplus3 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  doctest-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 \
  libpcre2-32-0 libpcre2-posix3
ls -1 *.deb | wc -l
