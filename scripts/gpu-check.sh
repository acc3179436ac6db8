#!/usr/bin/env bash
# On the GPU machine: build with CUDA, run the CUDA tests and the whole suite, time the CLI.
# Data the tests need travels in .dev/data (git-ignored), passed as LLM8_SHARED_DATA.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LLM8_SHARED_DATA=$PWD/.dev/data
# The GPU image has no Debian dev packages and no registry: the .debs travel in .dev/debs.
if [[ -d .dev/debs ]]; then
    mkdir -p /tmp/deps
    for f in .dev/debs/*.deb; do dpkg -x "$f" /tmp/deps; done
    export CMAKE_PREFIX_PATH=/tmp/deps/usr
    export PKG_CONFIG_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu/pkgconfig
    export PKG_CONFIG_SYSROOT_DIR=/tmp/deps
    export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DLLM8_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
      -DLLM8_SHARED_DATA="$LLM8_SHARED_DATA" > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
ninja -C build-gpu -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
echo "== test_ops_cuda"; ./build-gpu/tests/test_ops_cuda 2>&1 | tee "$OUT/test_ops_cuda.log" | grep -E "FAILED|Failure|Expected|Which|OK \]|PASSED|SKIPPED|error" | head -60
echo "== test_model_cuda"; ./build-gpu/tests/test_model_cuda 2>&1 | tee "$OUT/test_model_cuda.log" | grep -E "FAILED|Failure|PPL|OK \]|PASSED|SKIPPED|error|Which" | head -40
echo "== ctest"; (cd build-gpu && ctest -j16 --timeout 600 > "$OUT/ctest.log" 2>&1; tail -15 "$OUT/ctest.log")
echo "== cli"
./build-gpu/tools/cli/llm8-cli -p "Once upon a time" -n 64 --temp 0 2>&1 | tail -6
M=.dev/data/models/tiny-llama-hd128-q8_0.gguf
for ngl in 0 99; do ./build-gpu/tools/cli/llm8-cli -m $M -p "The history of" -n 200 --temp 0 --ignore-eos -ngl $ngl 2>&1 | tail -3; done
./build-gpu/tools/perplexity/llm8-perplexity -m $M -f .dev/data/text/wiki.test.raw -c 512 --chunks 40 2>&1 | tail -2
