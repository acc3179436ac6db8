#!/usr/bin/env bash
# On the GPU machine: --attn auto against --attn sage (the fastest 8-bit mode on the GPU) on the
# llama-3-8B shape (random Q8_0 weights): pp512 and tg128 at depths 4096 and 16384, with
# --attn-report for auto's per-layer choice. One log: $OUT/log.txt.
set -uo pipefail
export GPU_TARGETS="llm8-bench llm8-mkmodel"
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
{
$B/tools/mkmodel/llm8-mkmodel --preset llama3-8b --type q8_0 --vocab .dev/data/vocab/llama3-vocab.gguf -o /tmp/l3.gguf 2>&1 | tail -1
for a in sage auto; do
  echo "== --attn $a"
  $B/tools/bench/llm8-bench -m /tmp/l3.gguf -p 512 -n 128 -d 4096,16384 -r ${REPS:-3} --attn $a --attn-report 2>&1 | grep -E "^\||layer|^ +[0-9]+ " | head -50
done
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
