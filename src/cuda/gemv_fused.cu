// gemv_fused: the decode-path GEMV with its neighbours folded in, so that a layer costs 7
// launches instead of 17 (per-launch cost, not bandwidth, dominated decode: 4.7 ms per 7B Q4_0
// token with ~550 launches, against 0.9 ms of weight bytes).
//   - optional RMSNorm of the input: the per-token scale 1/rms(x) comes from rms_scale() (one
//     tiny launch) and the GEMV applies x * scale * w on the fly. Rejected: recomputing the scale
//     in every block (commit 249bd57): with ~4 loop iterations per warp at K=4096 the prologue
//     (a 16 KB read and two block barriers) cost more than the GEMV and decode got 22% slower;
//   - up to 3 weight matrices of one type in one launch (Q, K, V), blocks split by row ranges;
//   - output modes: store, accumulate (the residual add), or SwiGLU of a gate/up pair (each
//     warp computes row r of both and writes silu(g) * u).
// Inner loop and layout as gemv_quad in gemv.cu (four lanes per 32-element unit, R=2 row slots
// per warp, units split over S=4 warps, partial sums reduced in shared memory).
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "cuda/gemv_common.cuh"
#include "cuda/quant_quads.cuh"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kWarps = 8, kR = 2, kS = 4, kRowsPerBlock = (kWarps / kS) * kR;

struct Seg {
    const uint8_t* w;
    size_t row_bytes;
    int64_t M;
    float* y;
    int block_begin;
};

struct Args {
    Seg seg[3];
    int n_seg;
    int64_t K;
    const float* x;
    int n;
    const float* norm_w;
    const float* norm_scale;  // [n] device
    int mode;                 // GemvMode
};

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kWarps * 32) gemv_fused_kernel(const Args a) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, k = lane & 3;
    const int ks = warp % kS, rw = warp / kS;
    int si = 0;
    while (si + 1 < a.n_seg && int(blockIdx.x) >= a.seg[si + 1].block_begin) ++si;
    const Seg sg = a.seg[si];
    const bool swiglu = a.mode == int(GemvMode::swiglu);
    const int64_t K = a.K, n_units = K / 32;
    const int n = a.n;

    float scale[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) scale[t] = (a.norm_w && t < n) ? a.norm_scale[t] : 1.0f;

    // Row slots of this warp: rows r0, r0+1 of the segment; in SwiGLU mode slot 0 is gate row
    // r and slot 1 is up row r (segments 0 and 1).
    const int64_t local_block = int64_t(blockIdx.x) - sg.block_begin;
    const int64_t r_base =
        swiglu ? (local_block * (kWarps / kS) + rw) : (local_block * kRowsPerBlock + rw * kR);
    const uint8_t* rows[kR];
    bool valid[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
        const int64_t row = swiglu ? r_base : r_base + r;
        valid[r] = row < sg.M;
        const Seg& src = swiglu ? a.seg[r] : sg;
        rows[r] = src.w + (valid[r] ? row : 0) * src.row_bytes;
    }

    constexpr bool kSplit = Quad<T>::kSplit;
    float acc[kR][NT];
#pragma unroll
    for (int r = 0; r < kR; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    for (int64_t u = ks * 8 + g; u < n_units; u += 8 * kS) {
        const int off_a = quad_off_a<kSplit>(k), off_b = quad_off_b<kSplit>(k);
        float4 wa = make_float4(1.f, 1.f, 1.f, 1.f), wb = wa;
        if (a.norm_w) {
            wa = __ldg(reinterpret_cast<const float4*>(a.norm_w + u * 32 + off_a));
            wb = __ldg(reinterpret_cast<const float4*>(a.norm_w + u * 32 + off_b));
        }
        float xv[NT][8];
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t < n) {
                const float* xp = a.x + t * K + u * 32;
                float4 xa = __ldg(reinterpret_cast<const float4*>(xp + off_a));
                float4 xb = __ldg(reinterpret_cast<const float4*>(xp + off_b));
                if (a.norm_w) {
                    const float sc = scale[t];
                    xa = make_float4(xa.x * sc * wa.x, xa.y * sc * wa.y, xa.z * sc * wa.z,
                                     xa.w * sc * wa.w);
                    xb = make_float4(xb.x * sc * wb.x, xb.y * sc * wb.y, xb.z * sc * wb.z,
                                     xb.w * sc * wb.w);
                }
                unpack8(xa, xb, xv[t]);
            }
        }
#pragma unroll
        for (int r = 0; r < kR; ++r) {
            if (valid[r]) {
                float v[8];
                Quad<T>::dq(rows[r], u, k, v);
#pragma unroll
                for (int t = 0; t < NT; ++t)
                    if (t < n) acc[r][t] += dot8(v, xv[t]);
            }
        }
    }

    __shared__ float red[kWarps][kR * NT];
    park_warp_sums<kWarps, kR, NT>(acc, red, warp, lane);
    __syncthreads();
    const int groups = kWarps / kS;
    const int tid = threadIdx.x;
    if (swiglu) {
        if (tid < groups * NT) {
            const int grp = tid / NT, t = tid % NT;
            const int64_t row = local_block * groups + grp;
            if (row < sg.M && t < n) {
                const float gsum = split_sum<kWarps, kR, NT, kS>(red, grp, 0 * NT + t);
                const float usum = split_sum<kWarps, kR, NT, kS>(red, grp, 1 * NT + t);
                a.seg[0].y[t * sg.M + row] = gsum / (1.0f + __expf(-gsum)) * usum;
            }
        }
        return;
    }
    for_each_row_sum<kWarps, kR, NT, kS>(red, local_block * kRowsPerBlock,
                                         [&](int64_t row, int t, float sum) {
                                             if (row >= sg.M || t >= n) return;
                                             float* dst = sg.y + t * sg.M + row;
                                             if (a.mode == int(GemvMode::accumulate))
                                                 *dst += sum;
                                             else
                                                 *dst = sum;
                                         });
}

bool quad_ok(const DeviceMatrix& w) {
    // The quarter-unit loads need ggml's block layout, whole 32-element units and aligned float
    // rows.
    if (w.split || w.ne0 % 32 != 0) return false;
    if (w.type == GgmlType::F32 || w.type == GgmlType::F16 || w.type == GgmlType::BF16)
        return w.row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
    return true;
}

__global__ void rms_scale_kernel(const float* __restrict__ x, int64_t K, float eps,
                                 float* __restrict__ out) {
    const float* xr = x + int64_t(blockIdx.x) * K;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < K; i += blockDim.x) ss += xr[i] * xr[i];
    __shared__ float part[32];
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        float tot = 0.0f;
        for (int w = 0; w < int(blockDim.x >> 5); ++w) tot += part[w];
        out[blockIdx.x] = rsqrtf(tot / float(K) + eps);
    }
}

}  // namespace

void rms_scale(const float* x, int64_t rows, int64_t K, float eps, float* out, cudaStream_t s) {
    if (rows == 0) return;
    rms_scale_kernel<<<unsigned(rows), 1024, 0, s>>>(x, K, eps, out);
    LLM8_CUDA_CHECK_LAUNCH();
}

bool gemv_fused(const DeviceMatrix* mats, float* const* ys, int n_mats, const float* x, int n,
                const float* norm_w, const float* norm_scale, GemvMode mode, cudaStream_t s) {
    if (n < 1 || n > 8 || n_mats < 1 || n_mats > 3) return false;
    const GgmlType type = mats[0].type;
    const int64_t K = mats[0].ne0;
    for (int i = 0; i < n_mats; ++i)
        if (mats[i].type != type || mats[i].ne0 != K || !quad_ok(mats[i])) return false;
    if (mode == GemvMode::swiglu && (n_mats != 2 || mats[0].ne1 != mats[1].ne1)) return false;
    Args a{};
    a.n_seg = mode == GemvMode::swiglu ? 1 : n_mats;
    int blocks = 0;
    for (int i = 0; i < n_mats; ++i) {
        a.seg[i] = Seg{mats[i].data, mats[i].row_bytes, mats[i].ne1, ys[i], blocks};
        if (mode != GemvMode::swiglu) blocks += ceil_div(mats[i].ne1, kRowsPerBlock);
    }
    if (mode == GemvMode::swiglu) blocks = ceil_div(mats[0].ne1, kWarps / kS);
    a.K = K;
    a.x = x;
    a.n = n;
    a.norm_w = norm_w;
    a.norm_scale = norm_scale;
    if (norm_w && !norm_scale) return false;
    a.mode = int(mode);
    if (n == 1) {
#define LLM8_GF(T) gemv_fused_kernel<T, 1><<<blocks, kWarps * 32, 0, s>>>(a)
        LLM8_DISPATCH_TYPE(type, LLM8_GF)
#undef LLM8_GF
    } else {
#define LLM8_GF(T) gemv_fused_kernel<T, 8><<<blocks, kWarps * 32, 0, s>>>(a)
        LLM8_DISPATCH_TYPE(type, LLM8_GF)
#undef LLM8_GF
    }
    LLM8_CUDA_CHECK_LAUNCH();
    return true;
}

}  // namespace cuda
}  // namespace llm8
