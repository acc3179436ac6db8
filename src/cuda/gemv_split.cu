// Q4_0 / Q8_0 weights in the split layout (ops.h): repacking at upload, the decode GEMV over it,
// and its dequantization to half for the cuBLAS path. K-quants and i-quants in the K split
// layout (ksplit.h, repacked on the host): their float GEMV for 2..8 tokens (prefill chunks that
// small; one token and decode steps take gemv_decode.cu) and their dequantization to half.
//
// GEMV (gemv_split): one lane per 32-element block, whose quants are one (Q4_0) or two (Q8_0)
// aligned 16-byte loads and whose scale is a 2-byte load from the scales region; a warp reads
// 512 or 1024 contiguous bytes of quants per row per step. Each warp covers R=4 rows, so the 32
// activations a lane loads serve 4 rows; rows are split over S=2 warps. Motivation (ncu, H200):
// the quarter-unit GEMV on ggml's 18/34-byte blocks read ~9 bytes per lane per step in 2-4 byte
// loads and ran at ~17% of DRAM bandwidth.
// Outcome (H200, 2026-11-21): slower, 188 vs 200 t/s (Q4_0 7B tg128), so it is opt-in
// (LLM8_SPLIT=1). Converting each 4-bit weight to fp32 costs ~4-5 instructions; at 7e9
// elements per token that alone is ~1 ms of issue time on 132 SMs: the float GEMV is
// instruction-bound. The aligned quants of this layout are what an integer (dp4a) or packed
// half2 GEMV wants; that is the next step.
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "cuda/gemv_common.cuh"
#include "cuda/ksplit.h"
#include "cuda/quant_quads.cuh"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kWarps = 8, kR = 4, kS = 2;

template <GgmlType T>
struct SplitFmt;
template <>
struct SplitFmt<GgmlType::Q4_0> {
    static constexpr int kQBytes = 16, kBlockBytes = 18;
};
template <>
struct SplitFmt<GgmlType::Q8_0> {
    static constexpr int kQBytes = 32, kBlockBytes = 34;
};

template <GgmlType T>
__global__ void repack_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst,
                              int64_t nb, size_t row_bytes, int64_t rows) {
    using F = SplitFmt<T>;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * nb) return;
    const int64_t r = i / nb, b = i % nb;
    const uint8_t* blk = src + r * row_bytes + b * F::kBlockBytes;
    uint8_t* row = dst + r * row_bytes;
    for (int k = 0; k < F::kQBytes; ++k) row[b * F::kQBytes + k] = blk[2 + k];
    row[nb * F::kQBytes + 2 * b] = blk[0];
    row[nb * F::kQBytes + 2 * b + 1] = blk[1];
}

// The 32 values of block b (in element order) of a split row, times nothing: returns q - bias
// as exact floats via the 2^23 trick, and the scale separately.
template <GgmlType T>
__device__ __forceinline__ float split_block(const uint8_t* row, int64_t nb, int64_t b, float* v) {
    using F = SplitFmt<T>;
    const float d = __half2float(reinterpret_cast<const __half*>(row + nb * F::kQBytes)[b]);
    if (T == GgmlType::Q4_0) {
        const uint4 q = *reinterpret_cast<const uint4*>(row + b * 16);
        const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const uint32_t byte = (w[i] >> (8 * j)) & 0xFF;
                v[4 * i + j] = u2f_minus(byte & 0xF, 8.0f);
                v[16 + 4 * i + j] = u2f_minus(byte >> 4, 8.0f);
            }
    } else {
        const uint4* p = reinterpret_cast<const uint4*>(row + b * 32);
        const uint4 q0 = p[0], q1 = p[1];
        const uint32_t w[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
                v[4 * i + j] = u2f_minus(((w[i] >> (8 * j)) & 0xFF) ^ 0x80, 128.0f);
    }
    return d;
}

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_split_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K, int64_t M,
                      const float* __restrict__ x, int n, float* __restrict__ y) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int ks = warp % kS, rw = warp / kS;
    const int64_t row0 = (int64_t(blockIdx.x) * (kWarps / kS) + rw) * kR;
    const int64_t nb = K / 32;
    float acc[kR][NT];
#pragma unroll
    for (int r = 0; r < kR; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    for (int64_t b = ks * 32 + lane; b < nb; b += 32 * kS) {
        float xs[NT][32];
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t < n) {
                const float4* xp = reinterpret_cast<const float4*>(x + t * K + b * 32);
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    const float4 a = __ldg(xp + i);
                    xs[t][4 * i] = a.x;
                    xs[t][4 * i + 1] = a.y;
                    xs[t][4 * i + 2] = a.z;
                    xs[t][4 * i + 3] = a.w;
                }
            }
        }
#pragma unroll
        for (int r = 0; r < kR; ++r) {
            if (row0 + r >= M) continue;
            float v[32];
            const float d = split_block<T>(w + (row0 + r) * row_bytes, nb, b, v);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                if (t < n) {
                    float s = 0.0f;
#pragma unroll
                    for (int i = 0; i < 32; ++i) s += v[i] * xs[t][i];
                    acc[r][t] += s * d;
                }
            }
        }
    }
    __shared__ float red[kWarps][kR * NT];
    park_warp_sums<kWarps, kR, NT>(acc, red, warp, lane);
    __syncthreads();
    for_each_row_sum<kWarps, kR, NT, kS>(red, int64_t(blockIdx.x) * (kWarps / kS) * kR,
                                         [&](int64_t row, int t, float sum) {
                                             if (row < M && t < n) y[t * M + row] = sum;
                                         });
}

template <GgmlType T>
__global__ void dequant_split_f16_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K,
                                         int64_t rows, __half* __restrict__ out) {
    const int64_t nb = K / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * nb) return;
    const int64_t r = i / nb, b = i % nb;
    float v[32];
    const float d = split_block<T>(w + r * row_bytes, nb, b, v);
    uint4* o = reinterpret_cast<uint4*>(out + r * K + b * 32);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        __half2 h[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
            h[j] = __floats2half2_rn(v[8 * k + 2 * j] * d, v[8 * k + 2 * j + 1] * d);
        o[k] = *reinterpret_cast<uint4*>(h);
    }
}

// ---- K split layout ------------------------------------------------------------------------

// The 32 values of unit u of a K split row, with the CPU dequantizer's formulas and operation
// order (src/gguf/quants.cpp), so that the cuBLAS path's half tiles equal the unsplit ones.
template <GgmlType T>
__device__ __forceinline__ void ksplit_dequant(const uint8_t* row, int64_t nb, int64_t u,
                                               float* v) {
    constexpr KSplitFmt f = ksplit_fmt(T);
    KUnit w = {};
#pragma unroll
    for (int i = 0; i < f.a / 4; ++i) w.a[i] = __ldg(reinterpret_cast<const uint32_t*>(row + u * f.a) + i);
    const uint8_t* b = row + nb * f.a;
#pragma unroll
    for (int i = 0; i < f.b / 4; ++i) w.b[i] = __ldg(reinterpret_cast<const uint32_t*>(b + u * f.b) + i);
    const uint8_t* sc = b + nb * f.b;
    w.s = __ldg(reinterpret_cast<const unsigned short*>(sc) + u);
    if (f.super) w.dd = __ldg(reinterpret_cast<const uint32_t*>(sc + nb * 2) + u / 8);
    uint32_t q[8];
    ksplit_words<T>(w, q);
    const int b0 = int(w.s & 0xFF), b1 = int((w.s >> 8) & 0xFF);
    const float d = __half2float(__ushort_as_half((unsigned short)(w.dd & 0xFFFFu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(w.dd >> 16)));
#pragma unroll
    for (int e = 0; e < 32; ++e) {
        const uint32_t qb = (q[e / 4] >> (8 * (e % 4))) & 0xFF;
        const int bh = e < 16 ? b0 : b1;  // the sub-scale byte of e's 16-element half
        if (T == GgmlType::Q4_K || T == GgmlType::Q5_K) {
            const float d1 = d * float(b0), m1 = dmin * float(b1);
            v[e] = d1 * float(qb) - m1;
        } else if (T == GgmlType::Q2_K) {
            const float dl = d * float(bh & 0xF), ml = dmin * float(bh >> 4);
            v[e] = dl * float(qb) - ml;
        } else if (T == GgmlType::Q3_K) {
            const float dl = d * float(int(int8_t(bh)));
            v[e] = dl * float(int(qb) - 4);
        } else if (T == GgmlType::Q6_K) {
            v[e] = d * float(int(int8_t(bh))) * float(int(qb) - 32);
        } else if (T == GgmlType::IQ4_XS) {
            const float dl = d * float(int(int8_t(b0)));
            v[e] = dl * float(int(int8_t(qb)));
        } else {  // IQ4_NL
            v[e] = __half2float(__ushort_as_half((unsigned short)(w.s))) * float(int(int8_t(qb)));
        }
    }
}

template <GgmlType T>
__global__ void dequant_ksplit_f16_kernel(const uint8_t* __restrict__ w, size_t pitch, int64_t K,
                                          int64_t rows, __half* __restrict__ out) {
    const int64_t nb = K / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * nb) return;
    const int64_t r = i / nb, u = i % nb;
    float v[32];
    ksplit_dequant<T>(w + r * pitch, nb, u, v);
    uint4* o = reinterpret_cast<uint4*>(out + r * K + u * 32);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        __half2 h[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) h[j] = __floats2half2_rn(v[8 * k + 2 * j], v[8 * k + 2 * j + 1]);
        o[k] = *reinterpret_cast<uint4*>(h);
    }
}

// 1..8 tokens in float: one warp per row, a lane per unit.
constexpr int kKWarps = 8, kKTokens = 8;

template <GgmlType T>
__global__ void __launch_bounds__(kKWarps * 32)
    gemv_ksplit_kernel(const uint8_t* __restrict__ w, size_t pitch, int64_t K, int64_t M,
                       const float* __restrict__ x, int n, float* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    const int64_t row = int64_t(blockIdx.x) * kKWarps + (threadIdx.x >> 5);
    if (row >= M) return;
    const int64_t nb = K / 32;
    float acc[kKTokens] = {};
    for (int64_t u = lane; u < nb; u += 32) {
        float v[32];
        ksplit_dequant<T>(w + row * pitch, nb, u, v);
#pragma unroll
        for (int t = 0; t < kKTokens; ++t) {
            if (t >= n) break;
            const float4* xp = reinterpret_cast<const float4*>(x + t * K + u * 32);
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const float4 a = __ldg(xp + i);
                s += v[4 * i] * a.x + v[4 * i + 1] * a.y + v[4 * i + 2] * a.z + v[4 * i + 3] * a.w;
            }
            acc[t] += s;
        }
    }
#pragma unroll
    for (int t = 0; t < kKTokens; ++t) {
        if (t >= n) break;
        const float s = warp_sum(acc[t]);
        if (lane == 0) y[t * M + row] = s;
    }
}

#define LLM8_DISPATCH_KSPLIT(t, F)                                                          \
    switch (t) {                                                                           \
        case GgmlType::Q2_K:                                                               \
            F(GgmlType::Q2_K);                                                             \
            break;                                                                         \
        case GgmlType::Q3_K:                                                               \
            F(GgmlType::Q3_K);                                                             \
            break;                                                                         \
        case GgmlType::Q4_K:                                                               \
            F(GgmlType::Q4_K);                                                             \
            break;                                                                         \
        case GgmlType::Q5_K:                                                               \
            F(GgmlType::Q5_K);                                                             \
            break;                                                                         \
        case GgmlType::Q6_K:                                                               \
            F(GgmlType::Q6_K);                                                             \
            break;                                                                         \
        case GgmlType::IQ4_NL:                                                             \
            F(GgmlType::IQ4_NL);                                                           \
            break;                                                                         \
        case GgmlType::IQ4_XS:                                                             \
            F(GgmlType::IQ4_XS);                                                           \
            break;                                                                         \
        default:                                                                           \
            ::llm8::fail(::llm8::ErrorKind::invalid_arg, "not a K split matrix");          \
    }

}  // namespace

bool can_split(const DeviceMatrix& w) {
    return (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q8_0) && w.ne0 % 256 == 0 &&
           w.row_bytes % 16 == 0;
}

void repack_split(const DeviceMatrix& w, const uint8_t* src, uint8_t* dst, cudaStream_t s) {
    if (!can_split(w))
        fail(ErrorKind::invalid_arg, "repack_split: not a Q4_0/Q8_0 matrix with aligned rows");
    const int64_t nb = w.ne0 / 32, total = nb * w.ne1;
    if (w.type == GgmlType::Q4_0)
        repack_kernel<GgmlType::Q4_0>
            <<<ceil_div(total, 256), 256, 0, s>>>(src, dst, nb, w.row_bytes, w.ne1);
    else
        repack_kernel<GgmlType::Q8_0>
            <<<ceil_div(total, 256), 256, 0, s>>>(src, dst, nb, w.row_bytes, w.ne1);
    LLM8_CUDA_CHECK_LAUNCH();
}

// Called by gemv() and dequantize_f16() for split matrices.
void gemv_split(const DeviceMatrix& w, const float* x, int n, float* y, cudaStream_t s) {
    if (ksplit_type(w.type)) {
        if (n < 1 || n > kKTokens) fail(ErrorKind::invalid_arg, "gemv_split: 1..8 tokens");
        const int kb = ceil_div(w.ne1, kKWarps);
#define LLM8_GEMV_K(T)        \
    gemv_ksplit_kernel<T>     \
        <<<kb, kKWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y)
        LLM8_DISPATCH_KSPLIT(w.type, LLM8_GEMV_K)
#undef LLM8_GEMV_K
        LLM8_CUDA_CHECK_LAUNCH();
        return;
    }
    const int blocks = ceil_div(w.ne1, (kWarps / kS) * kR);
    const bool q4 = w.type == GgmlType::Q4_0;
    if (n == 1) {
        if (q4)
            gemv_split_kernel<GgmlType::Q4_0, 1>
                <<<blocks, kWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y);
        else
            gemv_split_kernel<GgmlType::Q8_0, 1>
                <<<blocks, kWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y);
    } else {
        for (int t0 = 0; t0 < n; t0 += 2) {  // two tokens per launch keeps the registers in check
            const int nt = std::min(2, n - t0);
            if (q4)
                gemv_split_kernel<GgmlType::Q4_0, 2><<<blocks, kWarps * 32, 0, s>>>(
                    w.data, w.row_bytes, w.ne0, w.ne1, x + t0 * w.ne0, nt, y + t0 * w.ne1);
            else
                gemv_split_kernel<GgmlType::Q8_0, 2><<<blocks, kWarps * 32, 0, s>>>(
                    w.data, w.row_bytes, w.ne0, w.ne1, x + t0 * w.ne0, nt, y + t0 * w.ne1);
        }
    }
    LLM8_CUDA_CHECK_LAUNCH();
}

void dequantize_split_f16(const DeviceMatrix& w, int64_t r0, int64_t rows, uint16_t* out,
                          cudaStream_t s) {
    const int64_t total = rows * (w.ne0 / 32);
    if (total == 0) return;
    const uint8_t* base = w.data + size_t(r0) * w.row_bytes;
    __half* o = reinterpret_cast<__half*>(out);
    if (ksplit_type(w.type)) {
#define LLM8_DQ_K(T)                \
    dequant_ksplit_f16_kernel<T>    \
        <<<ceil_div(total, 256), 256, 0, s>>>(base, w.row_bytes, w.ne0, rows, o)
        LLM8_DISPATCH_KSPLIT(w.type, LLM8_DQ_K)
#undef LLM8_DQ_K
        LLM8_CUDA_CHECK_LAUNCH();
        return;
    }
    if (w.type == GgmlType::Q4_0)
        dequant_split_f16_kernel<GgmlType::Q4_0>
            <<<ceil_div(total, 256), 256, 0, s>>>(base, w.row_bytes, w.ne0, rows, o);
    else
        dequant_split_f16_kernel<GgmlType::Q8_0>
            <<<ceil_div(total, 256), 256, 0, s>>>(base, w.row_bytes, w.ne0, rows, o);
    LLM8_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda
}  // namespace llm8
