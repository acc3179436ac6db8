#!/usr/bin/env bash
# On the GPU machine (issue 15): the K-quant / i-quant decode path. Builds the targets it needs,
# runs the CUDA tests of the K split layout and the model-level CPU-vs-GPU checks, the decode
# GEMV per type against the copy rate, and llm8-bench on random-weight llama-2-7B models of each
# type (made by llm8-mkmodel in the background while the previous one is timed). Everything
# goes to $OUT/kquant.txt; lines starting with PASS / FAIL / INFO summarize.
set -uo pipefail
cd "$(dirname "$0")/.."
export GPU_TARGETS="test_ops_cuda test_model_cuda llm8-bench llm8-bench-gemv llm8-mkmodel"
source scripts/gpu-build.sh || { echo "FAIL build (see $OUT/build.log)"; exit 1; }
B=./build-gpu
R="$OUT/kquant.txt"
: > "$R"
log() { echo "$@" | tee -a "$R"; }
log "== $(cat "$OUT/gpu.txt" 2>/dev/null) / $(git log --oneline -1 2>/dev/null)"
V=.dev/data/vocab/ggml-vocab-llama-spm.gguf
TYPES=${TYPES:-Q4_K_M q6_K Q5_K_M Q3_K_M Q2_K iq4_xs}
MK=/tmp/kq-models
mkdir -p "$MK"
# Models first, in the background (CPU), so that they are ready when the tests are done.
(
    for t in $TYPES; do
        $B/tools/mkmodel/llm8-mkmodel --preset llama2-7b --type "$t" --vocab "$V" \
            -o "$MK/$t.part" > "$MK/$t.log" 2>&1 && mv "$MK/$t.part" "$MK/$t.gguf"
        touch "$MK/$t.done"
    done
) &
MKPID=$!

gtest() {  # name binary filter
    local name=$1 bin=$2 filter=$3
    log "== $name ($filter)"
    $bin --gtest_filter="$filter" > "$OUT/$name.log" 2>&1
    local rc=$?
    grep -E "Failure|Expected|Which|actual|^\[  (FAILED|PASSED|SKIPPED) |decode NLL|OK \]" \
        "$OUT/$name.log" | head -80 | tee -a "$R"
    local skipped
    skipped=$(grep -c "^\[  SKIPPED \] [A-Za-z]" "$OUT/$name.log")
    if [[ $rc == 0 ]]; then
        log "PASS $name ($skipped skipped)"
    else
        log "FAIL $name (rc $rc; $OUT/$name.log)"
    fi
}
# Every CUDA op test (the K split ones: KSplit*, SplitLayout*, DecodeGemv*).
gtest ops_cuda $B/tests/test_ops_cuda '*'
gtest model_kquant $B/tests/test_model_cuda \
    '*LogitsMatchCpu*:*KQuantDecode*:*DecodeKernelsKeep*:*GreedyText*'

log "== decode GEMV per type (llm8-bench-gemv; last column: the file's bytes against the copy rate)"
$B/bench/gemv/llm8-bench-gemv q4_0 q4_K q5_K q6_K q3_K q2_K iq4_xs iq4_nl 2>&1 | tee "$OUT/gemv.txt" >> "$R"
# The big matrices' share of the copy rate, per type (file bytes): the issue asks >= 65%.
for t in q4_0 q4_K q5_K q6_K q3_K q2_K iq4_xs iq4_nl; do
    awk -F'|' -v t="$t" '$2 ~ " "t" " && $3 ~ /gate\+up|down|output/ {
        gsub(/[ %]/, "", $7); v = $7 + 0; if (n == 0 || v < m) m = v; s += v; n++ }
        END { if (n) printf "INFO %s gemv big matrices: min %.0f%%, mean %.0f%% of copy rate (file bytes)\n",
              t, m, s / n }' "$OUT/gemv.txt" | tee -a "$R"
done
COPY=$(grep -o "copy rate (read + write) [0-9]*" "$OUT/gemv.txt" | awk '{ print $NF }')
COPY=${COPY:-4000}

log "== llm8-bench, llama-2-7B shapes, random weights: -p 512 -n 128 -r 3"
for t in $TYPES; do
    while [[ ! -e "$MK/$t.done" ]]; do sleep 2; done
    if [[ ! -e "$MK/$t.gguf" ]]; then
        log "FAIL mkmodel $t: $(tail -2 "$MK/$t.log")"
        continue
    fi
    size=$(stat -c %s "$MK/$t.gguf")
    $B/tools/bench/llm8-bench -m "$MK/$t.gguf" -p 512 -n 128 -r 3 > "$OUT/bench_$t.txt" 2>&1
    cat "$OUT/bench_$t.txt" | grep -E "^\|" >> "$R"
    tg=$(awk -F'|' '{ for (i = 1; i < NF; i++) if ($i ~ /tg128/) { split($(i + 1), a, " "); print a[1] } }' \
        "$OUT/bench_$t.txt" | head -1)
    if [[ -z "$tg" ]]; then
        log "FAIL bench $t: no tg128 row ($(tail -2 "$OUT/bench_$t.txt"))"
    else
        # The byte limit: every weight byte of the file read once per token (the embedding,
        # ~2% of it, is not: a slight overestimate) at the copy rate measured above.
        pct=$(awk -v t="$tg" -v s="$size" -v c="$COPY" 'BEGIN { printf "%.0f", 100 * t * s / 1e9 / c }')
        log "INFO $t tg128 $tg t/s = $pct% of the byte limit (file $size bytes/token at the copy rate $COPY GB/s)"
        if [[ $t == Q4_K_M ]]; then
            v=$(awk -v t="$tg" 'BEGIN { print (t >= 450 ? "PASS" : "FAIL") }')
            log "$v Q4_K_M tg128 $tg t/s (target >= 450: 1.6x llama.cpp's 280; before this change 181)"
        fi
    fi
    rm -f "$MK/$t.gguf"
done
wait $MKPID
rm -rf "$MK"
log "== done"
grep -E "^(PASS|FAIL)" "$R"
