#!/usr/bin/env bash
# llm8 against llama.cpp on the same GGUF files (issue 20: MoE and MLA): small random-weight
# models of each architecture in llama.cpp's key and tensor naming (llm8-mkmodel's tiny-*
# presets), one fixed token sequence, the logits of every position from both programs on the
# CPU, compared by scripts/logits-compare.cpp (largest difference, KL, same top token,
# perplexity of the sequence's next tokens).
#   LLAMA_CPP=/path/to/llama.cpp LLAMA_BUILD=/path/to/its/build bash scripts/logits-compare.sh
# LLAMA_BUILD: a CPU build of llama.cpp (libllama.so in bin/; the tree vendored in the
# llama-cpp-python source distribution on PyPI, docs/benchmarks.md has the recipe). BUILD: an
# llm8 build (default build). MODELS: llm8-mkmodel presets, PRESET:LAYERS to set the layer
# count (default: Mixtral, Qwen3-MoE, DeepSeek with a low-rank Q as V2, with V3's routing,
# and the V2-Lite form with 27 layers: llama.cpp takes a deepseek2 file without q_lora_rank only at 27 layers,
# V2-Lite's count). TYPE: weight type (default f32). N: tokens (default 128). The reference
# runs with float32 K/V and no flash attention, as llm8's CPU backend computes.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_CPP:?the llama.cpp source tree}" "${LLAMA_BUILD:?its CPU build}"
BUILD=${BUILD:-build}
W=${WORK:-/tmp/llm8-logits}
mkdir -p "$W"
V=${VOCABS:-../shared/data/vocab}
cuda_libs=()
if grep -q "LLM8_HAVE_CUDA" "$BUILD/CMakeCache.txt" 2>/dev/null || [[ -d /usr/local/cuda/lib64 ]]; then
    cuda_libs=(-L/usr/local/cuda/lib64 -lcudart -lcublas -lcublasLt)
fi
g++ -O2 -std=c++17 -Iinclude -I"$BUILD/include" scripts/logits-llm8.cpp "$BUILD/libllm8.a" \
    -o "$W/logits-llm8" -fopenmp -lopenblas -lpcre2-8 "${cuda_libs[@]}" -lpthread
g++ -O2 -std=c++17 -I"$LLAMA_CPP/include" -I"$LLAMA_CPP/ggml/include" scripts/logits-llamacpp.cpp \
    -o "$W/logits-llamacpp" -L"$LLAMA_BUILD/bin" -lllama -lggml -lggml-base \
    -Wl,-rpath,"$(realpath "$LLAMA_BUILD/bin")"
g++ -O2 -std=c++17 scripts/logits-compare.cpp -o "$W/logits-compare"
for model in ${MODELS:-tiny-mixtral tiny-qwen3moe tiny-deepseek2-q tiny-deepseek3 tiny-deepseek2:27}; do
    preset=${model%%:*}
    layers=0
    [[ $model == *:* ]] && layers=${model##*:}
    case $preset in
        *qwen3*) vocab=$V/qwen3-vocab.gguf bos= ;;
        *deepseek*) vocab=$V/ggml-vocab-deepseek-llm.gguf bos=100000 ;;
        *) vocab=$V/ggml-vocab-llama-spm.gguf bos=1 ;;
    esac
    name=${model/:/-L}
    f=$W/$name.gguf
    "$BUILD/tools/mkmodel/llm8-mkmodel" --preset "$preset" --type "${TYPE:-f32}" --vocab "$vocab" \
        --layers "$layers" -o "$f" --log-disable
    # BOS (where the vocabulary has one), then ids from a fixed LCG below 30000.
    awk -v n="${N:-128}" -v bos="$bos" 'BEGIN { s = 12345; c = 0;
        if (bos != "") { print bos; c = 1 }
        for (; c < n; c++) { s = (s * 75 + 74) % 65537; print s % 30000 } }' \
        > "$W/$name.tok"
    "$W/logits-llamacpp" "$f" "$W/$name.tok" "$W/$name.lcp.f32" > "$W/$name.lcp.log" 2>&1 ||
        { echo "$name: llama.cpp failed"; tail -5 "$W/$name.lcp.log"; continue; }
    "$W/logits-llm8" "$f" "$W/$name.tok" "$W/$name.l8.f32" > /dev/null
    n_vocab=$(grep -oE "x [0-9]+ logits" "$W/$name.lcp.log" | grep -oE "[0-9]+")
    echo "$name (${TYPE:-f32}): $("$W/logits-compare" "$W/$name.lcp.f32" "$W/$name.l8.f32" "$W/$name.tok" "$n_vocab")"
    rm -f "$W/$name.lcp.f32" "$W/$name.l8.f32" "$f"
done
