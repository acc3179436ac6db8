// Device helpers shared by the sampling kernels: order-preserving float keys, the nested
// probability bins, fixed-point weights and warp-level scans.
//
// Numbers used throughout (docs/sampling.md explains why):
//   d(x) = (m - x) / T      tempered distance below the row maximum m (0 for the maximum)
//   w(x) = exp(-d)          unnormalized probability, 1 for the maximum
//   u(x) = floor(w * 2^s)   integer weight, s = min(45, 62 - ceil(log2 V)): sums of up to V
//                           weights fit in 64 bits and add exactly, so every sum, comparison and
//                           cumulative search is deterministic and independent of the order in
//                           which threads, blocks and clusters add
//   g(x) = floor(d * 2^19)  bin index, saturated at 2^24 - 1; its top 8 bits are the level-0 bin
//                           (1/8 nat wide, bin 255 = everything below 31.875 nats, where u = 0),
//                           the next 8 the level-1 sub-bin, the low 8 the level-2 sub-bin. The
//                           scalings are powers of two, so the levels nest exactly.
#pragma once
#include <cmath>
#include <cstdint>

#include "llm8/sampling_cuda.h"

namespace llm8::cuda_sampling {

constexpr unsigned kFullMask = 0xFFFFFFFFu;
constexpr uint32_t kGMax = 0xFFFFFFu;
constexpr float kLog2e = 1.4426950408889634f;

// Larger float -> larger key; -0 and +0 get the same key (x + 0 turns -0 into +0).
__device__ __forceinline__ uint32_t order_key(float x) {
    const uint32_t b = __float_as_uint(x + 0.0f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The float of a key (inverse of order_key).
__device__ __forceinline__ float key_value(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// NaN counts as -inf (the CPU chain's rule); -0 becomes +0 so equal values have equal keys.
__device__ __forceinline__ float sanitize(float x) {
    if (x != x) return -__int_as_float(0x7f800000);
    return x == 0.0f ? 0.0f : x;
}

__device__ __forceinline__ uint32_t gbin(float d) {
    const float y = d * 524288.0f;                 // 2^19
    return y < 16777215.0f ? uint32_t(y) : kGMax;  // NaN and inf saturate
}

__device__ __forceinline__ float weight(float d) {
    return exp2f(-d * kLog2e);
}

__device__ __forceinline__ unsigned long long weight_units(float w, float scale) {
    return __float2ull_rz(w * scale);
}

// Sort key of a (value key, id) pair: ascending order = larger value first, then lower id.
__device__ __forceinline__ unsigned long long rank_key(uint32_t key, int32_t id) {
    return (static_cast<unsigned long long>(~key) << 32) | static_cast<uint32_t>(id);
}

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

__device__ __forceinline__ unsigned long long warp_inclusive_scan(unsigned long long v, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long t = __shfl_up_sync(kFullMask, v, o);
        if (lane >= o) v += t;
    }
    return v;
}

// Warp-collective: the first index j in [0, n) whose inclusive running sum of value(j) exceeds
// tgt, or -1. *before receives the running sum before j (or the total when none).
template <class F>
__device__ __forceinline__ int warp_find_first_above(int n, unsigned long long tgt, F value,
                                                     unsigned long long* before, int lane) {
    unsigned long long run = 0;
    for (int base = 0; base < n; base += 32) {
        const int j = base + lane;
        const unsigned long long v = j < n ? value(j) : 0ull;
        const unsigned long long inc = warp_inclusive_scan(v, lane);
        const unsigned hit = __ballot_sync(kFullMask, run + inc > tgt);
        if (hit) {
            const int l = __ffs(hit) - 1;
            *before = run + __shfl_sync(kFullMask, inc - v, l);
            return base + l;
        }
        run += __shfl_sync(kFullMask, inc, 31);
    }
    *before = run;
    return -1;
}

// Warp-collective bitonic sort, ascending, of the first n <= 128 keys (n a power of two);
// element i lives in register i / 32 of lane i % 32. Pad with ~0ull. Unrolled (a rolled
// version measured 2.7 us slower per row at batch 1: the finish runs on one warp, where every
// loop branch is latency); stages beyond n are skipped.
__device__ __forceinline__ void sort_pair(unsigned long long& lo, unsigned long long& hi,
                                          bool asc) {
    const bool swap = asc ? lo > hi : lo < hi;
    const unsigned long long a = lo, b = hi;
    lo = swap ? b : a;
    hi = swap ? a : b;
}

__device__ __forceinline__ void warp_bitonic_sort128(unsigned long long (&k)[4], int lane, int n) {
#pragma unroll
    for (int size = 2; size <= 128; size <<= 1) {
        if (size > n) break;
#pragma unroll
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            if (stride == 64) {  // partners two registers apart, same lane
                sort_pair(k[0], k[2], (lane & size) == 0);
                sort_pair(k[1], k[3], ((32 + lane) & size) == 0);
            } else if (stride == 32) {  // partners in adjacent registers, same lane
                sort_pair(k[0], k[1], (lane & size) == 0);
                sort_pair(k[2], k[3], ((64 + lane) & size) == 0);
            } else {  // partners in another lane, same register
                const bool lower = (lane & stride) == 0;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (32 * j >= n) break;  // registers beyond n hold padding only
                    const unsigned long long o = __shfl_xor_sync(kFullMask, k[j], stride);
                    const bool asc = ((32 * j + lane) & size) == 0;
                    k[j] = (lower == asc) ? (k[j] < o ? k[j] : o) : (k[j] < o ? o : k[j]);
                }
            }
        }
    }
}

// A row whose parameters the chain rejects (status LLM8_SAMPLE_ROW_BAD_PARAMS).
__device__ __forceinline__ bool row_params_bad(const llm8_sampling_row_params& p,
                                               const llm8_sampling_args& a) {
    if (isnan(p.temperature)) return true;
    if (!(p.top_p >= 0.0f)) return true;
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return true;
    if (!(p.repeat_penalty > 0.0f)) return true;
    if (isnan(p.frequency_penalty) || isnan(p.presence_penalty)) return true;
    if (p.penalty_count < 0 || p.bias_count < 0) return true;
    if (p.penalty_count > 0 && a.penalty_tokens == nullptr) return true;
    if (p.bias_count > 0 && (a.bias_tokens == nullptr || a.bias_values == nullptr)) return true;
    return false;
}

__device__ __forceinline__ bool row_penalties_on(const llm8_sampling_row_params& p) {
    return p.penalty_count > 0 &&
           (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
}

// Top-p: the smallest prefix (in order of probability) whose integer mass reaches ceil(p * S).
__device__ __forceinline__ unsigned long long top_p_target(float top_p, unsigned long long S) {
    const double t = ceil(double(top_p) * double(S));
    unsigned long long T = t < 1.0 ? 1ull : (unsigned long long)t;
    return T > S ? S : T;
}

// The kept prefix of a sorted candidate list (probability order, item i in register i / 32 of
// lane i % 32) after top-p and min-p: top-p keeps the shortest prefix whose integer running sum
// cum reaches top_p_target(top_p, S) (the token that crosses is kept); min-p drops from the
// first candidate whose float weight w is below min_p (the max, w = 1, always stays).
// Warp-collective; nk candidates, R registers.
template <int R>
__device__ __forceinline__ int keep_after_cuts(const unsigned long long (&cum)[R],
                                               const float (&w)[R], int nk, bool topp_on,
                                               float top_p, unsigned long long S, float min_p,
                                               int lane) {
    int keep = nk;
    if (topp_on) {
        const unsigned long long T = top_p_target(top_p, S);
#pragma unroll
        for (int j = R - 1; j >= 0; --j) {
            const unsigned b = __ballot_sync(kFullMask, 32 * j + lane < nk && cum[j] >= T);
            if (b) keep = min(keep, 32 * j + __ffs(b));
        }
    }
    if (min_p > 0.0f) {
#pragma unroll
        for (int j = R - 1; j >= 0; --j) {
            const unsigned b = __ballot_sync(kFullMask, 32 * j + lane < nk && !(w[j] >= min_p));
            if (b) keep = min(keep, 32 * j + __ffs(b) - 1);
        }
        keep = max(keep, 1);
    }
    return keep;
}

// Host side of the weights: s = min(45, 62 - ceil(log2 V)), the scale 2^s.
inline float weight_scale(int vocab) {
    int lg = 0;
    while ((1ll << lg) < vocab) ++lg;
    return std::ldexp(1.0f, 62 - lg < 45 ? 62 - lg : 45);
}

// Rows start on 16-byte boundaries: float4 loads are allowed.
inline bool rows_16b_aligned(const llm8_sampling_args& a) {
    return reinterpret_cast<uintptr_t>(a.logits) % 16 == 0 && a.ld % 4 == 0;
}

// Smallest power of two >= n (n <= 128), at least 2.
__device__ __forceinline__ int pow2_at_least(int n) {
    int p = 2;
    while (p < n) p <<= 1;
    return p;
}

}  // namespace llm8::cuda_sampling
