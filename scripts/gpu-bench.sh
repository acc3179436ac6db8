#!/usr/bin/env bash
# On the GPU machine: tests, then the benchmarks of docs/benchmarks.md: attention kernels next
# to torch SDPA, the decode GEMV against the copy rate, and llm8-bench on random-weight models
# of real shapes (llm8-mkmodel). PARTS picks among "attn gemv llama2 llama3" (default: all);
# CTEST=0 skips the whole ctest suite.
set -uo pipefail
source "$(dirname "$0")/gpu-check.sh" || exit 1
B=./build-gpu
PARTS=${PARTS:-attn gemv llama2 llama3}
has() { [[ " $PARTS " == *" $1 "* ]]; }
if has attn; then
    echo "== attention: llm8"; $B/bench/attention/llm8-bench-attention 2>&1 | tee "$OUT/attn_llm8.md"
    echo "== attention: torch SDPA"; python3 bench/attention/sdpa_bench.py 2>&1 | tee "$OUT/attn_torch.md"
fi
if has gemv; then
    echo "== decode GEMV"; $B/bench/gemv/llm8-bench-gemv 2>&1 | tee "$OUT/gemv.md"
fi
V=.dev/data/vocab
mk() { $B/tools/mkmodel/llm8-mkmodel --preset "$1" --type "$2" --vocab "$3" -o "/tmp/$1-$2.gguf" 2>&1 | tail -1; }
if has llama2; then
    for t in ${BENCH_TYPES:-q4_0 q8_0 f16}; do
        mk llama2-7b $t $V/ggml-vocab-llama-spm.gguf
        $B/tools/bench/llm8-bench -m /tmp/llama2-7b-$t.gguf -p ${PP:-512} -n 128 -r ${REPS:-3} 2>&1 | tee -a "$OUT/bench_llama2.md"
        rm -f /tmp/llama2-7b-$t.gguf
    done
fi
if has llama3; then
    mk llama3-8b q8_0 $V/llama3-vocab.gguf
    $B/tools/bench/llm8-bench -m /tmp/llama3-8b-q8_0.gguf -p 512 -n 128 -d ${DEPTHS:-0,4096,16384} -r ${REPS:-3} 2>&1 | tee "$OUT/bench_llama3.md"
fi
