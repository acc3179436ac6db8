#!/usr/bin/env bash
# The INT8-cache batch test, the INT8 / 8-bit kernel tests and the attention benchmark.
set -uo pipefail
export GPU_TARGETS="test_ops_cuda test_batch llm8-bench-attention"
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
{
$B/tests/test_ops_cuda --gtest_filter='*Int8*:*EightBit*' 2>&1 | grep -E "Failure|Expected|actual|Which|OK \]|FAILED|tiles|decode" | grep -v "nmse [0-9.]*e-0[6789]\|nmse [0-9.]*e-1[0-9]" | head -60
for env in "" "LLM8_GRAPH=0"; do
  echo "== env: $env"
  env $env $B/tests/test_batch --gtest_filter='*Gpu*' 2>&1 | grep -E "worst|OK \]|FAILED  \]" | head -12
done
$B/bench/attention/llm8-bench-attention 2>&1 | grep -E "prefill|shape"
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
