#!/usr/bin/env bash
# On the GPU machine: unpack the carried Debian dev packages (.dev/debs/*.deb or
# .dev/deps.tar.xz; the image has none and no registry), then configure and build with CUDA
# into build-gpu. Source it: it exports paths.
# GPU_TARGETS: the ninja targets (default all); GPU_CMAKE_ARGS: extra configure arguments, e.g.
# -DCMAKE_CUDA_FLAGS=-lineinfo for sanitizer reports with source lines.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LLM8_SHARED_DATA=$PWD/.dev/data
if [[ -d .dev/debs || -f .dev/deps.tar.xz ]]; then
    mkdir -p /tmp/deps
    # .dev/deps.tar.xz: the same packages unpacked, static libraries and docs dropped (smaller
    # under the carry limit).
    [[ -f .dev/deps.tar.xz ]] && tar xJf .dev/deps.tar.xz -C /tmp/deps
    for f in .dev/debs/*.deb; do [[ -e $f ]] && dpkg -x "$f" /tmp/deps; done
    # dpkg -x runs no alternatives: point libopenblas.so at the pthread build by hand.
    ob=/tmp/deps/usr/lib/x86_64-linux-gnu/openblas-pthread
    [[ -e $ob/libopenblas.so.0 && ! -e /tmp/deps/usr/lib/x86_64-linux-gnu/libopenblas.so ]] &&
        ln -s openblas-pthread/libopenblas.so.0 /tmp/deps/usr/lib/x86_64-linux-gnu/libopenblas.so
    export LD_LIBRARY_PATH=$ob:${LD_LIBRARY_PATH:-}
    export CMAKE_PREFIX_PATH=/tmp/deps/usr
    export PKG_CONFIG_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu/pkgconfig
    export PKG_CONFIG_SYSROOT_DIR=/tmp/deps
    export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
git log --oneline -1 2>/dev/null | tee "$OUT/commit.txt"
cmake -S . -B build-gpu -G Ninja -DLLM8_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
      -DLLM8_SHARED_DATA="$LLM8_SHARED_DATA" ${GPU_CMAKE_ARGS:-} > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; return 1; }
ninja -C build-gpu -j16 ${GPU_TARGETS:-} > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; return 1; }
