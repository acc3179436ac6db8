#!/usr/bin/env bash
# On the GPU machine: where the batched decode GEMM's time goes. ncu's full report of
# gemm_q8act_mma on the llama-2-7B gate+up shape (llm8-bench-gemv, TYPE default q4_0) at the
# token counts in NS (default 16 64), then LLM8_PROFILE's decode table of a batched-bench run at
# B = PROFILE_B (default 16) sequences. SKIP_BUILD=1 reuses build-gpu.
set -uo pipefail
export GPU_TARGETS="llm8-bench-gemv llm8-batched-bench llm8-mkmodel"
if [[ -z ${SKIP_BUILD:-} ]]; then source "$(dirname "$0")/gpu-build.sh" || exit 1; fi
B=./build-gpu
for n in ${NS:-16 64}; do
    echo "== ncu gemm_q8act_mma, gate+up, $n tokens"
    # launch 640: past the Wq shape's 35 warm-up copies and 600 timed calls
    timeout 240 ncu --clock-control none --set full --kernel-name regex:gemm_q8act \
        --launch-skip ${SKIP:-640} --launch-count 1 $B/bench/gemv/llm8-bench-gemv -n $n \
        ${TYPE:-q4_0} > "$OUT/ncu-gemm-$n.txt" 2>&1
    grep -E "gemm_q8act|Duration|DRAM Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Block Limit|Eligible Warps|No Eligible|Bank Conflicts|One or More|L1/TEX Hit|Shared Memory Configuration Size" "$OUT/ncu-gemm-$n.txt" | head -40
    grep -B1 -A3 -E "stall|Stall" "$OUT/ncu-gemm-$n.txt" | grep -vE "^--$" | cut -c1-240 | head -30
done
if [[ -n ${PROFILE_B:-16} ]]; then
    V=.dev/data/vocab
    [[ -f /tmp/l2-q4_0.gguf ]] || $B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type q4_0 \
        --vocab $V/ggml-vocab-llama-spm.gguf -o /tmp/l2-q4_0.gguf 2>&1 | tail -1
    echo "== LLM8_PROFILE batched-bench B=${PROFILE_B:-16}"
    LLM8_PROFILE=1 $B/tools/batched-bench/llm8-batched-bench -m /tmp/l2-q4_0.gguf -npp 512 \
        -ntg 64 -npl ${PROFILE_B:-16} -ngl 99 2>&1 | sed -n '/llm8 profile/,$p' | head -40
fi
