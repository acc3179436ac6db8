#!/usr/bin/env bash
# On the GPU machine: the CUDA test binaries in full (ops, model, the batch tests, sampling), the
# CLI's default attention mode with the guard's report, then memcheck and racecheck over the
# 8-bit attention test (LLM8_TEST_QUICK shapes). One log: $OUT/log.txt.
set -uo pipefail
export GPU_TARGETS="test_ops_cuda test_model_cuda test_batch test_sampling_cuda llm8-cli"
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
pick() { grep -E "PPL|KLD|Failure|Expected|Which|actual|OK \]|PASSED|SKIPPED|FAILED|differs|worst|ERROR SUMMARY|RACECHECK SUMMARY" | head -${1:-120}; }
{
echo "== test_ops_cuda"; $B/tests/test_ops_cuda 2>&1 | pick 80
echo "== test_model_cuda"; $B/tests/test_model_cuda 2>&1 | pick 60
echo "== test_batch"; $B/tests/test_batch --gtest_filter='*Gpu*' 2>&1 | pick 30
echo "== test_sampling_cuda"; $B/tests/test_sampling_cuda 2>&1 | grep -E "PASSED|FAILED|Failure" | head
echo "== llm8-cli, default attention on the GPU"
$B/tools/cli/llm8-cli -m .dev/data/models/tiny-llama-hd128-q8_0.gguf -p "The history of the city" \
    -n 24 --temp 0 --attn-report 2>&1 | tail -14
for tool in memcheck racecheck; do
  echo "== compute-sanitizer $tool, EightBit (quick)"
  LLM8_TEST_QUICK=1 timeout 200 compute-sanitizer --tool $tool $B/tests/test_ops_cuda --gtest_filter='*EightBit*' 2>&1 | pick 20
done
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
