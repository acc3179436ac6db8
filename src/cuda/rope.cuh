// RoPE of one pair of dims (x0, x1) at pair index p < n_rot / 2 and position pos, shared by
// rope_store (elementwise.cu) and the Q/K/V GEMV epilogue (gemv_decode.cu) so that the two give
// the same bits: frequency base^(-2p/n_rot) (divided by factors[p] when given), angle
// pos * freq_scale * frequency, products rounded separately (no contraction into FMAs).
#pragma once
#include <cuda_runtime.h>

namespace llm8 {
namespace cuda {

__device__ __forceinline__ void rope_rotate(float& x0, float& x1, int pos, int p, int n_rot,
                                            float base, float freq_scale,
                                            const float* __restrict__ factors) {
    float inv_freq = powf(base, -2.0f * float(p) / float(n_rot));
    if (factors) inv_freq /= factors[p];
    float sn, cs;
    sincosf(float(pos) * freq_scale * inv_freq, &sn, &cs);
    const float r0 = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
    const float r1 = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
    x0 = r0;
    x1 = r1;
}

}  // namespace cuda
}  // namespace llm8
