#!/usr/bin/env bash
# CI's fuzz smoke test: builds every libFuzzer target of fuzz/ (clang, ASan + UBSan) into
# ${BUILD_DIR:-build-fuzz} and runs each a fixed number of executions from its committed
# corpus, with a fixed seed, so a run is repeatable. A crash, a sanitizer report, a leak, a
# timeout (-timeout s per input) or an out-of-memory input fails the script; the input that
# did it is left in ${BUILD_DIR}/artifacts/<target>/.
#   FUZZ_RUNS=N   executions per target (default 50000; the reader gets 4x)
#   FUZZ_TARGETS="gguf sampler"   a subset of the targets (default: all seven)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# clang and its runtimes (libFuzzer, sanitizers, OpenMP) from Debian 12.
pkgs=(clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
BUILD_DIR=${BUILD_DIR:-build-fuzz}
RUNS=${FUZZ_RUNS:-50000}
t0=$(date +%s)
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLLM8_CUDA=OFF -DLLM8_NATIVE=OFF -DLLM8_BUILD_TESTS=OFF -DLLM8_FUZZ=ON \
    -DLLM8_SANITIZE=address,undefined
cmake --build "$BUILD_DIR" --target fuzzers -j "$(nproc)"
t1=$(date +%s)
leaks=1
if [[ "${LLM8_NO_LEAK_CHECK:-0}" == 1 ]]; then leaks=0; fi
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
declare -A dict=([gguf]=gguf [tokenizer_spm]=tokenizer [tokenizer_bpe]=tokenizer
                 [utf8]=tokenizer [chat_template]=chat_template [sampler]=""
                 [server_request]=server_request)
status=0
for t in ${FUZZ_TARGETS:-gguf tokenizer_spm tokenizer_bpe utf8 chat_template sampler server_request}; do
    runs=$RUNS
    if [[ $t == gguf ]]; then runs=$((RUNS * 4)); fi
    work="$BUILD_DIR/fuzz-smoke/$t"  # new inputs go here, never into the committed corpus
    art="$BUILD_DIR/artifacts/$t"
    rm -rf "$work"
    mkdir -p "$work" "$art"
    args=(-runs="$runs" -seed=1 -timeout=25 -rss_limit_mb=2560 -max_len=65536
          -print_final_stats=1 -artifact_prefix="$art/")
    if [[ -n ${dict[$t]} ]]; then args+=(-dict="fuzz/${dict[$t]}.dict"); fi
    s0=$(date +%s)
    dirs=("$work" "fuzz/corpus/$t")
    if [[ -d tests/data/fuzz/$t ]]; then dirs+=("tests/data/fuzz/$t"); fi  # fixed crashes
    if "$BUILD_DIR/fuzz/fuzz_$t" "${args[@]}" "${dirs[@]}" >"$BUILD_DIR/fuzz-$t.log" 2>&1
    then
        res=ok
    else
        res=FAILED
        status=1
        tail -n 60 "$BUILD_DIR/fuzz-$t.log"
    fi
    line=$(grep -E '^#[0-9]+' "$BUILD_DIR/fuzz-$t.log" | tail -n 1 || true)
    echo "fuzz_$t: $res in $(($(date +%s) - s0)) s: ${line}"
done
echo "fuzz-smoke.sh: build $((t1 - t0)) s, fuzzing $(($(date +%s) - t1)) s"
exit $status
