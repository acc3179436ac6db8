#!/usr/bin/env bash
# On the GPU machine: per-op profile of decode and prefill (LLM8_PROFILE=1) on a random 7B model,
# and tg128 with and without the decode graph.
set -uo pipefail
GPU_TARGETS="llm8-bench llm8-mkmodel" source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
$B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type ${TYPE:-q4_0} --vocab .dev/data/vocab/ggml-vocab-llama-spm.gguf -o /tmp/m.gguf 2>&1 | tail -1
echo "== tg, graph"; $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 2 | tail -1
echo "== tg, no graph"; LLM8_GRAPH=0 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 2 | tail -1
echo "== profile tg"; LLM8_PROFILE=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 64 -r 1 2>&1 | tail -16
echo "== profile pp512"; LLM8_PROFILE=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 512 -n 0 -r 1 2>&1 | tail -16
