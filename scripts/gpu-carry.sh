#!/usr/bin/env bash
# On this (CPU) machine: assemble .dev/, the ignored folder a GPU call carries (64 MiB limit):
# the Debian dev packages the GPU image lacks, unpacked and trimmed into .dev/deps.tar.xz, and
# the small models/vocabularies/text the GPU tests and benchmarks read, copied from ../shared.
# scripts/gpu-build.sh unpacks it there. Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${LLM8_SHARED:-../shared}
mkdir -p .dev/data/vocab .dev/data/models .dev/data/text
if [[ ! -f .dev/deps.tar.xz ]]; then
    tmp=$(mktemp -d)
    pkgs=(libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev libopenblas0 libgfortran5
          libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
          libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
          libcpp-httplib0.11 libbrotli-dev libbrotli1 libssl-dev libssl3 zlib1g-dev)
    (cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null)
    mkdir -p "$tmp/root"
    for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/root"; done
    find "$tmp/root" -name '*.a' | grep -vE 'gtest|gmock' | xargs -r rm -f
    rm -rf "$tmp/root/usr/share/doc" "$tmp/root/usr/share/man" "$tmp/root/usr/share/lintian" \
           "$tmp/root/usr/src"
    tar cJf .dev/deps.tar.xz -C "$tmp/root" .
    rm -rf "$tmp"
fi
cp -u "$shared"/data/vocab/ggml-vocab-llama-spm.gguf "$shared"/data/vocab/llama3-vocab.gguf \
      .dev/data/vocab/ 2>/dev/null || true
cp -u "$shared"/data/models/tiny-llama-hd128-q8_0.gguf "$shared"/data/models/tiny-llama-hd128.ref.json \
      .dev/data/models/ 2>/dev/null || true
cp -u "$shared"/data/text/wiki.test.raw .dev/data/text/ 2>/dev/null || true
cp -u "$shared"/data/README.md .dev/data/ 2>/dev/null || true
du -sh .dev
