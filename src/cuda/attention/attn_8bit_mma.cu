// The 8-bit attention modes on the GPU (src/common/attn_recipe.h has the recipes; the CPU
// reference is src/cpu/attn_8bit.cpp): SageAttention (p.mode sage: smoothed K and Q in INT8,
// INT8 Q.K^T, P and V in FP16) and INT-FlashAttention (p.mode int8: both products in INT8), over
// the F16 or the INT8 cache, head dim 64 or 128, a batch of sequences of any lengths in one
// launch per step. For steps with queries to spare (prefill, chunked prefill); decode stays on
// the dispatcher's (cuda::attention) decode kernel.
//
// Three quantization launches write the scratch p.ws8, then the attention kernel reads it:
//   1. kv8_sums (F16 cache): per 64-key tile of every (sequence, KV head), K's sum per channel
//      (keys in order) and, for int8, V's largest magnitude per channel;
//   2. kv8_quant: each tile's block adds the tile sums in order (the mean: the CPU adds in the
//      same order, so both quantize the same floats), smooths and quantizes its 64 keys (sage:
//      one scale for the tile, int8: one per key) and lays V out for the products: FP16 rows
//      (sage), or INT8 transposed [dim][key] with one scale per channel (F16 cache) or per key
//      (INT8 cache), the 64 keys of a tile permuted so that P's accumulator registers are
//      directly the A operand of the P.V mma. Over the INT8 cache, K and V are taken as stored;
//   3. q8_quant: Q per 64 rows (sage) or per row (int8);
//   4. attn8_kernel: 64 queries x 64 keys per step, 4 warps of 16 rows, Q.K^T with
//      mma.sync.m16n8k32 s8 (exact INT32), the score float(dot) * (sq * sk) * scale * log2(e),
//      online softmax in exp2 over the 64-key tiles (aligned to key 0, as the CPU's blocks),
//      then sage: P to half, O += P V with m16n8k16; int8: P (times V's per-key scale over the
//      tile's largest, INT8 cache) to int8 at 1/127, the tile's P.V as an INT32 sum with
//      m16n8k32, added as float times V's scale / 127. K/V tiles are contiguous in the scratch
//      and double-buffered with cp.async.
// Integer parts (Q8, K8, V8, their scales) equal the CPU's bit for bit (tests/test_ops_cuda.cpp).
// Measured (H200, session 7, quantization included): sage 1.54x and int8 1.42x the speed of
// attn_f16_mma at hd128 causal 4096 x 4, 2.14x / 1.92x for 512 queries over 16384 keys (GQA
// 32/8), 1.10x / 0.95x at 1024 x 16; still 2.7x and more behind cuDNN's FP16 (mma.sync 64 x 64
// tiles, no wgmma, no warp specialization yet; docs/benchmarks.md).
#include <algorithm>
#include <cstdint>
#include <string>

#include "common/attn_recipe.h"
#include "cuda/attention/mma_sm80.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kT = kAttnKeyBlock;  // keys per tile (= K scale group of sage)
constexpr int kBr = 64;            // queries per block (= Q scale group of sage)
constexpr int kThreads = 128;
static_assert(kT == 64 && kSageKRows == kT && kSageQRows == kBr, "tile shapes");

// The scratch, carved from p.ws8 (attention_8bit_workspace_bytes): tiles are numbered over the
// batch (sequence s's tiles start at tile_base(s)); index (tile * n_kv + hk).
struct Ws8 {
    float* part;   // [tiles][n_kv][hd] K sums per tile (F16 cache)
    float* vpart;  // [tiles][n_kv][hd] |V| maxima per tile (int8 mode, F16 cache)
    int8_t* k8;    // [tiles][n_kv][64][hd] smoothed K
    float* ks;     // [tiles][n_kv][64] K scale per key (sage over F16: the tile's, repeated)
    void* v;       // sage: half [tiles][n_kv][64][hd]; int8: int8 [tiles][n_kv][hd][64] permuted
    float* vs;     // int8: F16 cache [n_seqs][n_kv][hd] per channel; INT8 cache [tiles][n_kv][64]
    int8_t* q8;    // [n_tokens][n_head][hd]
    float* qs;     // [n_tokens][n_head] (sage: the 64-row group's scale, repeated)
};

size_t align256(size_t x) {
    return (x + 255) & ~size_t(255);
}

// Byte offsets of Ws8's arrays for a batch; returns the total.
size_t ws8_layout(int n_tokens, int n_head, int n_kv, int hd, int n_seqs, int64_t tiles,
                  size_t off[8]) {
    const size_t tk = size_t(tiles) * size_t(n_kv);
    const size_t sizes[8] = {tk * hd * 4,
                             tk * hd * 4,
                             tk * kT * hd,
                             tk * kT * 4,
                             tk * kT * hd * 2,
                             std::max(size_t(n_seqs) * n_kv * hd, tk * kT) * 4,
                             size_t(n_tokens) * n_head * hd,
                             size_t(n_tokens) * n_head * 4};
    size_t o = 0;
    for (int i = 0; i < 8; ++i) {
        off[i] = o;
        o += align256(sizes[i]);
    }
    return o;
}

Ws8 carve(const AttnParams& p) {
    size_t off[8];
    const size_t need =
        ws8_layout(p.n_tokens, p.n_head, p.n_head_kv, p.head_dim, p.n_seqs, p.kv_tiles, off);
    if (!p.ws8 || p.ws8_bytes < need)
        fail(ErrorKind::invalid_arg, "8-bit attention: the scratch holds " +
                                         std::to_string(p.ws8_bytes) + " bytes, the batch needs " +
                                         std::to_string(need));
    char* b = static_cast<char*>(p.ws8);
    Ws8 w;
    w.part = reinterpret_cast<float*>(b + off[0]);
    w.vpart = reinterpret_cast<float*>(b + off[1]);
    w.k8 = reinterpret_cast<int8_t*>(b + off[2]);
    w.ks = reinterpret_cast<float*>(b + off[3]);
    w.v = b + off[4];
    w.vs = reinterpret_cast<float*>(b + off[5]);
    w.q8 = reinterpret_cast<int8_t*>(b + off[6]);
    w.qs = reinterpret_cast<float*>(b + off[7]);
    return w;
}

// The first tile of sequence s in the batch's numbering.
__device__ __forceinline__ int tile_base(const AttnParams& p, int s) {
    int t = 0;
    for (int i = 0; i < s; ++i) t += (p.kv_len[i] + kT - 1) / kT;
    return t;
}

// Position in a 64-key tile of INT8 V^T of key r: within each 32 keys, the order in which an
// m16n8k32 A fragment holds the keys of four m16n8 score tiles (thread t's word: keys 2t, 2t+1
// of the first two n-tiles), so the scores' registers pack straight into A.
__host__ __device__ __forceinline__ int vt_pos(int r) {
    const int h = r & 16, k = r & 15;  // k = 8 * (i / 2) + 2 * t + i % 2
    const int t = (k & 7) >> 1, i = ((k >> 3) << 1) | (k & 1);
    return (r & ~31) | h | (t << 2) | i;
}

// Block-wide max of non-negative floats (kThreads threads).
__device__ __forceinline__ float block_max(float v, float* red) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; ++w) r = fmaxf(r, red[w]);
    return r;
}

// The quantization groups' largest |x| over `rows` rows of HD floats, `stride` apart: per row
// (PER_ROW: one warp per row, lanes over the channels) into rscale[r], or over all the rows
// (one block-wide value) into rscale[0..64). Callers sync before reading rscale.
template <int HD, bool PER_ROW>
__device__ __forceinline__ void group_amax(const float* x, int64_t stride, int rows, float* red,
                                           float* rscale) {
    const int tid = threadIdx.x;
    if (!PER_ROW) {
        float a = 0.0f;
        for (int i = tid; i < rows * HD; i += kThreads)
            a = fmaxf(a, fabsf(x[int64_t(i / HD) * stride + i % HD]));
        a = block_max(a, red);
        if (tid < kBr) rscale[tid] = a;
        return;
    }
    const int warp = tid >> 5, lane = tid & 31;
    for (int r = warp; r < rows; r += kThreads / 32) {
        float a = 0.0f;
        for (int c = lane; c < HD; c += 32) a = fmaxf(a, fabsf(x[int64_t(r) * stride + c]));
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, off));
        if (lane == 0) rscale[r] = a;
    }
}

// 1. Per tile: K's sums per channel and (int8) V's maxima. grid (tile, KV head, sequence).
template <int HD, bool VMAX>
__global__ void __launch_bounds__(HD) kv8_sums_kernel(const AttnParams p, Ws8 w) {
    const int t = blockIdx.x, hk = blockIdx.y, seq = blockIdx.z, c = threadIdx.x;
    const int kv_len = p.kv_len[seq];
    if (t * kT >= kv_len) return;
    const int j1 = min(kv_len, (t + 1) * kT);
    const __half* kp = static_cast<const __half*>(p.kv.k);
    const __half* vp = static_cast<const __half*>(p.kv.v);
    float sum = 0.0f, vmax = 0.0f;
    for (int j = t * kT; j < j1; ++j) {
        const int64_t o = p.kv.row(seq, j) * p.kv.kv_dim + int64_t(hk) * HD + c;
        sum += __half2float(kp[o]);
        if (VMAX) vmax = fmaxf(vmax, fabsf(__half2float(vp[o])));
    }
    const int64_t i = (int64_t(tile_base(p, seq) + t) * p.n_head_kv + hk) * HD + c;
    w.part[i] = sum;
    if (VMAX) w.vpart[i] = vmax;
}

// INT8 V^T of a tile: quantized (F16 cache, per-channel inverse scales vinv) or copied (INT8
// cache, with its per-key scales) into shared memory at the permuted key positions, then the
// tile's HD rows of 64 bytes written in 16-byte pieces.
template <int HD, bool I8>
__device__ __forceinline__ void kv8_store_vt(const AttnParams& p, const Ws8& w, int64_t tile,
                                             const int64_t* rows, int nb, int hk, const float* vinv,
                                             int8_t* vt) {
    const int tid = threadIdx.x, n_kv = p.n_head_kv;
    const int64_t head_off = int64_t(hk) * HD;
    for (int i = tid; i < kT * HD / 8; i += kThreads) {
        const int r = i / (HD / 8), c = (i % (HD / 8)) * 8, pos = vt_pos(r);
        int8_t q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (r < nb) {
            if (I8) {
                const uint2 raw = *reinterpret_cast<const uint2*>(
                    static_cast<const int8_t*>(p.kv.v) + rows[r] * p.kv.kv_dim + head_off + c);
                const int8_t* b = reinterpret_cast<const int8_t*>(&raw);
#pragma unroll
                for (int e = 0; e < 8; ++e) q[e] = b[e];
            } else {
                const uint4 raw = *reinterpret_cast<const uint4*>(
                    static_cast<const __half*>(p.kv.v) + rows[r] * p.kv.kv_dim + head_off + c);
                const __half* h = reinterpret_cast<const __half*>(&raw);
#pragma unroll
                for (int e = 0; e < 8; ++e) q[e] = quantize_i8(__half2float(h[e]), vinv[c + e]);
            }
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) vt[(c + e) * kT + pos] = q[e];
    }
    __syncthreads();
    int8_t* v8 = static_cast<int8_t*>(w.v) + tile * kT * HD;  // [HD][64]
    for (int i = tid; i < HD * kT / 16; i += kThreads)
        *reinterpret_cast<uint4*>(v8 + i * 16) = *reinterpret_cast<const uint4*>(vt + i * 16);
    if (I8 && tid < kT)
        w.vs[tile * kT + tid] = tid < nb ? p.kv.v_scale[rows[tid] * n_kv + hk] : 0.0f;
}

// 2. Per tile: smooth, quantize and lay out K and V. grid (tile, KV head, sequence). Rows are
// read and written in 16-byte pieces; INT8 V is transposed through shared memory.
template <int HD, bool SAGE, bool I8>
__global__ void __launch_bounds__(kThreads) kv8_quant_kernel(const AttnParams p, Ws8 w) {
    const int t = blockIdx.x, hk = blockIdx.y, seq = blockIdx.z, tid = threadIdx.x;
    const int kv_len = p.kv_len[seq], n_kv = p.n_head_kv;
    if (t * kT >= kv_len) return;
    const int nb = min(kT, kv_len - t * kT);  // keys of this tile
    const int tb = tile_base(p, seq);
    const int64_t tile = int64_t(tb + t) * n_kv + hk;
    constexpr int kXS = HD + 4;  // floats per staged row (16-byte aligned, fewer conflicts)
    __shared__ float mean[HD], vinv[HD], red[kThreads / 32], rscale[kT];
    __shared__ __align__(16) float x[I8 ? 1 : kT * kXS];
    __shared__ __align__(16) int8_t vt[SAGE ? 16 : HD * kT];  // int8 V^T [HD][64]
    __shared__ int64_t rows[kT];
    if (tid < kT) rows[tid] = tid < nb ? p.kv.row(seq, t * kT + tid) : 0;
    if (!I8 && tid < HD) {
        const int n_t = (kv_len + kT - 1) / kT;
        float m = 0.0f, a = 0.0f;
        for (int b = 0; b < n_t; ++b) {
            const int64_t i = (int64_t(tb + b) * n_kv + hk) * HD + tid;
            m += w.part[i];
            if (!SAGE) a = fmaxf(a, w.vpart[i]);
        }
        mean[tid] = m / float(kv_len);
        if (!SAGE) {
            vinv[tid] = i8_inv_scale(a);
            if (t == 0) w.vs[(int64_t(seq) * n_kv + hk) * HD + tid] = i8_scale(a);
        }
    }
    __syncthreads();
    const int64_t head_off = int64_t(hk) * HD;
    int8_t* k8 = w.k8 + tile * kT * HD;
    float* ks = w.ks + tile * kT;
    constexpr int P16 = HD / 16;  // 16-byte pieces of an INT8 row
    if (I8) {
        // K as stored, with its per-key scales.
        for (int i = tid; i < kT * P16; i += kThreads) {
            const int r = i / P16, c = (i % P16) * 16;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nb)
                v = *reinterpret_cast<const uint4*>(static_cast<const int8_t*>(p.kv.k) +
                                                    rows[r] * p.kv.kv_dim + head_off + c);
            *reinterpret_cast<uint4*>(k8 + r * HD + c) = v;
        }
        if (tid < kT) ks[tid] = tid < nb ? p.kv.k_scale[rows[tid] * n_kv + hk] : 0.0f;
    } else {
        // Smoothed K as floats: 8 halves per piece.
        for (int i = tid; i < kT * HD / 8; i += kThreads) {
            const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
            float* xr = x + r * kXS + c;
            if (r < nb) {
                const uint4 raw = *reinterpret_cast<const uint4*>(
                    static_cast<const __half*>(p.kv.k) + rows[r] * p.kv.kv_dim + head_off + c);
                const __half* h = reinterpret_cast<const __half*>(&raw);
#pragma unroll
                for (int e = 0; e < 8; ++e) xr[e] = __half2float(h[e]) - mean[c + e];
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e) xr[e] = 0.0f;
            }
        }
        __syncthreads();
        group_amax<HD, !SAGE>(x, kXS, nb, red, rscale);  // rows past nb are not quantized
        __syncthreads();
        for (int i = tid; i < kT * P16; i += kThreads) {
            const int r = i / P16, c = (i % P16) * 16;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nb) {
                const float inv = i8_inv_scale(rscale[r]);
                uint32_t* u = reinterpret_cast<uint32_t*>(&v);
#pragma unroll
                for (int e = 0; e < 16; ++e)
                    u[e / 4] |= uint32_t(uint8_t(quantize_i8(x[r * kXS + c + e], inv)))
                                << (8 * (e % 4));
            }
            *reinterpret_cast<uint4*>(k8 + r * HD + c) = v;
        }
        if (tid < kT) ks[tid] = tid < nb ? i8_scale(rscale[tid]) : 0.0f;
    }
    // V.
    if constexpr (SAGE) {
        __half* v16 = static_cast<__half*>(w.v) + tile * kT * HD;
        for (int i = tid; i < kT * HD / 8; i += kThreads) {
            const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nb) {
                if (I8) {
                    const uint2 raw = *reinterpret_cast<const uint2*>(
                        static_cast<const int8_t*>(p.kv.v) + rows[r] * p.kv.kv_dim + head_off + c);
                    const int8_t* b = reinterpret_cast<const int8_t*>(&raw);
                    const float sc = p.kv.v_scale[rows[r] * n_kv + hk];
                    __half* h = reinterpret_cast<__half*>(&v);
#pragma unroll
                    for (int e = 0; e < 8; ++e) h[e] = __float2half_rn(float(b[e]) * sc);
                } else {
                    v = *reinterpret_cast<const uint4*>(static_cast<const __half*>(p.kv.v) +
                                                        rows[r] * p.kv.kv_dim + head_off + c);
                }
            }
            *reinterpret_cast<uint4*>(v16 + r * HD + c) = v;
        }
    } else {
        kv8_store_vt<HD, I8>(p, w, tile, rows, nb, hk, vinv, vt);
    }
}

// 3. Q per 64 rows (sage) or per row (int8). grid (64-row tile, head, sequence).
template <int HD, bool SAGE>
__global__ void __launch_bounds__(kThreads) q8_quant_kernel(const AttnParams p, Ws8 w) {
    const int seq = blockIdx.z, h = blockIdx.y, tid = threadIdx.x;
    const int q_first = p.q_start[seq], q_len = p.q_start[seq + 1] - q_first;
    const int i0 = blockIdx.x * kBr;
    if (i0 >= q_len) return;
    const int rows = min(kBr, q_len - i0);
    const int64_t stride = int64_t(p.n_head) * HD;
    const float* q = p.q + int64_t(q_first + i0) * stride + int64_t(h) * HD;
    int8_t* q8 = w.q8 + int64_t(q_first + i0) * stride + int64_t(h) * HD;
    float* qs = w.qs + int64_t(q_first + i0) * p.n_head + h;
    __shared__ float red[kThreads / 32], rscale[kBr];
    group_amax<HD, !SAGE>(q, stride, rows, red, rscale);
    __syncthreads();
    for (int i = tid; i < rows * HD; i += kThreads) {
        const int r = i / HD, c = i % HD;
        q8[int64_t(r) * stride + c] =
            quantize_i8(q[int64_t(r) * stride + c], i8_inv_scale(rscale[r]));
    }
    if (tid < rows) qs[int64_t(tid) * p.n_head] = i8_scale(rscale[tid]);
}

// Shared-memory layout of the attention kernel: Q8, then two stages of {K8, V, K scales,
// V scales}, then V's per-channel scales / 127. Rows padded by 16 bytes (ldmatrix rows on
// distinct banks).
template <int HD, bool SAGE>
struct Smem {
    static constexpr int kQStride = HD + 16;                        // bytes per Q8 / K8 row
    static constexpr int kVStride = SAGE ? (HD + 8) * 2 : kT + 16;  // bytes per V row
    static constexpr int kVRows = SAGE ? kT : HD;
    static constexpr int kQ = 0;
    static constexpr int kStage0 = kBr * kQStride;
    static constexpr int kK = 0;  // within a stage
    static constexpr int kV = kT * kQStride;
    static constexpr int kKs = kV + kVRows * kVStride;
    static constexpr int kVs = kKs + kT * 4;
    static constexpr int kStageBytes = kVs + kT * 4;
    static constexpr int kVc = kStage0 + 2 * kStageBytes;
    static constexpr int kBytes = kVc + HD * 4;
};

// 4. Attention over the quantized scratch. grid (64-query tile, head, sequence).
// VKEY (int8 over the INT8 cache): V has one scale per key.
template <int HD, bool SAGE, bool VKEY>
__global__ void __launch_bounds__(kThreads)
    attn8_kernel(const AttnParams p, Ws8 w, float scale_log2) {
    using L = Smem<HD, SAGE>;
    extern __shared__ __align__(16) unsigned char smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int seq = blockIdx.z, h = blockIdx.y, n_kv = p.n_head_kv;
    const int hk = h / (p.n_head / n_kv);
    const int q_first = p.q_start[seq], q_len = p.q_start[seq + 1] - q_first;
    const int q0 = blockIdx.x * kBr;
    if (q0 >= q_len) return;
    const int kv_len = p.kv_len[seq], pos0 = kv_len - q_len;
    const bool causal = p.causal;
    const int last_q = min(q0 + kBr, q_len) - 1;
    const int n_keys = causal ? pos0 + last_q + 1 : kv_len;
    const int n_tiles = (n_keys + kT - 1) / kT;
    const int tb = tile_base(p, seq);
    const int64_t stride = int64_t(p.n_head) * HD;

    // Tile t of this (sequence, KV head) into stage st.
    auto load_tile = [&](int t, int st) {
        unsigned char* base = smem + L::kStage0 + st * L::kStageBytes;
        const int64_t tile = int64_t(tb + t) * n_kv + hk;
        const int8_t* k8 = w.k8 + tile * kT * HD;
        for (int i = tid; i < kT * HD / 16; i += kThreads) {
            const int r = i / (HD / 16), c = (i % (HD / 16)) * 16;
            cp_async16(smem_u32(base + L::kK + r * L::kQStride + c), k8 + r * HD + c, true);
        }
        if (SAGE) {
            const __half* v16 = static_cast<const __half*>(w.v) + tile * kT * HD;
            for (int i = tid; i < kT * HD / 8; i += kThreads) {
                const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
                cp_async16(smem_u32(base + L::kV + r * L::kVStride + c * 2), v16 + r * HD + c,
                           true);
            }
        } else {
            const int8_t* v8 = static_cast<const int8_t*>(w.v) + tile * kT * HD;
            for (int i = tid; i < HD * kT / 16; i += kThreads) {
                const int r = i / (kT / 16), c = (i % (kT / 16)) * 16;
                cp_async16(smem_u32(base + L::kV + r * L::kVStride + c), v8 + r * kT + c, true);
            }
        }
        if (tid < kT / 4) {
            cp_async16(smem_u32(base + L::kKs + tid * 16), w.ks + tile * kT + tid * 4, true);
            if (VKEY)
                cp_async16(smem_u32(base + L::kVs + tid * 16), w.vs + tile * kT + tid * 4, true);
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
    };
    if (n_tiles > 0) load_tile(0, 0);

    // Q8 tile (rows past the sequence zero) and the scales of this thread's rows a and b.
    for (int i = tid; i < kBr * HD / 16; i += kThreads) {
        const int r = i / (HD / 16), c = (i % (HD / 16)) * 16;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (q0 + r < q_len)
            v = *reinterpret_cast<const uint4*>(w.q8 + int64_t(q_first + q0 + r) * stride +
                                                int64_t(h) * HD + c);
        *reinterpret_cast<uint4*>(smem + L::kQ + r * L::kQStride + c) = v;
    }
    float* vc = reinterpret_cast<float*>(smem + L::kVc);
    if (!SAGE && !VKEY)
        for (int c = tid; c < HD; c += kThreads)
            vc[c] = w.vs[(int64_t(seq) * n_kv + hk) * HD + c] / 127.0f;
    const int row_a = q0 + warp * 16 + (lane >> 2), row_b = row_a + 8;
    const float qs_a = row_a < q_len ? w.qs[int64_t(q_first + row_a) * p.n_head + h] : 0.0f;
    const float qs_b = row_b < q_len ? w.qs[int64_t(q_first + row_b) * p.n_head + h] : 0.0f;
    const int qpos_a = pos0 + row_a, qpos_b = pos0 + row_b;
    __syncthreads();
    uint32_t qf[HD / 32][4];
#pragma unroll
    for (int kk = 0; kk < HD / 32; ++kk) {
        const int r = warp * 16 + (lane % 16), c = kk * 32 + (lane / 16) * 16;
        ldsm_x4(smem_u32(smem + L::kQ + r * L::kQStride + c), qf[kk]);
    }

    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

    for (int t = 0; t < n_tiles; ++t) {
        if (t + 1 < n_tiles) {
            load_tile(t + 1, (t + 1) & 1);
            asm volatile("cp.async.wait_group 1;" ::: "memory");
        } else {
            asm volatile("cp.async.wait_group 0;" ::: "memory");
        }
        __syncthreads();
        const unsigned char* base = smem + L::kStage0 + (t & 1) * L::kStageBytes;
        const float* sks = reinterpret_cast<const float*>(base + L::kKs);
        const int k0 = t * kT;

        // S = Q8 K8^T, exact.
        int si[kT / 8][4];
#pragma unroll
        for (int nt = 0; nt < kT / 8; ++nt) si[nt][0] = si[nt][1] = si[nt][2] = si[nt][3] = 0;
#pragma unroll
        for (int kk = 0; kk < HD / 32; ++kk) {
#pragma unroll
            for (int nt = 0; nt < kT / 8; nt += 2) {
                const int r = nt * 8 + (lane % 8) + (lane / 16) * 8,
                          c = kk * 32 + ((lane / 8) % 2) * 16;
                uint32_t b[4];
                ldsm_x4(smem_u32(base + L::kK + r * L::kQStride + c), b);
                mma_16832_s8(si[nt], qf[kk], b[0], b[1]);
                mma_16832_s8(si[nt + 1], qf[kk], b[2], b[3]);
            }
        }

        // Scores in the CPU's order of operations, masked; online softmax of rows a and b.
        const bool need_mask = (causal && k0 + kT - 1 > pos0 + q0) || k0 + kT > n_keys;
        float s[kT / 8][4];
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kT / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = nt * 8 + 2 * (lane & 3) + e, key = k0 + col;
                const float sk = sks[col];
                float va = float(si[nt][e]) * (qs_a * sk) * scale_log2;
                float vb = float(si[nt][2 + e]) * (qs_b * sk) * scale_log2;
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

        if (SAGE) {
            rescale_rows(o, corr_a, corr_b);
#pragma unroll
            for (int kk = 0; kk < kT / 16; ++kk) {
                const uint32_t pa[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]),
                                        pack_h2(s[2 * kk][2], s[2 * kk][3]),
                                        pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                        pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int dt = 0; dt < HD / 8; dt += 2) {
                    const int r = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                              c = dt * 8 + (lane / 16) * 8;
                    uint32_t b[4];
                    ldsm_x4_t(smem_u32(base + L::kV + r * L::kVStride + c * 2), b);
                    mma_16816(o[dt], pa, b[0], b[1]);
                    mma_16816(o[dt + 1], pa, b[2], b[3]);
                }
            }
        } else {
            // P to int8 at 1/127; over the INT8 cache first weighted by V's per-key scale over
            // the largest of the keys the row sees in this tile.
            float sc_a = 0.f, sc_b = 0.f;  // the tile sum's dequantization (VKEY), per row
            if (VKEY) {
                const float* svs = reinterpret_cast<const float*>(base + L::kVs);
                float va = 0.f, vb = 0.f;
#pragma unroll
                for (int nt = 0; nt < kT / 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int col = nt * 8 + 2 * (lane & 3) + e, key = k0 + col;
                        const bool vis_a = key < n_keys && !(causal && key > qpos_a);
                        const bool vis_b = key < n_keys && !(causal && key > qpos_b);
                        if (vis_a) va = fmaxf(va, svs[col]);
                        if (vis_b) vb = fmaxf(vb, svs[col]);
                    }
#pragma unroll
                for (int off = 1; off <= 2; off <<= 1) {
                    va = fmaxf(va, __shfl_xor_sync(0xffffffffu, va, off));
                    vb = fmaxf(vb, __shfl_xor_sync(0xffffffffu, vb, off));
                }
#pragma unroll
                for (int nt = 0; nt < kT / 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float vj = svs[nt * 8 + 2 * (lane & 3) + e];
                        s[nt][e] *= va > 0.f ? vj / va : 0.f;
                        s[nt][2 + e] *= vb > 0.f ? vj / vb : 0.f;
                    }
                sc_a = va / 127.0f;
                sc_b = vb / 127.0f;
            }
            // A fragments of the two 32-key steps: word = row a or b, two keys of two n-tiles.
            // quantize_p_i8 for p in [0, 1] in two float operations: p * 127 rounded as the CPU
            // rounds it, then + 1.5 * 2^23, whose sum rounds to an integer (to nearest even, as
            // rintf does) held in the low mantissa bits; one byte permute packs two such bytes.
            auto pack4 = [](float x0, float x1, float x2, float x3) {
                constexpr float kMagic = 12582912.0f;
                const uint32_t w0 = __float_as_uint(__fadd_rn(__fmul_rn(x0, 127.0f), kMagic)),
                               w1 = __float_as_uint(__fadd_rn(__fmul_rn(x1, 127.0f), kMagic)),
                               w2 = __float_as_uint(__fadd_rn(__fmul_rn(x2, 127.0f), kMagic)),
                               w3 = __float_as_uint(__fadd_rn(__fmul_rn(x3, 127.0f), kMagic));
                return __byte_perm(__byte_perm(w0, w1, 0x0040), __byte_perm(w2, w3, 0x0040),
                                   0x5410);
            };
            uint32_t pa[2][4];
#pragma unroll
            for (int kb = 0; kb < 2; ++kb) {
                const int n0 = 4 * kb;
                pa[kb][0] = pack4(s[n0][0], s[n0][1], s[n0 + 1][0], s[n0 + 1][1]);
                pa[kb][1] = pack4(s[n0][2], s[n0][3], s[n0 + 1][2], s[n0 + 1][3]);
                pa[kb][2] = pack4(s[n0 + 2][0], s[n0 + 2][1], s[n0 + 3][0], s[n0 + 3][1]);
                pa[kb][3] = pack4(s[n0 + 2][2], s[n0 + 2][3], s[n0 + 3][2], s[n0 + 3][3]);
            }
#pragma unroll
            for (int dt = 0; dt < HD / 8; ++dt) {
                // V^T rows dt*8.. of the tile: four 16-key column blocks = (kb 0, kb 1) x (lo, hi).
                const int r = dt * 8 + (lane % 8), c = (lane / 8) * 16;
                uint32_t b[4];
                ldsm_x4(smem_u32(base + L::kV + r * L::kVStride + c), b);
                int acc[4] = {0, 0, 0, 0};
                mma_16832_s8(acc, pa[0], b[0], b[1]);
                mma_16832_s8(acc, pa[1], b[2], b[3]);
                const int c0 = dt * 8 + 2 * (lane & 3);
                const float f0 = VKEY ? sc_a : vc[c0], f1 = VKEY ? sc_a : vc[c0 + 1];
                const float f2 = VKEY ? sc_b : vc[c0], f3 = VKEY ? sc_b : vc[c0 + 1];
                o[dt][0] = o[dt][0] * corr_a + float(acc[0]) * f0;
                o[dt][1] = o[dt][1] * corr_a + float(acc[1]) * f1;
                o[dt][2] = o[dt][2] * corr_b + float(acc[2]) * f2;
                o[dt][3] = o[dt][3] * corr_b + float(acc[3]) * f3;
            }
        }
        __syncthreads();  // this stage is the next-but-one load's target
    }

#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
    float* out = p.out + int64_t(q_first) * stride + int64_t(h) * HD;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
        const int c = dt * 8 + 2 * (lane & 3);
        if (row_a < q_len)
            *reinterpret_cast<float2*>(out + int64_t(row_a) * stride + c) =
                make_float2(o[dt][0] * inv_a, o[dt][1] * inv_a);
        if (row_b < q_len)
            *reinterpret_cast<float2*>(out + int64_t(row_b) * stride + c) =
                make_float2(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
}

template <int HD, bool SAGE, bool I8>
void quantize(const AttnParams& p, const Ws8& w, cudaStream_t s) {
    const unsigned tiles = unsigned((p.max_kv + kT - 1) / kT);
    const dim3 kv_grid(tiles, unsigned(p.n_head_kv), unsigned(p.n_seqs));
    if (!I8) {
        kv8_sums_kernel<HD, !SAGE><<<kv_grid, HD, 0, s>>>(p, w);
        LLM8_CUDA_CHECK_LAUNCH();
    }
    kv8_quant_kernel<HD, SAGE, I8><<<kv_grid, kThreads, 0, s>>>(p, w);
    LLM8_CUDA_CHECK_LAUNCH();
    const dim3 q_grid(unsigned((p.max_q + kBr - 1) / kBr), unsigned(p.n_head), unsigned(p.n_seqs));
    q8_quant_kernel<HD, SAGE><<<q_grid, kThreads, 0, s>>>(p, w);
    LLM8_CUDA_CHECK_LAUNCH();
}

template <int HD, bool SAGE, bool VKEY>
void attend(const AttnParams& p, const Ws8& w, cudaStream_t s) {
    constexpr int smem = Smem<HD, SAGE>::kBytes;
    static bool configured = false;  // one attribute call per instance
    if (!configured) {
        LLM8_CUDA_CHECK(cudaFuncSetAttribute(attn8_kernel<HD, SAGE, VKEY>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        configured = true;
    }
    const dim3 grid(unsigned((p.max_q + kBr - 1) / kBr), unsigned(p.n_head), unsigned(p.n_seqs));
    attn8_kernel<HD, SAGE, VKEY><<<grid, kThreads, smem, s>>>(p, w, p.scale() * kLog2e);
    LLM8_CUDA_CHECK_LAUNCH();
}

template <int HD>
void run(const AttnParams& p, const Ws8& w, cudaStream_t s) {
    const bool sage = p.mode == AttnMode::sage, i8 = p.kv.type == KvType::i8;
    if (sage) {
        i8 ? quantize<HD, true, true>(p, w, s) : quantize<HD, true, false>(p, w, s);
        attend<HD, true, false>(p, w, s);
    } else {
        i8 ? quantize<HD, false, true>(p, w, s) : quantize<HD, false, false>(p, w, s);
        i8 ? attend<HD, false, true>(p, w, s) : attend<HD, false, false>(p, w, s);
    }
}

}  // namespace

size_t attention_8bit_workspace_bytes(int n_tokens, int n_head, int n_kv, int head_dim, int n_seqs,
                                      int64_t kv_tiles) {
    size_t off[8];
    return ws8_layout(n_tokens, n_head, n_kv, head_dim, n_seqs, kv_tiles, off);
}

int attention_kv_tiles(const int32_t* kv_len, int n_seqs) {
    int t = 0;
    for (int s = 0; s < n_seqs; ++s) t += (kv_len[s] + kT - 1) / kT;
    return t;
}

bool attention_8bit_mma(const AttnParams& p, cudaStream_t s) {
    if (p.mode != AttnMode::sage && p.mode != AttnMode::int8) return false;
    if (p.kv.type != KvType::f16 && p.kv.type != KvType::i8) return false;
    if (p.head_dim != 64 && p.head_dim != 128) return false;
    if (p.n_tokens == 0) return true;
    const Ws8 w = carve(p);
    p.head_dim == 64 ? run<64>(p, w, s) : run<128>(p, w, s);
    return true;
}

Attn8Scratch attention_8bit_scratch(const AttnParams& p) {
    const Ws8 w = carve(p);
    Attn8Scratch r;
    r.k8 = w.k8;
    r.ks = w.ks;
    r.v = w.v;
    r.vs = w.vs;
    r.q8 = w.q8;
    r.qs = w.qs;
    return r;
}

int attention_8bit_vt_pos(int r) {
    return vt_pos(r);
}

}  // namespace cuda
}  // namespace llm8
