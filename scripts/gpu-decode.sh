#!/usr/bin/env bash
# On the GPU machine: where a decode token's time goes with each KV cache. llama-3-8B shape
# (random Q8_0 weights): tg128 at depth 0/4096/16384 with the F16 and the INT8 cache, the
# per-op decode profile (LLM8_PROFILE, graphs off) at depth 16384 for both, and the decode rows
# of bench/attention. One log: $OUT/decode.txt. SKIP_BUILD=1 reuses build-gpu.
set -uo pipefail
export GPU_TARGETS="llm8-bench llm8-mkmodel llm8-bench-attention"
if [[ -z ${SKIP_BUILD:-} ]]; then source "$(dirname "$0")/gpu-build.sh" || exit 1; fi
B=./build-gpu
R=${REPS:-2}
{
[[ -f /tmp/l3.gguf ]] || $B/tools/mkmodel/llm8-mkmodel --preset llama3-8b --type q8_0 \
    --vocab .dev/data/vocab/llama3-vocab.gguf -o /tmp/l3.gguf 2>&1 | tail -1
bench() { $B/tools/bench/llm8-bench -m /tmp/l3.gguf -r $R --attn f16 "$@" 2>&1 | grep "^|"; }
echo "== tg128, F16 cache"; bench -p 0 -n 128 -d 0,4096,16384
echo "== tg128, INT8 cache"; bench -p 0 -n 128 -d 0,4096,16384 -ctk int8 -ctv int8
for c in f16 int8; do
  echo "== decode profile at depth 16384, $c cache"
  LLM8_PROFILE=1 $B/tools/bench/llm8-bench -m /tmp/l3.gguf -r 1 --attn f16 -p 0 -n 64 -d 16384 \
      -ctk $c -ctv $c 2>&1 | sed -n '/decode:/,/prefill:/p' | grep -v "prefill:"
done
echo "== bench/attention (decode rows)"
$B/bench/attention/llm8-bench-attention 2>&1 | grep -E "^\| (shape|decode)|^\| ---"
} > "$OUT/decode.txt" 2>&1
cut -c1-300 "$OUT/decode.txt" | tail -c 6000
