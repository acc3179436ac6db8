#!/usr/bin/env bash
# On the GPU machine (device tool), from the repository root: build the GPU sampler's test and
# benchmark, check, and time it next to torch and FlashInfer. Logs and JSON go to $OUT.
#   bench/sampling/run_gpu.sh [build] [test] [test0] [stages] [bench0] [bench] [py] [sanitize] [sweep] [profile]
#                             [topk]
#   (default: build test test0 stages bench0 bench py)
# Carry: .dev/debs (gtest, CLI11, nlohmann-json headers) and .whl/fi_site (trimmed FlashInfer with
# its sampling module prebuilt for sm_90a, plus apache-tvm-ffi; see NOTES.md).
# Builds directly with nvcc/g++ (the sampler needs none of the rest of llm8), so files of the tree
# that are mid-edit elsewhere cannot break it; CMake builds the same targets in CI.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STEPS=${*:-build test test0 stages bench0 bench py}
has() { [[ " $STEPS " == *" $1 "* ]]; }
B=/tmp/llm8-sampling-build
mkdir -p $B
D=/tmp/deps
if [[ -d .dev/debs && ! -d $D/usr/include/gtest ]]; then
    mkdir -p $D
    for f in .dev/debs/*.deb; do dpkg -x "$f" $D; done
fi
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git log --oneline -1 2>/dev/null | tee "$OUT/commit.txt"

if has build; then
    echo "== build"
    t0=$(date +%s)
    NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -Iinclude -Isrc -Xptxas -v"
    CX="g++ -std=c++17 -O2 -march=native -DLLM8_HAVE_CUDA=1 -I/usr/local/cuda/include -I$D/usr/include -Iinclude -Isrc"
    ( $NV -c src/cuda/sampling/sample_cluster_sm90.cu -o $B/kernel.o > $B/ptxas.log 2>&1 || echo FAIL kernel ) &
    ( $NV -c src/cuda/sampling/sampling_api.cu -o $B/api.o || echo FAIL api ) &
    ( $NV -c src/cuda/sampling/sample_topk_sm90.cu -o $B/topk.o > $B/ptxas_topk.log 2>&1 || echo FAIL topk ) &
    ( $CX -c src/sampling/sampler.cpp -o $B/sampler.o || echo FAIL sampler ) &
    ( $CX -c tests/test_sampling_cuda.cpp -o $B/test.o || echo FAIL test ) &
    ( $CX -c bench/sampling/main.cpp -o $B/bench.o || echo FAIL bench ) &
    wait
    cat $B/ptxas.log $B/ptxas_topk.log | grep -E "registers|spill" | tee "$OUT/ptxas.txt"
    L="-L/usr/local/cuda/lib64 -lcudart -lpthread"
    g++ $B/test.o $B/kernel.o $B/topk.o $B/api.o $B/sampler.o $D/usr/lib/x86_64-linux-gnu/libgtest_main.a \
        $D/usr/lib/x86_64-linux-gnu/libgtest.a $L -o $B/test_sampling_cuda || echo FAIL link test
    g++ $B/bench.o $B/kernel.o $B/topk.o $B/api.o $L -o $B/llm8-bench-sampling || echo FAIL link bench
    echo "build: $(( $(date +%s) - t0 )) s"
fi

if has test; then
    echo "== test_sampling_cuda"
    timeout 200 $B/test_sampling_cuda > "$OUT/test.log" 2>&1
    echo "rc=$?"
    grep -E "^\[ |FAILED|Failure|Expected|Which|error|draws" "$OUT/test.log" | grep -v "^\[ RUN" | head -60
fi

if has test0; then
    echo "== test_sampling_cuda, LLM8_SAMPLING_FUSED=0 LLM8_SAMPLING_FINISH=${FINISH0:-warp}"
    LLM8_SAMPLING_FUSED=0 LLM8_SAMPLING_FINISH=${FINISH0:-warp} timeout 200 $B/test_sampling_cuda > "$OUT/test0.log" 2>&1
    echo "rc=$?"
    grep -E "^\[  (PASSED|FAILED)|^\[  FAILED|Failure" "$OUT/test0.log" | head -20
fi

if has bench0; then
    echo "== llm8-bench-sampling, LLM8_SAMPLING_FUSED=0"
    LLM8_SAMPLING_FUSED=0 timeout 120 $B/llm8-bench-sampling -v 128256 2>&1 | tee "$OUT/bench_llm8_unfused.md"
fi

if has bench; then
    echo "== llm8-bench-sampling"
    timeout 120 $B/llm8-bench-sampling --json "$OUT/bench_llm8.json" 2>&1 | tee "$OUT/bench_llm8.md"
fi

if has sanitize; then
    echo "== compute-sanitizer (quick mode: one launch per configuration)"
    for tool in ${SANITIZERS:-memcheck racecheck}; do
        filter='SamplingCuda.Greedy*:SamplingCuda.Edge*:SamplingCuda.Logprobs*:SamplingCuda.Frequencies*:SamplingCuda.Topk*'
        [[ $tool == racecheck ]] && filter=${RACE_FILTER:-'SamplingCuda.Topk*:SamplingCuda.Edge*'}
        LLM8_SAMPLING_TEST_QUICK=1 timeout ${SAN_TIMEOUT:-200} compute-sanitizer --tool $tool --print-limit 20 \
            $B/test_sampling_cuda --gtest_filter="$filter" > "$OUT/sanitize_$tool.log" 2>&1
        echo "$tool: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Hazard|Invalid|FAILED' "$OUT/sanitize_$tool.log" | sort | uniq -c | head -5 | tr '\n' ' ')"
    done
fi

if has profile; then
    echo "== ncu (one launch each)"
    nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo -Iinclude -Isrc \
        -c src/cuda/sampling/sample_cluster_sm90.cu -o $B/kernel_li.o &&
        g++ $B/bench.o $B/kernel_li.o $B/topk.o $B/api.o -L/usr/local/cuda/lib64 -lcudart -lpthread -o $B/bench_li
    for b in ${PROFILE_B:-256 1}; do
        timeout 120 ncu --clock-control none --launch-skip 25 --launch-count 1 -k regex:sample_cluster \
            --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section SourceCounters \
            --section LaunchStats --section Occupancy --section MemoryWorkloadAnalysis -f -o /tmp/prof_$b \
            $B/bench_li -b $b -v 128256 -r 10 --no-hold > "$OUT/ncu_run_$b.log" 2>&1
        ncu --import /tmp/prof_$b.ncu-rep --page details > "$OUT/ncu_details_$b.txt" 2>&1
        grep -E "Duration|Elapsed Cycles|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit|Stall|Issued Warp|No Eligible|Active Warps|Memory Throughput|Compute \(SM\)" "$OUT/ncu_details_$b.txt" | head -40
    done
fi

if has stages; then
    echo "== stage timings (1 max exchange, 2 histogram, 4 histogram without atomics, 3 gather, 0 all)"
    timeout 150 $B/llm8-bench-sampling -b ${STAGE_B:-1,16,64,256} -v 128256 --stage 1,2,4,3,0 -r 150 2>&1 | tee "$OUT/stages.md"
fi

if has sweep; then
    echo "== cluster sweep"
    timeout 150 $B/llm8-bench-sampling -b 1,16,64,256 -v 128256 -c ${SWEEP:-4,8,11,16} -r 200 2>&1 | tee "$OUT/sweep.md"
fi

if has topk; then
    echo "== top-k kernel: build variants (threads/float4s per thread/compaction) x split, alone"
    for v in ${TOPK_VARIANTS:-256/4/1024 256/4/256 512/4/512 1024/2/1024 1024/2/256}; do
        IFS=/ read -r t q c <<< "$v"
        n=${t}_${q}_${c}
        nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -Iinclude -Isrc -Xptxas -v \
            -DLLM8_TOPK_THREADS=$t -DLLM8_TOPK_VEC=$q -DLLM8_TOPK_COMPACT=$c \
            -c src/cuda/sampling/sample_topk_sm90.cu -o $B/topk_$n.o 2>&1 |
            grep -E "error|registers" | sed "s|^|$v: |"
        g++ $B/bench.o $B/kernel.o $B/topk_$n.o $B/api.o -L/usr/local/cuda/lib64 -lcudart \
            -lpthread -o $B/bench_$n || continue
        echo "-- threads/float4s/compaction $v"
        timeout 100 $B/bench_$n -b ${TOPK_B:-1,16,64,256} -v 128256 -s ${TOPK_S:-1,2,4,8,16,32} \
            --topk-alone -r 150 2>&1 | grep -v "^|---" | tee "$OUT/topk_$n.md"
    done
    echo "-- stages (default build), alone and with the cluster kernel"
    timeout 100 $B/llm8-bench-sampling -b 1,64,256 -v 128256 -s ${TOPK_STAGE_S:-0} \
        --topk-stage 1,2,3,0 --topk-alone -r 150 2>&1 | tee "$OUT/topk_stages.md"
    timeout 100 $B/llm8-bench-sampling -b 1,64,256 -v 128256 -s ${TOPK_STAGE_S:-0} -r 150 2>&1 |
        tee -a "$OUT/topk_stages.md"
fi

if has py; then
    echo "== torch + FlashInfer"
    export PYTHONPATH=$PWD/.whl/fi_site:${PYTHONPATH:-}
    export PYTHONUNBUFFERED=1 FLASHINFER_DISABLE_VERSION_CHECK=1
    timeout 150 python3 bench/sampling/bench_torch_flashinfer.py --json "$OUT/bench_py.json" \
        --llm8 "$OUT/bench_llm8.json" --md "$OUT/table.md" 2>&1 | tee "$OUT/bench_py.log" | tail -40
fi
