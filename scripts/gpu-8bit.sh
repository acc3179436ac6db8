#!/usr/bin/env bash
# On the GPU machine: the 8-bit attention work's check: build the CUDA tests and benchmarks,
# run the attention / INT8-cache / 8-bit tests and the model tests, then the attention kernel
# benchmark next to torch SDPA. One log: $OUT/log.txt.
set -uo pipefail
export GPU_TARGETS=${GPU_TARGETS:-"test_ops_cuda test_model_cuda test_batch llm8-bench-attention"}
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
pick() { grep -E "nmse|PPL|KLD|FAILED|Failure|Expected|Which|Value of|Actual|OK \]|PASSED|SKIPPED|error|layer|guard" | head -${1:-150}; }
{
    echo "== test_ops_cuda (attention, INT8, 8-bit)"
    $B/tests/test_ops_cuda --gtest_filter='*ttention*:*Int8*:*EightBit*' 2>&1 | pick 200
    echo "== test_model_cuda"
    $B/tests/test_model_cuda 2>&1 | pick 150
    echo "== test_batch (GPU)"
    $B/tests/test_batch --gtest_filter='*Gpu*' 2>&1 | pick 40
    if [[ "${BENCH:-1}" != 0 ]]; then
        echo "== attention: llm8"; $B/bench/attention/llm8-bench-attention 2>&1
        echo "== attention: torch SDPA"; python3 bench/attention/sdpa_bench.py 2>&1
    fi
} > "$OUT/log.txt" 2>&1
tail -c 11000 "$OUT/log.txt"
