#!/usr/bin/env bash
# On the GPU machine: build with CUDA, run the CUDA tests and the whole suite, time the CLI.
set -uo pipefail
source "$(dirname "$0")/gpu-build.sh" || exit 1
echo "== test_ops_cuda"; ./build-gpu/tests/test_ops_cuda 2>&1 | tee "$OUT/test_ops_cuda.log" | grep -E "FAILED|Failure|Expected|Which|OK \]|PASSED|SKIPPED|error" | head -60
echo "== test_model_cuda"; ./build-gpu/tests/test_model_cuda 2>&1 | tee "$OUT/test_model_cuda.log" | grep -E "FAILED|Failure|PPL|OK \]|PASSED|SKIPPED|error|Which" | head -40
if [[ "${CTEST:-1}" != 0 ]]; then
    echo "== ctest"
    (cd build-gpu && ctest -j16 --timeout 600 --output-on-failure > "$OUT/ctest.log" 2>&1
     grep -E "tests passed|FAILED|\(Failed\)" "$OUT/ctest.log" | head -20)
fi
true
