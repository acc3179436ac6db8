// The CUDA backend's tuning switches: one table, read from the environment once, at the first
// call. They exist for A/B measurements and profiling; the defaults are what the product runs.
// Every choice that depends on the model (which kernel for which layer) is in the per-layer
// plan (cuda/context.cu), not here. Plain C++.
//
//   LLM8_PDL=0            launch without programmatic dependent launch
//   LLM8_SPLIT=0          keep ggml's interleaved Q4_0/Q8_0 blocks (no split repack at upload;
//                         the decode GEMV then falls back to gemv())
//   LLM8_DECODE_GEMV=0    no int8/dp4a decode GEMV: one-token steps take gemv()
//   LLM8_GEMV_PERSIST=0|1 force the one-shot (0) or persistent (1) decode GEMV for every type
//   LLM8_FUSE_ROPE=0      bias + RoPE + K/V append in their own launch instead of the Q/K/V
//                         GEMV's epilogue
//   LLM8_GRAPH=0          no CUDA graphs for decode steps
//   LLM8_PROFILE=1        time every op kind with CUDA events (graphs off), print at exit
//   LLM8_SAMPLING_*       the GPU sampler's switches (sampling_api.cu: FUSED, TOPK, SPLIT, PDL,
//                         FALLBACK_C, FINISH, ALONE)
//   LLM8_SAMPLING_ALONE=1 for compute-sanitizer's synccheck only: the cluster kernel asks for
//                         all of an SM's shared memory, so one of its blocks runs per SM (same
//                         code, same tokens). synccheck reports false "divergent thread"
//                         barrier errors in cluster launches whose blocks share an SM, even in
//                         a kernel without a branch (scripts/synccheck-cluster-probe.cu,
//                         docs/hardening.md); scripts/gpu-sanitize.sh sets it for synccheck.
#pragma once

namespace llm8 {
namespace cuda {

struct Tuning {
    bool pdl = true;
    bool split = true;
    bool decode_gemv = true;
    int gemv_persist = -1;  // -1: per type, as measured
    bool fuse_rope = true;
    bool graphs = true;
    bool profile = false;
    // GPU sampler
    bool sampling_fused = true;
    bool sampling_topk = true;
    int sampling_split = 0;  // 0: automatic
    bool sampling_pdl = true;
    int sampling_fallback_c = 0;
    int sampling_finish = 0;  // 0 default, 1 warp, 2 rank
    bool sampling_alone = false;
};

const Tuning& tuning();

}  // namespace cuda
}  // namespace llm8
