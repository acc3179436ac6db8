// attn_f16_decode_gqa: attention for a few queries (decode) over a long half-precision cache.
//
// One 128-thread block per (kv head, key split) serves all G = n_head/n_kv query heads of that
// kv head and all T queries (G*T <= 16 rows), so every K/V row is read from memory once per
// group instead of once per query head. Q.K^T: one lane per key (a 256-byte row read as 16-byte
// vectors), the queries broadcast from shared memory (pre-scaled by log2(e)/sqrt(hd) for exp2).
// P.V: each lane copies its key's V row into shared memory with cp.async before computing the
// scores (first version: V rows read from global memory in a chain of dependent groups of 4
// after the softmax); then lanes split the head dims (hd/32 each) and take each key's
// probability from its lane by shuffle. Online softmax per row in float; each
// block writes (m, l, acc[hd]) partials in the layout of attn_f16.cu, whose combine kernel
// merges the splits.
#include <algorithm>
#include <cstdint>

#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kWarps = 4, kMaxRows = 16;

// R: rows (query heads x tokens) the instance holds state for: 4 (MHA and GQA up to 4 heads per
// kv head, one token) or kMaxRows. Fewer rows leave the registers for the K row in flight.
// blockIdx.x: kv head; blockIdx.y: key split; blockIdx.z: sequence.
// Blocks per SM of the single-sequence kernel kept (its registers capped accordingly): the
// batch bookkeeping added 6-10 registers and took the hd128 GQA instance from 4 blocks per SM
// to 3, and tg128 at 16K of context 4% slower (H200, llama-3-8B shape).
constexpr int min_blocks(int hd, int r) {
    return r == 4 ? (hd == 128 ? 4 : 6) : (hd == 128 ? 2 : 3);
}

template <int HD, int R>
__global__ void __launch_bounds__(kWarps * 32, min_blocks(HD, R))
    attn_decode_kernel(const AttnParams p, int n_splits, float scale_log2) {
    pdl_trigger();
    constexpr int kDims = HD / 32;  // per lane in P.V
    const int hk = blockIdx.x, split = blockIdx.y, seq = blockIdx.z;
    const int n_head = p.n_head;
    const int q0 = p.q_start[seq], n_tokens = p.q_start[seq + 1] - q0;
    const int G = n_head / p.n_head_kv, rows = G * n_tokens;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_keys = p.kv_len[seq];
    const int pos0 = p.causal ? n_keys - n_tokens : n_keys;  // query t sees keys <= pos0 + t
    // This sequence's keys split evenly over the grid's splits, at least 32 (a warp's step)
    // each: a graph sized for the longest context still gives short ones few, full splits.
    const int split_keys = max(32, ((n_keys + n_splits - 1) / n_splits + 31) & ~31);
    const int j0 = split * split_keys, j1 = min(n_keys, j0 + split_keys);
    const float* q = p.q + int64_t(q0) * n_head * HD;
    const __half* kc = static_cast<const __half*>(p.kv.k);
    const __half* vc = static_cast<const __half*>(p.kv.v);
    const int64_t kv_dim = p.kv.kv_dim;
    float* ws = p.ws;
    // The step's metadata (lengths, block tables) was copied before the step's first kernel:
    // it is read before waiting for the kernel that writes q and the new cache rows (launched
    // with launch_pdl).
    pdl_wait();

    __shared__ __align__(16) float sq[R][HD];
    for (int i = threadIdx.x; i < rows * HD; i += blockDim.x) {
        const int r = i / HD, d = i % HD, t = r / G, g = r % G;
        sq[r][d] = q[(int64_t(t) * n_head + hk * G + g) * HD + d] * scale_log2;
    }
    __syncthreads();

    // Each warp stages the V rows of its 32 keys in shared memory (cp.async, issued before the
    // scores so that the copy overlaps them); after the loop the same bytes hold the warp's
    // partial accumulators (R * HD floats <= 32 * HD halves).
    static_assert(R * HD * 4 <= 32 * HD * 2, "V stage and accumulators share bytes");
    __shared__ __align__(16) unsigned char stage[kWarps][32 * HD * 2];
    __half(*sv)[HD] = reinterpret_cast<__half(*)[HD]>(stage[warp]);

    float m[R], l[R], acc[R][kDims];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.f;
#pragma unroll
        for (int d = 0; d < kDims; ++d) acc[r][d] = 0.f;
    }

    for (int base = j0 + warp * 32; base < j1; base += kWarps * 32) {
        const int j = base + lane;
        const bool have = j < j1;
        // The lane's K row: every 16-byte load issued before the first use (first version:
        // loads interleaved with the FMAs under register pressure, ~20 us per call at 5 keys).
        uint4 kraw[HD / 8];
        // A warp's 32 keys start at a multiple of 32: one block-table entry for all lanes.
        const int64_t row = (have ? p.kv.row(seq, j) : 0) * kv_dim + int64_t(hk) * HD;
        if (have) {
            const uint4* kr = reinterpret_cast<const uint4*>(kc + row);
#pragma unroll
            for (int c = 0; c < HD / 8; ++c) kraw[c] = kr[c];
        }
        if (have) {
            const char* src = reinterpret_cast<const char*>(vc + row);
            const uint32_t dst = uint32_t(__cvta_generic_to_shared(&sv[lane][0]));
#pragma unroll
            for (int c = 0; c < HD / 8; ++c)
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst + 16 * c),
                             "l"(src + 16 * c)
                             : "memory");
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
        // Scores of this lane's key for every row.
        float s[R];
#pragma unroll
        for (int r = 0; r < R; ++r) s[r] = 0.f;
        if (have) {
#pragma unroll
            for (int c = 0; c < HD / 8; ++c) {
                const uint4 raw = kraw[c];
                const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float2 f = __half22float2(h2[e]);
                    kf[2 * e] = f.x;
                    kf[2 * e + 1] = f.y;
                }
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    if (r < rows) {
                        const float4 qa = *reinterpret_cast<const float4*>(&sq[r][c * 8]);
                        const float4 qb = *reinterpret_cast<const float4*>(&sq[r][c * 8 + 4]);
                        s[r] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] +
                                qb.x * kf[4] + qb.y * kf[5] + qb.z * kf[6] + qb.w * kf[7];
                    }
                }
            }
        }
        // Online softmax per row over this warp's 32 keys.
        float p[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (r >= rows) continue;
            const int t = r / G;
            const bool visible = have && j <= pos0 + t;
            float sv = visible ? s[r] : -INFINITY;
            float mx = sv;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mn = fmaxf(m[r], mx);
            const float ref = mn == -INFINITY ? 0.f : mn;
            const float corr = exp2f(m[r] - ref);
            p[r] = visible ? exp2f(sv - ref) : 0.f;
            l[r] = l[r] * corr + p[r];
            m[r] = mn;
#pragma unroll
            for (int d = 0; d < kDims; ++d) acc[r][d] *= corr;
        }
        // P.V: key jj's probability comes from lane jj, its V row from the stage.
        asm volatile("cp.async.wait_all;" ::: "memory");
        __syncwarp();
        const int n_here = min(32, j1 - base);
        for (int jj0 = 0; jj0 < n_here; jj0 += 4) {
            float vf[4][kDims];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int jj = min(jj0 + u, n_here - 1);
                const __half* vr = &sv[jj][lane * kDims];
                if (kDims == 4) {
                    uint2 raw = *reinterpret_cast<const uint2*>(vr);
                    const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
                    const float2 a = __half22float2(h2[0]), b = __half22float2(h2[1]);
                    vf[u][0] = a.x;
                    vf[u][1 % kDims] = a.y;
                    vf[u][2 % kDims] = b.x;
                    vf[u][3 % kDims] = b.y;
                } else {
                    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(vr));
                    vf[u][0] = a.x;
                    vf[u][1 % kDims] = a.y;
                }
            }
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                if (jj0 + u >= n_here) break;
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    if (r < rows) {
                        const float pj = __shfl_sync(0xffffffffu, p[r], jj0 + u);
#pragma unroll
                        for (int d = 0; d < kDims; ++d) acc[r][d] += pj * vf[u][d];
                    }
                }
            }
        }
        __syncwarp();  // the stage is free for the next keys
    }

    // l was accumulated per lane: reduce over the warp. Then merge the warps.
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (r >= rows) continue;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) l[r] += __shfl_xor_sync(0xffffffffu, l[r], off);
    }
    __shared__ float sm_m[kWarps][R], sm_l[kWarps][R];
    // Warp w's accumulators live in its own stage (stage[w]), which no other warp touches.
    auto sm_acc = [&](int w) { return reinterpret_cast<float(*)[HD]>(stage[w]); };
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (r >= rows) continue;
        if (lane == 0) {
            sm_m[warp][r] = m[r];
            sm_l[warp][r] = l[r];
        }
#pragma unroll
        for (int d = 0; d < kDims; ++d) sm_acc(warp)[r][lane * kDims + d] = acc[r][d];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < rows * (HD + 2); i += blockDim.x) {
        const int r = i / (HD + 2), c = i % (HD + 2), t = r / G, g = r % G;
        float M = -INFINITY;
        for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w][r]);
        const int64_t th = int64_t(q0 + t) * n_head + hk * G + g;
        float* out = ws + (th * n_splits + split) * (HD + 2);
        float v = 0.f;
        for (int w = 0; w < kWarps; ++w) {
            if (sm_m[w][r] == -INFINITY) continue;
            const float f = exp2f(sm_m[w][r] - M);
            v += (c < HD ? sm_acc(w)[r][c] : sm_l[w][r]) * f;
        }
        // Partials are in the natural-log convention of attn_f16.cu's combine kernel: m in
        // units of the raw score, hence the division of the log2-scaled max.
        if (c < HD)
            out[c] = v;
        else if (c == HD)
            out[HD] = M == -INFINITY ? -INFINITY : M * 0.69314718055994531f;
        else
            out[HD + 1] = v;
    }
}

}  // namespace

// About 4 blocks per SM of an H100/H200 (528) over all sequences, each split at least 32 keys
// (one warp's step): short contexts then spread over several blocks instead of one long chain
// per kv head. The kernel divides each sequence's own keys among the splits.
int attention_decode_splits(int n_kv, int max_keys) {
    const int splits = std::max(1, (528 + n_kv - 1) / n_kv);
    return std::min(splits, std::max(1, (max_keys + 31) / 32));
}

int attention_decode_max_rows() {
    return kMaxRows;
}

bool attention_f16_decode(const AttnParams& p, cudaStream_t s) {
    const int G = p.n_head / p.n_head_kv;
    if (G * p.max_q > kMaxRows || (p.head_dim != 64 && p.head_dim != 128) ||
        p.kv.type != KvType::f16)
        return false;
    if (p.n_tokens == 0) return true;
    int splits = attention_decode_splits(p.n_head_kv * p.n_seqs, p.max_kv);
    const int64_t per = int64_t(p.n_tokens) * p.n_head * (p.head_dim + 2);
    splits = std::min<int64_t>(splits, std::max<int64_t>(1, int64_t(p.ws_floats) / per));
    const float scale_log2 = p.softmax_scale > 0.f ? 1.4426950408889634f * p.softmax_scale
                                                   : 1.4426950408889634f / sqrtf(float(p.head_dim));
    const dim3 grid(unsigned(p.n_head_kv), unsigned(splits), unsigned(p.n_seqs));
    const bool few = G * p.max_q <= 4;
    auto kernel = p.head_dim == 128
                      ? (few ? attn_decode_kernel<128, 4> : attn_decode_kernel<128, 16>)
                      : (few ? attn_decode_kernel<64, 4> : attn_decode_kernel<64, 16>);
    launch_pdl(kernel, grid, kWarps * 32, 0, s, p, splits, scale_log2);
    attention_combine(p.ws, p.n_tokens, p.n_head, p.head_dim, splits, p.out, s, p.q8, p.q8_ds);
    return true;
}

}  // namespace cuda
}  // namespace llm8
