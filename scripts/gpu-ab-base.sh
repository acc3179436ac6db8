#!/usr/bin/env bash
# On the GPU machine: builds a baseline commit's source tree (.dev/base, from
# `git archive COMMIT | tar -x -C .dev/base`) into build-base, then times llm8-bench for the
# baseline and this tree alternately on the same random-weight files (one A/B run).
#   MODELS="llama2-7b:q4_0 llama2-7b:q8_0 llama2-7b:f16 llama3-8b:q8_0"  DEPTHS=0,4096,16384
set -uo pipefail
source "$(dirname "$0")/gpu-build.sh" || exit 1
(cd .dev/base && cmake -S . -B ../../build-base -G Ninja -DLLM8_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90a -DLLM8_BUILD_TESTS=OFF > "$OUT/cmake-base.log" 2>&1 &&
 ninja -C ../../build-base -j16 llm8-bench llm8-mkmodel > "$OUT/build-base.log" 2>&1) ||
    { echo "baseline build failed"; tail -20 "$OUT/build-base.log"; exit 1; }
V=.dev/data/vocab
for mt in ${MODELS:-llama2-7b:q4_0}; do
    preset=${mt%%:*}; type=${mt##*:}
    vocab=$V/ggml-vocab-llama-spm.gguf
    [[ $preset == llama3* ]] && vocab=$V/llama3-vocab.gguf
    f=/tmp/$preset-$type.gguf
    ./build-gpu/tools/mkmodel/llm8-mkmodel --preset $preset --type $type --vocab $vocab -o $f 2>&1 | tail -1
    d=0; [[ $preset == llama3* ]] && d=${DEPTHS:-0}
    for round in $(seq ${ROUNDS:-2}); do
        for which in base new; do
            b=./build-gpu; [[ $which == base ]] && b=./build-base
            echo "== $which $preset $type (round $round)"
            $b/tools/bench/llm8-bench -m $f -p 512 -n 128 -d $d -r ${REPS:-3} -ngl 99 2>&1 | grep -E "^\| llama" | tee -a "$OUT/ab_$which.md"
        done
    done
    rm -f $f
done
