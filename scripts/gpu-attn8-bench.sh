#!/usr/bin/env bash
# On the GPU machine: llama-3-8B shape (random Q8_0 weights, llm8-mkmodel) through llm8-bench:
# tg128 with the F16 and the INT8 cache, pp512 with --attn f16 / sage / int8 / auto at depths
# 0, 4096, 16384, tg128 at depth with sage and with auto (its monitor on), and the load time
# that auto's calibration adds. One log: $OUT/log.txt.
set -uo pipefail
export GPU_TARGETS="llm8-bench llm8-mkmodel"
source "$(dirname "$0")/gpu-build.sh" || exit 1
B=./build-gpu
V=.dev/data/vocab
R=${REPS:-2}
{
$B/tools/mkmodel/llm8-mkmodel --preset llama3-8b --type q8_0 --vocab $V/llama3-vocab.gguf -o /tmp/l3.gguf 2>&1 | tail -1
M=/tmp/l3.gguf
bench() { $B/tools/bench/llm8-bench -m $M -r $R "$@" 2>&1 | grep "^|"; }
echo "== tg128, F16 cache"; bench -p 0 -n 128 -d 0,4096,16384 --attn f16
echo "== tg128, INT8 cache"; bench -p 0 -n 128 -d 0,4096,16384 --attn f16 -ctk int8 -ctv int8
for a in f16 sage int8 auto; do
  echo "== pp512, --attn $a"; bench -p 512 -n 0 -d 0,4096,16384 --attn $a
done
for a in sage auto; do
  echo "== tg128 at depth, --attn $a"; bench -p 0 -n 128 -d 4096,16384 --attn $a
done
for a in sage auto; do
  s=$(date +%s.%N); $B/tools/bench/llm8-bench -m $M -p 16 -n 0 -r 1 --attn $a > /dev/null 2>&1; e=$(date +%s.%N)
  echo "load + pp16 once, --attn $a: $(python3 -c "print(round($e - $s, 2))") s"
done
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
