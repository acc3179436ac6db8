#!/usr/bin/env bash
# On the GPU machine: CUDA tests, then decode A/B runs (default vs LLM8_SPLIT)
# on random 7B models, all in one call.
set -uo pipefail
CTEST=${CTEST:-0} source "$(dirname "$0")/gpu-check.sh" || exit 1
B=./build-gpu
for t in ${TYPES:-q4_0 q8_0}; do
    $B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type $t --vocab .dev/data/vocab/ggml-vocab-llama-spm.gguf -o /tmp/m.gguf 2>&1 | tail -1
    echo "== $t default"; $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 512 -n 128 -r 3 | tail -2
    echo "== $t LLM8_SPLIT"; LLM8_SPLIT=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
done
