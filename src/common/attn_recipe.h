// The 8-bit attention recipes, as scalar steps shared by the CPU reference (src/cpu/attn_8bit.cpp)
// and the CUDA kernels, so that both quantize the same way and their integer products can be
// compared bit for bit. Plain C++ (host and device).
//
// Symmetric INT8: scale = amax / 127, q = rint(x * (127 / amax)) clamped to [-127, 127]; an
// all-zero group has scale 0 and quantizes to 0. The reciprocal is one IEEE division (no fast
// math), then one multiplication and round-to-nearest-even per element, the same on both sides.
//
// SageAttention (arXiv 2410.02367, v1 granularity with llm8's block shapes):
//   - smoothing: the mean of K over the sequence's keys (every key the call sees, per KV head
//     and channel) is subtracted from every key; softmax is invariant to it (q . mean is one
//     constant per query row), and it removes the channel outliers that ruin INT8; summed per
//     64-key block, keys in order, the blocks' sums in order, then divided by the key count
//     (the GPU's order, so that CPU and GPU quantize the same floats);
//   - Q: one scale per 64 query rows of a sequence (per head); K: one scale per 64 keys, the
//     blocks aligned to key index 0 (the paged cache's blocks);
//   - S = (q8 . k8) * sq * sk * softmax_scale * log2(e), online softmax with exp2 over 64-key
//     blocks, P and V rounded to FP16, P.V accumulated in FP32.
// INT-FlashAttention (arXiv 2409.16997), llm8's form:
//   - Q and K (smoothed as above) one scale per token; V one scale per channel over the
//     sequence's keys;
//   - P = exp2(S - running max) in [0, 1] quantized with the fixed scale 1/127 (p8 = rint(127 p)),
//     P.V as an INT32 sum of p8 * v8, dequantized by v_scale[channel] / 127; the row sum l uses
//     the unquantized P.
// The INT8 KV cache (-ctk int8): every token's K minus a per-layer mean measured at load, and its
// V, with one scale per (token, KV head). Both modes read its K as stored (per-key scales);
// int8 mode weights P by V's per-key scale over the 64-key block's largest before the 1/127 step
// (p' = p * vs_j / vs_max), and dequantizes the block's INT32 sum by vs_max / 127.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LLM8_HD __host__ __device__
#else
#define LLM8_HD
#endif

namespace llm8 {

constexpr int kSageQRows = 64;     // query rows per Q scale (one warpgroup's rows on Hopper)
constexpr int kSageKRows = 64;     // keys per K scale (= the KV cache block)
constexpr int kAttnKeyBlock = 64;  // keys per online-softmax step (both 8-bit modes)
constexpr float kLog2e = 1.4426950408889634f;

// 127 / amax (0 for amax 0): multiply by it, then round.
LLM8_HD inline float i8_inv_scale(float amax) {
    return amax > 0.0f ? 127.0f / amax : 0.0f;
}
// amax / 127: what one integer step is worth.
LLM8_HD inline float i8_scale(float amax) {
    return amax / 127.0f;
}
LLM8_HD inline int8_t quantize_i8(float x, float inv_scale) {
    float r = rintf(x * inv_scale);
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    return int8_t(r);
}
// P in [0, 1] with the fixed scale 1/127.
LLM8_HD inline int8_t quantize_p_i8(float p) {
    return int8_t(rintf(p * 127.0f));
}

}  // namespace llm8
