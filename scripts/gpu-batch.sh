#!/usr/bin/env bash
# On the GPU machine: the batched forward's checks and benchmarks (issue: one batched forward
# pass). Builds, runs the CUDA op, batch and model tests, then the decode GEMV at 1 / 16 / 64
# tokens (llm8-bench-gemv -n), llm8-batched-bench on the llama-2-7B shape Q4_0 (-npp 512
# -ntg 128 -npl 1,4,16,64) and the paged attention benchmark.
# TESTS: the test binaries to run (default all three); FILTER: a gtest filter for them;
# BENCH=0 skips the benchmarks; ATTN=0 skips the attention benchmark.
set -uo pipefail
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
for t in ${TESTS:-test_ops_cuda test_batch test_model_cuda}; do
    echo "== $t"
    $B/tests/$t --gtest_filter="${FILTER:-*}" 2>&1 | tee "$OUT/$t.log" |
        grep -E "FAILED|Failure|Expected|Which|worst|PPL|PASSED|error" | head -30
done
if [[ "${BENCH:-1}" != 0 ]]; then
    echo "== gemv"
    $B/bench/gemv/llm8-bench-gemv -n ${GEMV_N:-1,16,64} ${GEMV_TYPES:-q4_0 q8_0} 2>&1 |
        tee "$OUT/gemv.md" | grep -E "device|Wq|gate|down 4096 x 11008"
    V=.dev/data/vocab
    $B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type q4_0 --vocab $V/ggml-vocab-llama-spm.gguf -o /tmp/l2-q4_0.gguf 2>&1 | tail -1
    echo "== batched-bench"
    $B/tools/batched-bench/llm8-batched-bench -m /tmp/l2-q4_0.gguf -npp 512 -ntg 128 -npl ${NPL:-1,4,16,64} -ngl 99 -v 2>&1 | tee "$OUT/batched.md"
    if [[ "${ATTN:-1}" != 0 ]]; then
        echo "== attention"
        $B/bench/attention/llm8-bench-attention 2>&1 | tee "$OUT/attn_llm8.md"
    fi
fi
