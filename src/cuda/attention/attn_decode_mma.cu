// attn_decode_mma: decode attention (a few queries per sequence) over the paged cache on tensor
// cores, for the F16 cache and the INT8 cache (-ctk int8: smoothed K and V, one float scale per
// token and KV head, src/common/attn_recipe.h).
//
// One 128-thread block per (KV head, key split, sequence) holds all G = n_head / n_head_kv
// query heads of its KV head and all T queries of the sequence as the rows of one m16 tile
// (G * T <= 16), so every K/V byte is read from memory once per group. Each warp works alone on
// the chunks w, w + 4, ... of the block's key range (16 keys for the F16 cache, 32 for INT8)
// through its own ring of NS shared-memory stages filled with cp.async (no block barrier in the
// loop): while it computes one chunk, NS - 1 more are in flight. Per chunk: S = Q K^T
// (mma.sync m16n8k16, f16 x f16 -> f32, Q in registers pre-scaled by log2(e) / sqrt(hd)),
// online softmax in exp2 on the accumulators (rescaled only when a row's maximum moved),
// O += P V with P taken straight from the S accumulators as A fragments.
//
// The INT8 cache is read as stored: K and V bytes go to shared memory as they are (half the
// bytes of F16) and become half operands in registers: an int8 x is exact in half, made as
// (x ^ 0x80 | 0x6400) - 1152 with one byte permute and one half2 subtraction per pair. K's
// fragments come from ldmatrix on byte pairs, which hands each lane 4 consecutive dims of a key;
// Q's fragments are loaded with the same permutation of the dims inside each 16-dim k-step (a
// dot product does not care about the order). V's come from ldmatrix.trans on byte pairs: a lane
// gets 2 keys x 2 adjacent dims, i.e. the B fragments of two n-tiles, the even and the odd dims
// of 16; the accumulators' columns are permuted accordingly and put back when written. K's
// per-key scale multiplies S (the smoothing mean drops out of softmax); V's per-key scale is
// folded into P before P is rounded to half (the row sum l uses the unscaled P).
//
// Each block writes (m, l, acc[hd]) partials in the layout of attn_f16.cu, whose combine kernel
// merges the splits (and writes int8 for W_o when asked).
//
// Measured (H200, 2026-12-02, GQA 32/8 hd128, docs/benchmarks.md): 16 x 32768 keys 0.531 ms
// (4,043 GB/s; the CUDA-core kernel it replaced, one lane per key with float Q and P: 1.405
// ms), INT8 cache 0.343 ms; 1 x 32768 0.056 ms, INT8 0.044 ms. 2026-12-03: INT8 in 32-key
// chunks 0.305 ms (16-key chunks in 5 stages: 0.343); 2 stages per warp (3 blocks per SM) or 4
// (1 block) measured slower for both caches. Session 11: the last split block of each KV head
// merging the partials itself (an atomic count after a fence) instead of the combine launch
// cost 2.3 us more per layer (llama-2-7B tg128, with the SwiGLU fold of gemv_decode.cu: 8-11%
// slower in all); dropped.
#include <algorithm>
#include <cstdint>

#include "common/attn_recipe.h"
#include "cuda/attention/mma_sm80.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kWarps = 4, kRows = 16;

// Keys per warp iteration: 16 for the F16 cache; 32 for the INT8 cache, whose 16-key chunk
// (4 KB) left the warp's S = Q K^T chain and softmax as long as the F16 chunk's for half the
// bytes (two n-tiles in flight instead of four, the accumulator rescale paid per 16 keys).
__host__ __device__ constexpr int chunk_keys(bool i8) {
    return i8 ? 32 : 16;
}
// Stages per warp: enough bytes in flight per SM (2 blocks of 4 warps at hd128) to cover HBM
// latency, within 2-3 blocks' shared memory per SM.
__host__ __device__ constexpr int stages(int hd, bool i8) {
    return i8 ? 3 : (hd == 128 ? 3 : 4);
}
// Bytes of one cached row of one KV head in shared memory: padded by 16 bytes so that the 8
// row addresses of an ldmatrix fall in distinct banks (stride / 16 odd).
__host__ __device__ constexpr int row_stride(int hd, bool i8) {
    return hd * (i8 ? 1 : 2) + 16;
}
__host__ __device__ constexpr int stage_bytes(int hd, bool i8) {
    return 2 * chunk_keys(i8) * row_stride(hd, i8) + (i8 ? 2 * chunk_keys(i8) * 4 : 0);
}
__host__ __device__ constexpr int smem_bytes(int hd, bool i8) {
    return kWarps * stages(hd, i8) * stage_bytes(hd, i8);
}

// Two int8 bytes of w (selected by sel: byte indices 0-3 in its nibbles 0 and 2, 4 = 0x64 in
// nibbles 1 and 3) as an exact half2.
template <uint32_t Sel>
__device__ __forceinline__ uint32_t i8x2_to_h2(uint32_t w_xor) {
    const uint32_t h = __byte_perm(w_xor, 0x64646464u, Sel);
    __half2 r =
        __hsub2(*reinterpret_cast<const __half2*>(&h), __half2(__half(1152.f), __half(1152.f)));
    return *reinterpret_cast<uint32_t*>(&r);
}
// One new row of one KV head into the INT8 pool by one warp, as rope_store_i8 (and
// cpu::quantize_kv_row_i8) does it: minus the mean (K), the maximum, 127 / amax, one rounding
// per element; its scale at *scale.
template <int HD>
__device__ __forceinline__ void quantize_row_i8(const float* x, const float* mean, int8_t* dst,
                                                float* scale, int lane) {
    constexpr int E = HD / 32;
    float v[E];
    float amax = 0.f;
#pragma unroll
    for (int u = 0; u < E; ++u) {
        const int c = lane + 32 * u;
        v[u] = mean ? x[c] - mean[c] : x[c];
        amax = fmaxf(amax, fabsf(v[u]));
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float inv = i8_inv_scale(amax);
#pragma unroll
    for (int u = 0; u < E; ++u) dst[lane + 32 * u] = quantize_i8(v[u], inv);
    if (lane == 0) *scale = i8_scale(amax);
}

__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}

// blockIdx.x: KV head; blockIdx.y: key split; blockIdx.z: sequence.
template <int HD, bool I8>
__global__ void __launch_bounds__(kWarps * 32, HD == 128 ? 2 : 3)
    attn_decode_mma_kernel(const AttnParams p, int n_splits, float scale_log2) {
    pdl_trigger();
    constexpr int NS = stages(HD, I8), RS = row_stride(HD, I8), SB = stage_bytes(HD, I8);
    constexpr int KC = chunk_keys(I8), NT = KC / 8;  // keys per chunk, its n-tiles of 8 keys
    constexpr int EB = I8 ? 1 : 2;                   // bytes per cached element
    constexpr int PIECES = HD * EB / 16;             // 16-byte pieces per row
    constexpr int PER_LANE = KC * PIECES / 32;
    extern __shared__ __align__(16) unsigned char smem[];
    const int hk = blockIdx.x, split = blockIdx.y, seq = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, c4 = lane & 3;
    const int n_head = p.n_head, n_kv = p.n_head_kv;
    const int q0 = p.q_start[seq], n_tokens = p.q_start[seq + 1] - q0;
    const int G = n_head / n_kv, rows = G * n_tokens;
    const int n_keys = p.kv_len[seq];
    const int pos0 = p.causal ? n_keys - n_tokens : n_keys;  // row of token t sees keys <= pos0+t
    // This sequence's keys split evenly over the splits, in whole rounds of the 4 warps.
    const int round = kWarps * KC;
    const int split_keys = ((n_keys + n_splits - 1) / n_splits + round - 1) / round * round;
    const int j0 = split * split_keys, j1 = min(n_keys, j0 + split_keys);
    const int n_chunks = j1 > j0 ? (j1 - j0 + KC - 1) / KC : 0;
    const int my_chunks = n_chunks > warp ? (n_chunks - warp + kWarps - 1) / kWarps : 0;
    const bool tile_in_block = p.kv.block_size >= KC;  // a chunk then lies in one block
    const int64_t kv_dim = p.kv.kv_dim;
    const unsigned char* kpool = static_cast<const unsigned char*>(p.kv.k);
    const unsigned char* vpool = static_cast<const unsigned char*>(p.kv.v);
    unsigned char* ring = smem + warp * NS * SB;
    // q and the step's new cache rows come from the kernels before (launched with launch_pdl).
    pdl_wait();
    // INT8 cache, write folded in (p.new_k): the block whose key range holds the step's new
    // keys (the sequence's last n_tokens) quantizes them into the pool before any warp loads.
    if (I8 && p.new_k != nullptr && j1 > max(j0, n_keys - n_tokens)) {
        for (int t = warp; t < n_tokens; t += kWarps) {
            const int j = n_keys - n_tokens + t;
            if (j < j0 || j >= j1) continue;
            const int64_t prow = p.kv.row(seq, j), src = int64_t(q0 + t) * kv_dim + hk * HD;
            const int64_t dst = prow * kv_dim + hk * HD;
            quantize_row_i8<HD>(p.new_k + src, p.k_mean + hk * HD,
                                static_cast<int8_t*>(p.kv.k) + dst, p.kv.k_scale + prow * n_kv + hk,
                                lane);
            quantize_row_i8<HD>(p.new_v + src, nullptr, static_cast<int8_t*>(p.kv.v) + dst,
                                p.kv.v_scale + prow * n_kv + hk, lane);
        }
        __syncthreads();  // the rows are in global memory before the warps' cp.async read them
    }

    // Chunk i of this warp into stage i % NS (zero-filled past j1).
    auto issue = [&](int i) {
        if (i < my_chunks) {
            const int cs = j0 + (warp + i * kWarps) * KC;
            unsigned char* st = ring + (i % NS) * SB;
            const int64_t base = tile_in_block ? p.kv.row(seq, cs) : 0;
#pragma unroll
            for (int u = 0; u < PER_LANE; ++u) {
                const int idx = lane + 32 * u, r = idx / PIECES, pc = idx % PIECES;
                const int j = cs + r;
                const bool ok = j < j1;
                const int64_t prow = ok ? (tile_in_block ? base + r : p.kv.row(seq, j)) : 0;
                const int64_t off = (prow * kv_dim + int64_t(hk) * HD) * EB + pc * 16;
                cp_async16(smem_u32(st + r * RS + pc * 16), kpool + off, ok);
                cp_async16(smem_u32(st + KC * RS + r * RS + pc * 16), vpool + off, ok);
            }
            if (I8) {  // the KC K scales, then the KC V scales
#pragma unroll
                for (int u = 0; u < 2 * KC / 32; ++u) {
                    const int idx = lane + 32 * u, r = idx % KC, j = cs + r;
                    const bool ok = j < j1;
                    const int64_t prow = ok ? (tile_in_block ? base + r : p.kv.row(seq, j)) : 0;
                    const float* src = (idx < KC ? p.kv.k_scale : p.kv.v_scale) + prow * n_kv + hk;
                    cp_async4(smem_u32(st + 2 * KC * RS + idx * 4), src, ok);
                }
            }
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
    };
#pragma unroll
    for (int i = 0; i < NS - 1; ++i) issue(i);

    // Q fragments (rows g and g + 8 of the tile; row r is token r / G, head hk * G + r % G),
    // scaled for exp2, in the dim order the K fragments arrive in.
    uint32_t qf[HD / 16][4];
    {
        const float* qa = nullptr;
        const float* qb = nullptr;
        if (g < rows) qa = p.q + (int64_t(q0 + g / G) * n_head + hk * G + g % G) * HD;
        if (g + 8 < rows)
            qb = p.q + (int64_t(q0 + (g + 8) / G) * n_head + hk * G + (g + 8) % G) * HD;
        auto ld2 = [&](const float* row, int d) {
            if (!row) return 0u;
            const float2 v = *reinterpret_cast<const float2*>(row + d);
            return pack_h2(v.x * scale_log2, v.y * scale_log2);
        };
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
            // k-step columns 2c, 2c+1 (regs 0/1) and 2c+8, 2c+9 (regs 2/3): dims 16kk + 2c (+8)
            // for F16; dims 16kk + 4c (+2) for INT8, where K's lane holds 4 consecutive dims.
            const int da = I8 ? 16 * kk + 4 * c4 : 16 * kk + 2 * c4;
            const int db = I8 ? da + 2 : da + 8;
            qf[kk][0] = ld2(qa, da);
            qf[kk][1] = ld2(qb, da);
            qf[kk][2] = ld2(qa, db);
            qf[kk][3] = ld2(qb, db);
        }
    }

    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
    const int t_a = g / G, t_b = (g + 8) / G;  // tokens of rows g and g + 8

    for (int i = 0; i < my_chunks; ++i) {
        issue(i + NS - 1);
        asm volatile("cp.async.wait_group %0;" ::"n"(NS - 1) : "memory");
        __syncwarp();
        const unsigned char* st = ring + (i % NS) * SB;
        const unsigned char* sk = st;
        const unsigned char* sv = st + KC * RS;
        const float* sks = reinterpret_cast<const float*>(st + 2 * KC * RS);
        const float* svs = sks + KC;
        const int cs = j0 + (warp + i * kWarps) * KC;

        // S = Q K^T: NT n-tiles of 8 keys, each 16 keys (kb) read by one ldmatrix x4 per k-step.
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        if (I8) {
            // Matrix m of the x4: keys (m & 1) * 8 + 0..7, dims 16 * (kk + (m >> 1)) + 0..15.
            const int mi = lane >> 3;
            const uint32_t a0 = smem_u32(sk + ((mi & 1) * 8 + (lane & 7)) * RS + (mi >> 1) * 16);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk += 2) {
#pragma unroll
                for (int kb = 0; kb < KC / 16; ++kb) {
                    uint32_t r[4];
                    ldsm_x4(a0 + kb * 16 * RS + kk * 16, r);
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
#pragma unroll
                        for (int nt = 0; nt < 2; ++nt) {
                            const uint32_t w = r[2 * h + nt] ^ 0x80808080u;
                            mma_16816(s[2 * kb + nt], qf[kk + h], i8x2_to_h2<0x4140>(w),
                                      i8x2_to_h2<0x4342>(w));
                        }
                    }
                }
            }
        } else {
            const uint32_t a0 =
                smem_u32(sk + ((lane & 7) + (lane >> 4) * 8) * RS + ((lane >> 3) & 1) * 16);
#pragma unroll
            for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
                for (int kb = 0; kb < KC / 16; ++kb) {
                    uint32_t r[4];
                    ldsm_x4(a0 + kb * 16 * RS + kk * 32, r);
                    mma_16816(s[2 * kb], qf[kk], r[0], r[1]);
                    mma_16816(s[2 * kb + 1], qf[kk], r[2], r[3]);
                }
            }
        }
        // K's per-key scales, then the mask (past the split's end, causal) on edge chunks.
        if (I8) {
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                const float2 ks = *reinterpret_cast<const float2*>(sks + nt * 8 + 2 * c4);
                s[nt][0] *= ks.x;
                s[nt][1] *= ks.y;
                s[nt][2] *= ks.x;
                s[nt][3] *= ks.y;
            }
        }
        if (cs + KC > j1 || cs + KC - 1 > pos0) {
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int j = cs + nt * 8 + 2 * c4 + e;
                    if (j >= j1 || j > pos0 + t_a) s[nt][e] = -INFINITY;
                    if (j >= j1 || j > pos0 + t_b) s[nt][2 + e] = -INFINITY;
                }
        }
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
        }
        float corr_a, corr_b;
        softmax_step(s, mx_a, mx_b, m_a, m_b, l_a, l_b, corr_a, corr_b);
        rescale_rows(o, corr_a, corr_b);
        // O += P V (P weighted by V's per-key scale for the INT8 cache).
        if (I8) {
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                const float2 vs = *reinterpret_cast<const float2*>(svs + nt * 8 + 2 * c4);
                s[nt][0] *= vs.x;
                s[nt][1] *= vs.y;
                s[nt][2] *= vs.x;
                s[nt][3] *= vs.y;
            }
        }
        // One k-step of 16 keys (kb) at a time: P's A fragment from n-tiles 2kb and 2kb + 1.
#pragma unroll
        for (int kb = 0; kb < KC / 16; ++kb) {
            uint32_t pa[4];
            pa[0] = pack_h2(s[2 * kb][0], s[2 * kb][1]);
            pa[1] = pack_h2(s[2 * kb][2], s[2 * kb][3]);
            pa[2] = pack_h2(s[2 * kb + 1][0], s[2 * kb + 1][1]);
            pa[3] = pack_h2(s[2 * kb + 1][2], s[2 * kb + 1][3]);
            if (I8) {
                // Matrix m: keys (m & 1) * 8 + 0..7, dims 16 * (q + (m >> 1)) + 0..15.
                // Transposed, a lane holds keys 2c, 2c+1 of dims 2g, 2g+1 of the 16: even dims
                // feed n-tile 2q (its column n is dim 16q + 2n), odd dims n-tile 2q + 1 (dim
                // 16q + 2n + 1).
                const int mi = lane >> 3;
                const uint32_t a0 =
                    smem_u32(sv + (kb * 16 + (mi & 1) * 8 + (lane & 7)) * RS + (mi >> 1) * 16);
#pragma unroll
                for (int q = 0; q < HD / 16; q += 2) {
                    uint32_t r[4];
                    ldsm_x4_t(a0 + q * 16, r);
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const uint32_t lo = r[2 * h] ^ 0x80808080u, hi = r[2 * h + 1] ^ 0x80808080u;
                        mma_16816(o[2 * (q + h)], pa, i8x2_to_h2<0x4240>(lo),
                                  i8x2_to_h2<0x4240>(hi));
                        mma_16816(o[2 * (q + h) + 1], pa, i8x2_to_h2<0x4341>(lo),
                                  i8x2_to_h2<0x4341>(hi));
                    }
                }
            } else {
                const uint32_t a0 = smem_u32(
                    sv + (kb * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * RS + (lane >> 4) * 16);
#pragma unroll
                for (int dt = 0; dt < HD / 8; dt += 2) {
                    uint32_t r[4];
                    ldsm_x4_t(a0 + dt * 16, r);
                    mma_16816(o[dt], pa, r[0], r[1]);
                    mma_16816(o[dt + 1], pa, r[2], r[3]);
                }
            }
        }
        __syncwarp();  // the stage is free for chunk i + NS
    }
    asm volatile("cp.async.wait_all;" ::: "memory");

    // Row sums over the quad, then the warps merge through shared memory (the rings are done).
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    __syncthreads();
    float* sm_o = reinterpret_cast<float*>(smem);  // [kWarps][kRows][HD]
    float* sm_m = sm_o + kWarps * kRows * HD;      // [kWarps][kRows]
    float* sm_l = sm_m + kWarps * kRows;
    float* wo = sm_o + warp * kRows * HD;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            // The accumulator column 2c + e of n-tile dt is dim dt * 8 + 2c + e (F16), or
            // 16 (dt / 2) + 4c + 2e + dt % 2 (INT8: even and odd dims of 16).
            const int d = I8 ? 16 * (dt >> 1) + 4 * c4 + 2 * e + (dt & 1) : dt * 8 + 2 * c4 + e;
            wo[g * HD + d] = o[dt][e];
            wo[(g + 8) * HD + d] = o[dt][2 + e];
        }
    }
    if (c4 == 0) {
        sm_m[warp * kRows + g] = m_a;
        sm_m[warp * kRows + g + 8] = m_b;
        sm_l[warp * kRows + g] = l_a;
        sm_l[warp * kRows + g + 8] = l_b;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < rows * (HD + 2); i += blockDim.x) {
        const int r = i / (HD + 2), c = i % (HD + 2), t = r / G, gq = r % G;
        float M = -INFINITY;
        for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w * kRows + r]);
        const int64_t th = int64_t(q0 + t) * n_head + hk * G + gq;
        float* out = p.ws + (th * n_splits + split) * (HD + 2);
        float v = 0.f;
        for (int w = 0; w < kWarps; ++w) {
            const float mw = sm_m[w * kRows + r];
            if (mw == -INFINITY) continue;
            const float f = exp2f(mw - M);
            v += (c < HD ? sm_o[(w * kRows + r) * HD + c] : sm_l[w * kRows + r]) * f;
        }
        // Partials in the natural-log convention of attn_f16.cu's combine kernel.
        if (c < HD)
            out[c] = v;
        else if (c == HD)
            out[HD] = M == -INFINITY ? -INFINITY : M * 0.69314718055994531f;
        else
            out[HD + 1] = v;
    }
}

template <int HD, bool I8>
int launch(const AttnParams& p, cudaStream_t s) {
    auto kernel = attn_decode_mma_kernel<HD, I8>;
    constexpr int smem = smem_bytes(HD, I8);
    static_assert(smem >= kWarps * kRows * (HD + 2) * 4, "the merge fits in the rings");
    static int per_sm = 0, n_sm = 0;  // set once per instance
    if (per_sm == 0) {
        LLM8_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        int dev = 0;
        LLM8_CUDA_CHECK(cudaGetDevice(&dev));
        LLM8_CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
        LLM8_CUDA_CHECK(
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, smem));
        per_sm = std::max(per_sm, 1);
    }
    // Splits: the fewest that fill the resident slots to >= 90% in whole waves, each at least
    // one round of the 4 warps (64 keys, or 128 for the INT8 cache).
    const int pairs = p.n_head_kv * p.n_seqs, slots = per_sm * n_sm;
    const int round = kWarps * chunk_keys(I8);
    const int most = std::max(1, (p.max_kv + round - 1) / round);
    int splits = 1;
    for (; splits < most; ++splits) {
        const int64_t blocks = int64_t(pairs) * splits;
        const int64_t waves = (blocks + slots - 1) / slots;
        if (blocks >= slots && blocks * 10 >= waves * slots * 9) break;
    }
    const int64_t per = int64_t(p.n_tokens) * p.n_head * (HD + 2);
    splits = int(std::min<int64_t>(splits, std::max<int64_t>(1, int64_t(p.ws_floats) / per)));
    const float scale_log2 = 1.4426950408889634f * p.scale();
    const dim3 grid(unsigned(p.n_head_kv), unsigned(splits), unsigned(p.n_seqs));
    launch_pdl(kernel, grid, kWarps * 32, size_t(smem), s, p, splits, scale_log2);
    return splits;
}

}  // namespace

int attention_decode_max_rows() {
    return kRows;
}

bool attention_decode_mma(const AttnParams& p, cudaStream_t s) {
    const int G = p.n_head / p.n_head_kv;
    if (G * p.max_q > kRows || (p.head_dim != 64 && p.head_dim != 128) ||
        (p.kv.type != KvType::f16 && p.kv.type != KvType::i8))
        return false;
    if (p.n_tokens == 0) return true;
    const bool i8 = p.kv.type == KvType::i8;
    const int splits = p.head_dim == 128 ? (i8 ? launch<128, true>(p, s) : launch<128, false>(p, s))
                                         : (i8 ? launch<64, true>(p, s) : launch<64, false>(p, s));
    attention_combine(p.ws, p.n_tokens, p.n_head, p.head_dim, splits, p.out, s, p.q8, p.q8_ds);
    return true;
}

}  // namespace cuda
}  // namespace llm8
