#!/usr/bin/env bash
# On the GPU machine: CUDA tests, then decode A/B runs on random 7B models, all in one call:
# the default, runs with A/B switches (AB) and the float GEMV of session 1
# (LLM8_DECODE_GEMV=0 LLM8_SPLIT=0, with OLD=1). TYPES picks the weight types, PP the prompt
# length, AB the switches each timed alone (default "LLM8_PDL=0"), PROFILE=1 adds the
# LLM8_PROFILE table.
set -uo pipefail
CTEST=${CTEST:-0} source "$(dirname "$0")/gpu-check.sh" || exit 1
B=./build-gpu
for t in ${TYPES:-q4_0 q8_0 f16}; do
    $B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type $t --vocab .dev/data/vocab/ggml-vocab-llama-spm.gguf -o /tmp/m.gguf 2>&1 | tail -1
    echo "== $t default"; $B/tools/bench/llm8-bench -m /tmp/m.gguf -p ${PP:-512} -n 128 -r 3 | tail -2
    for v in ${AB:-LLM8_PDL=0}; do
        echo "== $t $v"; env $v $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
    done
    if [[ -n "${OLD:-}" ]]; then
        echo "== $t session-1 GEMV"; LLM8_DECODE_GEMV=0 LLM8_SPLIT=0 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 128 -r 3 | tail -1
    fi
    if [[ -n "${PROFILE:-}" ]]; then
        echo "== $t LLM8_PROFILE"; LLM8_PROFILE=1 $B/tools/bench/llm8-bench -m /tmp/m.gguf -p 0 -n 32 -r 1 2>&1 | tail -14
    fi
    rm -f /tmp/m.gguf
done
