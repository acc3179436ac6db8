// attn_f16_mma_sm80: causal prefill attention on tensor cores (FlashAttention-2 structure),
// half inputs (the float queries are rounded to half in shared memory; K/V come from the
// half cache, or from the INT8 cache times each row's scale, rounded to half as the tile is
// loaded), float accumulation and online softmax (exp2 with log2(e)/sqrt(hd) folded in).
//
// Tiles: 64 queries x 64 keys per step, 4 warps of 16 query rows each. S = Q K^T and O += P V
// with mma.sync.m16n8k16 (row.col, f16 x f16 -> f32); Q and K fragments via ldmatrix, V via
// ldmatrix.trans; P goes from the S accumulators straight into A fragments (the m16n8 C layout
// is the m16n8k16 A layout, two n-tiles per k-step). Shared rows are padded by 8 halves so that
// ldmatrix's 8 row addresses hit distinct banks. GQA: query head h reads kv head h/(H/Hkv).
// Causal with an offset: query i of a sequence with n queries and kv_len keys sits at position
// pos0+i (pos0 = kv_len - n) and sees keys [0, pos0+i]. A batch of sequences of any lengths in
// one launch (grid z = sequence); keys are read through the block tables of the paged cache
// (a 64-key tile lies within one 64-token block, but rows are looked up one by one so any
// power-of-two block size works).
//
// Not yet: cp.async / TMA double buffering of K/V tiles, wgmma (sm90a), and splitting long KV
// ranges across blocks when there are few query tiles. Decode (few queries) stays on the
// split-KV kernel in attn_f16.cu.
#include <cstdint>

#include "cuda/attention/mma_sm80.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kBr = 64, kBc = 64, kThreads = 128;

// Eight cached elements of row `row` (element offset) as halves: F16 as stored; INT8 times the
// row's scale (the INT8 cache's K is smoothed: its mean drops out of softmax).
template <bool I8>
__device__ __forceinline__ uint4 load8(const void* pool, const float* scales, int64_t row,
                                       int64_t scale_idx) {
    if (!I8) return __ldg(reinterpret_cast<const uint4*>(static_cast<const __half*>(pool) + row));
    const uint2 raw = __ldg(reinterpret_cast<const uint2*>(static_cast<const int8_t*>(pool) + row));
    const float sc = __ldg(scales + scale_idx);
    const int8_t* b = reinterpret_cast<const int8_t*>(&raw);
    uint4 r;
    uint32_t* w = reinterpret_cast<uint32_t*>(&r);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        __half2 h = __floats2half2_rn(float(b[2 * e]) * sc, float(b[2 * e + 1]) * sc);
        w[e] = *reinterpret_cast<uint32_t*>(&h);
    }
    return r;
}

// blockIdx.x: 64-query tile of a sequence; blockIdx.y: query head; blockIdx.z: sequence.
// The occupancy of the single-sequence kernel kept (3 blocks per SM at hd128, 4 at hd64): the
// batch and block-table bookkeeping took the hd128 instance from 168 to 185 registers and 2
// blocks per SM, and prefill at 16K of context ran 6% slower (H200, llama-3-8B shape).
template <int HD, bool I8>
__global__ void __launch_bounds__(kThreads, HD == 128 ? 3 : 4)
    attn_f16_mma_kernel(const AttnParams p, float scale_log2) {
    constexpr int kStride = HD + 8;  // halves per shared row
    extern __shared__ __align__(16) __half smem[];
    __half* sQ = smem;
    __half* sK = sQ + kBr * kStride;
    __half* sV = sK + kBc * kStride;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int seq = blockIdx.z;
    const int64_t q0 = int64_t(blockIdx.x) * kBr;
    const int64_t n_tokens = p.q_start[seq + 1] - p.q_start[seq];
    if (q0 >= n_tokens) return;
    const int n_head = p.n_head;
    const int h = blockIdx.y, hk = h / (n_head / p.n_head_kv);
    const int kv_len = p.kv_len[seq];
    // Query i sees keys [0, pos0 + i]; without a causal mask every query sees all keys.
    const int pos0 = kv_len - int(n_tokens);
    const bool causal = p.causal;
    const float* q = p.q + int64_t(p.q_start[seq]) * n_head * HD;
    float* out = p.out + int64_t(p.q_start[seq]) * n_head * HD;
    const int64_t q_stride = int64_t(n_head) * HD, kv_dim = p.kv.kv_dim;
    const bool tile_in_block = p.kv.block_size >= kBc;  // tiles start at multiples of kBc

    // Q tile -> half, rows past the batch zero.
    for (int i = tid; i < kBr * HD / 4; i += kThreads) {
        const int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q0 + r < n_tokens)
            v = *reinterpret_cast<const float4*>(q + (q0 + r) * q_stride + int64_t(h) * HD + c);
        __half2* d = reinterpret_cast<__half2*>(sQ + r * kStride + c);
        d[0] = __floats2half2_rn(v.x, v.y);
        d[1] = __floats2half2_rn(v.z, v.w);
    }
    __syncthreads();

    // This warp's Q fragments for all k-steps.
    uint32_t qf[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
        const int r = warp * 16 + (lane % 16), c = kk * 16 + (lane / 16) * 8;
        ldsm_x4(smem_u32(sQ + r * kStride + c), qf[kk]);
    }

    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
    const int64_t row_a = q0 + warp * 16 + (lane >> 2), row_b = row_a + 8;
    const int64_t qpos_a = pos0 + row_a, qpos_b = pos0 + row_b;

    const int64_t last_q = (q0 + kBr < n_tokens ? q0 + kBr : n_tokens) - 1;
    const int64_t n_keys = causal ? pos0 + last_q + 1 : kv_len;  // keys this tile can see
    for (int64_t k0 = 0; k0 < n_keys; k0 += kBc) {
        // K and V tiles (zero past the end: masked, and 0 * p must not become NaN).
        const int64_t tile_row0 = tile_in_block ? p.kv.row(seq, int(k0)) : 0;
        for (int i = tid; i < kBc * HD / 8; i += kThreads) {
            const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
            if (k0 + r < n_keys) {
                // Blocks of >= 64 tokens hold the whole tile: one table entry for all its rows.
                const int64_t pool_row = tile_in_block ? tile_row0 + r : p.kv.row(seq, int(k0 + r));
                const int64_t row = pool_row * kv_dim + int64_t(hk) * HD + c;
                const int64_t si = pool_row * p.n_head_kv + hk;
                kv = load8<I8>(p.kv.k, p.kv.k_scale, row, si);
                vv = load8<I8>(p.kv.v, p.kv.v_scale, row, si);
            }
            *reinterpret_cast<uint4*>(sK + r * kStride + c) = kv;
            *reinterpret_cast<uint4*>(sV + r * kStride + c) = vv;
        }
        __syncthreads();

        float s[kBc / 8][4];
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
            for (int nt = 0; nt < kBc / 8; nt += 2) {
                const int r = nt * 8 + (lane % 8) + (lane / 16) * 8,
                          c = kk * 16 + ((lane / 8) % 2) * 8;
                uint32_t b[4];
                ldsm_x4(smem_u32(sK + r * kStride + c), b);
                mma_16816(s[nt], qf[kk], b[0], b[1]);
                mma_16816(s[nt + 1], qf[kk], b[2], b[3]);
            }
        }

        // Scale, mask (causal and past the end), online softmax for rows a and b.
        const bool need_mask = (causal && k0 + kBc - 1 > pos0 + q0) || k0 + kBc > n_keys;
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int64_t key = k0 + nt * 8 + 2 * (lane & 3) + e;
                float va = s[nt][e] * scale_log2, vb = s[nt][2 + e] * scale_log2;
                if (need_mask) {
                    if ((causal && key > qpos_a) || key >= n_keys) va = -INFINITY;
                    if ((causal && key > qpos_b) || key >= n_keys) vb = -INFINITY;
                }
                s[nt][e] = va;
                s[nt][2 + e] = vb;
                mx_a = fmaxf(mx_a, va);
                mx_b = fmaxf(mx_b, vb);
            }
        }
        float corr_a, corr_b;
        softmax_step(s, mx_a, mx_b, m_a, m_b, l_a, l_b, corr_a, corr_b);
        rescale_rows(o, corr_a, corr_b);

        // O += P V.
#pragma unroll
        for (int kk = 0; kk < kBc / 16; ++kk) {
            const uint32_t pa[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]),
                                    pack_h2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dt = 0; dt < HD / 8; dt += 2) {
                const int r = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                          c = dt * 8 + (lane / 16) * 8;
                uint32_t b[4];
                ldsm_x4_t(smem_u32(sV + r * kStride + c), b);
                mma_16816(o[dt], pa, b[0], b[1]);
                mma_16816(o[dt + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads();
    }

    // Normalize and write.
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    const float inv_a = 1.f / l_a, inv_b = 1.f / l_b;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
        const int c = dt * 8 + 2 * (lane & 3);
        if (row_a < n_tokens)
            *reinterpret_cast<float2*>(out + row_a * q_stride + int64_t(h) * HD + c) =
                make_float2(o[dt][0] * inv_a, o[dt][1] * inv_a);
        if (row_b < n_tokens)
            *reinterpret_cast<float2*>(out + row_b * q_stride + int64_t(h) * HD + c) =
                make_float2(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
}

template <int HD, bool I8>
void launch(const AttnParams& p, cudaStream_t s) {
    const size_t smem = size_t(3) * kBr * (HD + 8) * sizeof(__half);
    static bool configured = false;  // one attribute call per instance
    if (!configured) {
        LLM8_CUDA_CHECK(cudaFuncSetAttribute(
            attn_f16_mma_kernel<HD, I8>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        configured = true;
    }
    const float scale_log2 = p.softmax_scale > 0.f ? 1.4426950408889634f * p.softmax_scale
                                                   : 1.4426950408889634f / sqrtf(float(HD));
    const dim3 grid(unsigned((p.max_q + kBr - 1) / kBr), unsigned(p.n_head), unsigned(p.n_seqs));
    attn_f16_mma_kernel<HD, I8><<<grid, kThreads, smem, s>>>(p, scale_log2);
    LLM8_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_f16_mma(const AttnParams& p, cudaStream_t s) {
    if (p.kv.type != KvType::f16 && p.kv.type != KvType::i8) return false;
    if (p.n_tokens == 0) return true;
    const bool i8 = p.kv.type == KvType::i8;
    switch (p.head_dim) {
        case 64:
            i8 ? launch<64, true>(p, s) : launch<64, false>(p, s);
            return true;
        case 128:
            i8 ? launch<128, true>(p, s) : launch<128, false>(p, s);
            return true;
        default:
            return false;
    }
}

}  // namespace cuda
}  // namespace llm8
