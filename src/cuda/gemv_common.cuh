// The shared tail of the GEMV kernels (gemv.cu, gemv_fused.cu, gemv_split.cu): each warp's
// R x NT partial sums are reduced over its lanes and parked in shared memory; after a barrier,
// one thread per (row group, slot) adds the S warps that split the row's units.
#pragma once

namespace llm8 {
namespace cuda {

__device__ __forceinline__ float warp_sum(float s) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    return s;
}

// The decode path's int8 activations (gemv_decode.cu, cpu::quantize_act_q8): the warp holds
// one 32-element unit, lane i its element v; writes q[i] = rne(v / d) with d = amax / 127, and
// (lane 0) ds = (d, sum of q). Call with the whole warp.
__device__ __forceinline__ void quantize_unit_q8(float v, int lane, int8_t* q, float2* ds) {
    float amax = fabsf(v);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float d = __fdiv_rn(amax, 127.0f);
    const int qi = amax == 0.0f ? 0 : __float2int_rn(__fdiv_rn(v, d));
    const int sum = __reduce_add_sync(0xffffffffu, qi);
    q[lane] = int8_t(qi);
    if (lane == 0) *ds = make_float2(d, float(sum));
}

template <int W, int R, int NT>
__device__ __forceinline__ void park_warp_sums(const float (&acc)[R][NT], float (&red)[W][R * NT],
                                               int warp, int lane) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            const float s = warp_sum(acc[r][t]);
            if (lane == 0) red[warp][r * NT + t] = s;
        }
}

// Sum over the S warps of row group grp for slot rt (call after __syncthreads()).
template <int W, int R, int NT, int S>
__device__ __forceinline__ float split_sum(const float (&red)[W][R * NT], int grp, int rt) {
    float s = 0.0f;
#pragma unroll
    for (int q = 0; q < S; ++q) s += red[grp * S + q][rt];
    return s;
}

// After __syncthreads(): one thread per (row group, slot) of the block calls f(row, t, sum),
// where rows are first_row + grp * R + r and sum adds the S warps of the group.
template <int W, int R, int NT, int S, typename F>
__device__ __forceinline__ void for_each_row_sum(const float (&red)[W][R * NT], int64_t first_row,
                                                 F f) {
    constexpr int per = R * NT;
    const int tid = threadIdx.x;
    if (tid < (W / S) * per) {
        const int grp = tid / per, rt = tid % per, r = rt / NT, t = rt % NT;
        f(first_row + grp * R + r, t, split_sum<W, R, NT, S>(red, grp, rt));
    }
}

}  // namespace cuda
}  // namespace llm8
