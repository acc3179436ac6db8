#!/usr/bin/env bash
# On the GPU machine: accuracy of the attention modes and caches on a trained model
# (MODEL=.dev/data/models/<name>.gguf): perplexity and KL divergence against the GPU's FP16 run
# over CHUNKS chunks of 512 tokens of wiki.test.raw. One log: $OUT/log.txt.
set -uo pipefail
export GPU_TARGETS="llm8-perplexity"
source "$(dirname "$0")/gpu-build.sh" || exit 1
P=./build-gpu/tools/perplexity/llm8-perplexity
M=${MODEL:?MODEL=path of the gguf}
T=.dev/data/text/wiki.test.raw
N=${CHUNKS:-40}
{
echo "== $M, $N chunks"
$P -m $M -f $T --chunks $N --kl-divergence-base /tmp/base.kld 2>&1 | grep -E "Final estimate"
for cfg in "--attn sage" "--attn int8" "--attn auto" "-ctk int8 -ctv int8" "--attn auto -ctk int8 -ctv int8"; do
  echo "== $cfg"
  $P -m $M --kl-divergence-base /tmp/base.kld --kl-divergence $cfg 2>&1 | grep -E "Mean PPL|Mean    KLD|Same top|RMS|guard" | head -16
done
} > "$OUT/log.txt" 2>&1
cut -c1-300 "$OUT/log.txt" | tail -c 11000
