#!/usr/bin/env bash
# On the GPU machine: the model, batch and sampling CUDA tests after the default-mode change.
set -uo pipefail
export GPU_TARGETS="test_model_cuda test_batch test_sampling_cuda llm8-cli"
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
pick() { grep -E "PPL|KLD|Failure|Expected|Which|actual|OK \]|PASSED|SKIPPED|FAILED|differs|worst" | head -${1:-80}; }
{
echo "== test_model_cuda"; $B/tests/test_model_cuda 2>&1 | pick 60
echo "== test_batch"; $B/tests/test_batch --gtest_filter='*Gpu*' 2>&1 | pick 30
echo "== test_sampling_cuda"; $B/tests/test_sampling_cuda 2>&1 | grep -E "PASSED|FAILED|Failure" | head
echo "== llm8-cli default on the GPU"
$B/tools/cli/llm8-cli -m .dev/data/models/tiny-llama-hd128-q8_0.gguf -p "The history of the city" -n 24 --temp 0 --attn-report 2>&1 | tail -14
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
