#!/usr/bin/env bash
# Long fuzzing campaign for a many-core machine (written for 16 cores): every target of fuzz/
# in turn, JOBS libFuzzer processes at once sharing one corpus, until the target has done its
# executions. Prints, per target, the executions, the coverage (cov: edges, ft: features, from
# libFuzzer's final lines) and the crashes; inputs that crash are left in
# ${WORK}/<target>/crashes/ (copy each to tests/data/fuzz/<target>/ once fixed).
#   bash scripts/fuzz-long.sh [TARGET...]        (default: all six)
# Environment: JOBS (default nproc), RUNS_GGUF (10^7), RUNS (10^6 for every other target),
#   WORK (default build-fuzz/long), BUILD_DIR (default build-fuzz; built by fuzz-smoke.sh's
#   recipe when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
if [[ ! -x $BUILD_DIR/fuzz/fuzz_gguf ]]; then
    FUZZ_RUNS=1 bash scripts/fuzz-smoke.sh  # installs clang, builds the targets
fi
cmake --build "$BUILD_DIR" --target fuzzers
JOBS=${JOBS:-$(nproc)}
WORK=${WORK:-$BUILD_DIR/long}
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(gguf tokenizer_spm tokenizer_bpe utf8 chat_template sampler server_request)
fi
declare -A dict=([gguf]=gguf [tokenizer_spm]=tokenizer [tokenizer_bpe]=tokenizer
                 [utf8]=tokenizer [chat_template]=chat_template [sampler]=""
                 [server_request]=server_request)
leaks=1
if [[ "${LLM8_NO_LEAK_CHECK:-0}" == 1 ]]; then leaks=0; fi  # as in fuzz-smoke.sh
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
for t in "${targets[@]}"; do
    total=${RUNS:-1000000}
    if [[ $t == gguf ]]; then total=${RUNS_GGUF:-10000000}; fi
    per_job=$(((total + JOBS - 1) / JOBS))
    mkdir -p "$WORK/$t/corpus" "$WORK/$t/crashes" "$WORK/$t/logs"
    dir=$(realpath "$WORK/$t")
    exe=$(realpath "$BUILD_DIR/fuzz/fuzz_$t")
    args=(-runs="$per_job" -jobs="$JOBS" -workers="$JOBS" -timeout=25 -rss_limit_mb=4096
          -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/crashes/")
    if [[ -n ${dict[$t]} ]]; then args+=(-dict="$PWD/fuzz/${dict[$t]}.dict"); fi
    corpora=("$dir/corpus" "$PWD/fuzz/corpus/$t")
    if [[ -d tests/data/fuzz/$t ]]; then corpora+=("$PWD/tests/data/fuzz/$t"); fi
    s0=$(date +%s)
    # -jobs writes fuzz-N.log into the current folder: run from the logs folder.
    (cd "$dir/logs" && rm -f fuzz-*.log &&
     "$exe" "${args[@]}" "${corpora[@]}" > driver.log 2>&1) || true
    execs=$(cat "$dir"/logs/fuzz-*.log | awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}')
    cov=$(cat "$dir"/logs/fuzz-*.log | grep -oE 'cov: [0-9]+ ft: [0-9]+' | sort -t' ' -k2,2n | tail -n 1)
    crashes=$(find "$dir/crashes" -type f | wc -l)
    echo "fuzz_$t: $execs executions in $(($(date +%s) - s0)) s with $JOBS jobs; best $cov; crashes: $crashes"
done
