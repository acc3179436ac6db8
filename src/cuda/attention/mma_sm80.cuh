// The warp-level tensor-core pieces the attention kernels share (attn_f16_mma.cu,
// attn_decode_mma.cu, attn_8bit_mma.cu): shared-memory addresses, ldmatrix (plain and
// transposed, four 8x8 matrices of 16-bit elements), mma.sync m16n8k16 (f16 x f16 -> f32) and
// m16n8k32 (s8 x s8 -> s32), row.col, cp.async of 16 bytes, the online-softmax step of the
// two prefill kernels, and float pairs packed as half2.
#pragma once
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

namespace llm8 {
namespace cuda {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t (&r)[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t (&r)[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// c += a * b: a the m16k16 A fragment, (b0, b1) the k16n8 B fragment.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// c += a * b on INT8: a the m16k32 A fragment (four 4-byte words: rows g and g+8, k 0-15 then
// 16-31), (b0, b1) the k32n8 B fragment; exact INT32 sums.
__device__ __forceinline__ void mma_16832_s8(int (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 16 bytes global -> shared without registers (zero-filled when !valid).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
// One online-softmax step of the two rows a (g) and b (g + 8) of a warp's m16 score tile, held
// as NT m16n8 accumulators (log2 domain, masked scores -inf); mx_a / mx_b are this lane's
// maxima of its scores. Reduces them over the lanes of a row, turns s into P = exp2(s - m),
// updates the running maxima m and sums l, and returns in corr the factors that rescale the
// rows' output so far. A row with nothing visible yet keeps m = -inf and uses 0 as the
// reference (no NaN).
template <int NT>
__device__ __forceinline__ void softmax_step(float (&s)[NT][4], float mx_a, float mx_b, float& m_a,
                                             float& m_b, float& l_a, float& l_b, float& corr_a,
                                             float& corr_b) {
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    const float ref_a = mn_a == -INFINITY ? 0.f : mn_a, ref_b = mn_b == -INFINITY ? 0.f : mn_b;
    corr_a = exp2f(m_a - ref_a);
    corr_b = exp2f(m_b - ref_b);
    m_a = mn_a;
    m_b = mn_b;
    float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        s[nt][0] = exp2f(s[nt][0] - ref_a);
        s[nt][1] = exp2f(s[nt][1] - ref_a);
        s[nt][2] = exp2f(s[nt][2] - ref_b);
        s[nt][3] = exp2f(s[nt][3] - ref_b);
        sum_a += s[nt][0] + s[nt][1];
        sum_b += s[nt][2] + s[nt][3];
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
}
// O's accumulator rows a and b times softmax_step's corrections. Past the first key blocks the
// running maxima rarely move: corr is then exactly 1 in every lane of the warp and the
// multiplications are skipped (the same bits).
template <int DT>
__device__ __forceinline__ void rescale_rows(float (&o)[DT][4], float corr_a, float corr_b) {
    if (!__any_sync(0xffffffffu, corr_a != 1.f || corr_b != 1.f)) return;
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
        o[dt][0] *= corr_a;
        o[dt][1] *= corr_a;
        o[dt][2] *= corr_b;
        o[dt][3] *= corr_b;
    }
}
__device__ __forceinline__ uint32_t pack_h2(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&h);
}

}  // namespace cuda
}  // namespace llm8
