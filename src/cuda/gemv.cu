// Weight-streaming kernels: GEMV for decode (each weight row read once for up to 8 tokens),
// dequantization to half for the cuBLAS prefill path, embedding row gather, and the matmul
// that picks between them.
//
// GEMV (gemv_quad): four lanes share each 32-element unit of a row (quant_quads.cuh), so one
// warp reads 8 consecutive units as one contiguous span with aligned 2-16 byte loads. Each warp
// covers R rows (the activations it loads into registers serve R rows: 4/R bytes of activation
// traffic per weight element), and the units of a row are split over S warps of the block
// (S partial sums reduced in shared memory) so that 4096-row matrices still fill the GPU.
// Decode (1 token): R=2, S=4; 2..8 tokens: R=1, S=4.
// Tried first (commit 780261a): one warp per row, each lane dequantizing whole 32-element
// units with byte loads and re-reading float activations per row: 345 GB/s on Q4_0 7B (the
// activation traffic through L1/L2 was 7x the weight bytes).
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "cuda/quant_blocks.cuh"
#include "cuda/gemv_common.cuh"
#include "cuda/quant_quads.cuh"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kGemvMaxTokens = 8;
constexpr int kGemvWarps = 8;

constexpr int kQuadWarps = 8;

template <GgmlType T, int NT, int R, int S>
__global__ void __launch_bounds__(kQuadWarps * 32)
    gemv_quad_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K, int64_t M,
                     const float* __restrict__ x, int n, float* __restrict__ y) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, k = lane & 3;
    const int ks = warp % S, rw = warp / S;
    const int64_t row0 = (int64_t(blockIdx.x) * (kQuadWarps / S) + rw) * R;
    const int64_t n_units = K / 32;
    constexpr bool kSplit = Quad<T>::kSplit;
    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    for (int64_t u = ks * 8 + g; u < n_units; u += 8 * S) {
        float xv[NT][8];
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t < n) {
                const float* xp = x + t * K + u * 32;
                unpack8(__ldg(reinterpret_cast<const float4*>(xp + quad_off_a<kSplit>(k))),
                        __ldg(reinterpret_cast<const float4*>(xp + quad_off_b<kSplit>(k))), xv[t]);
            }
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (row0 + r < M) {
                float v[8];
                Quad<T>::dq(w + (row0 + r) * row_bytes, u, k, v);
#pragma unroll
                for (int t = 0; t < NT; ++t)
                    if (t < n) acc[r][t] += dot8(v, xv[t]);
            }
        }
    }
    __shared__ float red[kQuadWarps][R * NT];
    park_warp_sums<kQuadWarps, R, NT>(acc, red, warp, lane);
    __syncthreads();
    for_each_row_sum<kQuadWarps, R, NT, S>(red, int64_t(blockIdx.x) * (kQuadWarps / S) * R,
                                           [&](int64_t row, int t, float sum) {
                                               if (row < M && t < n) y[t * M + row] = sum;
                                           });
}

template <GgmlType T>
__global__ void dequant_f16_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K,
                                   int64_t rows, __half* __restrict__ out) {
    const int64_t units = K / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * units) return;
    const int64_t r = i / units, u = i % units;
    float v[32];
    dequant_unit<T>(w + r * row_bytes, u, v);
    uint4* o = reinterpret_cast<uint4*>(out + r * K + u * 32);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        __half2 h[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
            h[j] = __floats2half2_rn(v[8 * k + 2 * j], v[8 * k + 2 * j + 1]);
        o[k] = *reinterpret_cast<uint4*>(h);
    }
}

template <GgmlType T>
__global__ void get_rows_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K,
                                const int32_t* __restrict__ ids, float* __restrict__ out) {
    const int64_t r = ids[blockIdx.x];
    for (int64_t u = threadIdx.x; u < K / 32; u += blockDim.x) {
        float v[32];
        dequant_unit<T>(w + r * row_bytes, u, v);
        float4* o = reinterpret_cast<float4*>(out + int64_t(blockIdx.x) * K + u * 32);
#pragma unroll
        for (int k = 0; k < 8; ++k)
            o[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
    }
}

// Float rows whose length is not a multiple of 32 or whose rows are not 16-byte aligned (tiny
// models such as stories260K, FFN 172): element by element, one warp per row.
template <GgmlType T>
__device__ __forceinline__ float load_elem(const uint8_t* row, int64_t i) {
    if (T == GgmlType::F32) return reinterpret_cast<const float*>(row)[i];
    const uint16_t b = reinterpret_cast<const uint16_t*>(row)[i];
    if (T == GgmlType::F16) return __half2float(__ushort_as_half(b));
    return __uint_as_float(uint32_t(b) << 16);
}

template <GgmlType T>
__global__ void gemv_elem_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K,
                                 int64_t M, const float* __restrict__ x, int n,
                                 float* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    const int64_t row = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
    if (row >= M) return;
    const uint8_t* wr = w + row * row_bytes;
    float acc[kGemvMaxTokens];
#pragma unroll
    for (int t = 0; t < kGemvMaxTokens; ++t) acc[t] = 0.0f;
    for (int64_t i = lane; i < K; i += 32) {
        const float wv = load_elem<T>(wr, i);
#pragma unroll
        for (int t = 0; t < kGemvMaxTokens; ++t)
            if (t < n) acc[t] += wv * x[t * K + i];
    }
#pragma unroll
    for (int t = 0; t < kGemvMaxTokens; ++t) {
        if (t < n) {
            const float s = warp_sum(acc[t]);
            if (lane == 0) y[t * M + row] = s;
        }
    }
}

template <GgmlType T>
__global__ void dequant_elem_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t K,
                                    int64_t rows, const int32_t* __restrict__ ids,
                                    float* __restrict__ out_f, __half* __restrict__ out_h) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * K) return;
    const int64_t r = i / K, k = i % K;
    const float v = load_elem<T>(w + (ids ? int64_t(ids[r]) : r) * row_bytes, k);
    if (out_f)
        out_f[i] = v;
    else
        out_h[i] = __float2half_rn(v);
}

#define LLM8_DISPATCH_FLOAT_TYPE(t, F)                                                    \
    switch (t) {                                                                          \
        case GgmlType::F32:                                                               \
            F(GgmlType::F32);                                                             \
            break;                                                                        \
        case GgmlType::F16:                                                               \
            F(GgmlType::F16);                                                             \
            break;                                                                        \
        case GgmlType::BF16:                                                              \
            F(GgmlType::BF16);                                                            \
            break;                                                                        \
        default:                                                                          \
            ::llm8::fail(::llm8::ErrorKind::unsupported, "CUDA backend: bad row length"); \
    }

__global__ void f32_to_f16_kernel(const float* __restrict__ x, __half* __restrict__ y, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i]);
}

bool is_float_type(GgmlType t) {
    return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

// Float rows of awkward length or alignment take the element-wise kernels.
bool elementwise_path(const DeviceMatrix& w) {
    return is_float_type(w.type) && (w.ne0 % 32 != 0 || w.row_bytes % 16 != 0 ||
                                     reinterpret_cast<uintptr_t>(w.data) % 16 != 0);
}

void check_matrix(const DeviceMatrix& w) {
    if (w.ne0 % 32 != 0 && !is_float_type(w.type))
        fail(ErrorKind::unsupported, "CUDA backend: rows of " + std::to_string(w.ne0) +
                                         " elements (not a multiple of 32) are not supported");
}

// Tile of dequantized rows for the cuBLAS path: at most 64M halves (128 MiB).
int64_t gemm_tile_rows(const DeviceMatrix& w) {
    const int64_t cap = (int64_t(64) << 20) / std::max<int64_t>(w.ne0, 1);
    return std::max<int64_t>(1, std::min(w.ne1, cap));
}

}  // namespace

void gemv(const DeviceMatrix& w, const float* x, int n, float* y, cudaStream_t s) {
    check_matrix(w);
    if (n < 1 || n > kGemvMaxTokens) fail(ErrorKind::invalid_arg, "gemv: 1..8 tokens");
    if (w.split) {
        gemv_split(w, x, n, y, s);
        return;
    }
    if (elementwise_path(w)) {
        const int blocks = ceil_div(w.ne1, kGemvWarps);
#define LLM8_GEMV_E(T)  \
    gemv_elem_kernel<T> \
        <<<blocks, kGemvWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y)
        LLM8_DISPATCH_FLOAT_TYPE(w.type, LLM8_GEMV_E)
#undef LLM8_GEMV_E
        LLM8_CUDA_CHECK_LAUNCH();
        return;
    }
    if (n == 1) {
        constexpr int R = 2, S = 4;
        const int qblocks = ceil_div(w.ne1, (kQuadWarps / S) * R);
#define LLM8_GEMV(T)             \
    gemv_quad_kernel<T, 1, R, S> \
        <<<qblocks, kQuadWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y)
        LLM8_DISPATCH_TYPE(w.type, LLM8_GEMV)
#undef LLM8_GEMV
    } else {
        constexpr int R = 1, S = 4;
        const int qblocks = ceil_div(w.ne1, (kQuadWarps / S) * R);
#define LLM8_GEMV(T)                          \
    gemv_quad_kernel<T, kGemvMaxTokens, R, S> \
        <<<qblocks, kQuadWarps * 32, 0, s>>>(w.data, w.row_bytes, w.ne0, w.ne1, x, n, y)
        LLM8_DISPATCH_TYPE(w.type, LLM8_GEMV)
#undef LLM8_GEMV
    }
    LLM8_CUDA_CHECK_LAUNCH();
}

void dequantize_f16(const DeviceMatrix& w, int64_t r0, int64_t rows, uint16_t* out,
                    cudaStream_t s) {
    check_matrix(w);
    if (w.split) {
        dequantize_split_f16(w, r0, rows, out, s);
        return;
    }
    const uint8_t* base = w.data + size_t(r0) * w.row_bytes;
    __half* o = reinterpret_cast<__half*>(out);
    if (elementwise_path(w)) {
        const int64_t n = rows * w.ne0;
        if (n == 0) return;
#define LLM8_DQ_E(T)       \
    dequant_elem_kernel<T> \
        <<<ceil_div(n, 256), 256, 0, s>>>(base, w.row_bytes, w.ne0, rows, nullptr, nullptr, o)
        LLM8_DISPATCH_FLOAT_TYPE(w.type, LLM8_DQ_E)
#undef LLM8_DQ_E
        LLM8_CUDA_CHECK_LAUNCH();
        return;
    }
    const int64_t total = rows * (w.ne0 / 32);
    if (total == 0) return;
#define LLM8_DQ(T) \
    dequant_f16_kernel<T><<<ceil_div(total, 256), 256, 0, s>>>(base, w.row_bytes, w.ne0, rows, o)
    LLM8_DISPATCH_TYPE(w.type, LLM8_DQ)
#undef LLM8_DQ
    LLM8_CUDA_CHECK_LAUNCH();
}

void get_rows(const DeviceMatrix& w, const int32_t* ids, int n, float* out, cudaStream_t s) {
    check_matrix(w);
    if (w.split) fail(ErrorKind::invalid_arg, "get_rows: split-layout matrices are not gathered");
    if (n == 0) return;
    if (elementwise_path(w)) {
        const int64_t total = int64_t(n) * w.ne0;
#define LLM8_GR_E(T)       \
    dequant_elem_kernel<T> \
        <<<ceil_div(total, 256), 256, 0, s>>>(w.data, w.row_bytes, w.ne0, n, ids, out, nullptr)
        LLM8_DISPATCH_FLOAT_TYPE(w.type, LLM8_GR_E)
#undef LLM8_GR_E
        LLM8_CUDA_CHECK_LAUNCH();
        return;
    }
#define LLM8_GR(T) get_rows_kernel<T><<<n, 128, 0, s>>>(w.data, w.row_bytes, w.ne0, ids, out)
    LLM8_DISPATCH_TYPE(w.type, LLM8_GR)
#undef LLM8_GR
    LLM8_CUDA_CHECK_LAUNCH();
}

void f32_to_f16(const float* x, uint16_t* y, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    f32_to_f16_kernel<<<ceil_div(n, 256), 256, 0, s>>>(x, reinterpret_cast<__half*>(y), n);
    LLM8_CUDA_CHECK_LAUNCH();
}

size_t matmul_workspace_elems(const DeviceMatrix& w, int64_t n) {
    if (n <= kGemvMaxTokens) return 0;
    const size_t x16 = size_t(n) * size_t(w.ne0);
    const size_t w16 = w.type == GgmlType::F16 ? 0 : size_t(gemm_tile_rows(w)) * size_t(w.ne0);
    return x16 + w16;
}

void matmul(const DeviceMatrix& w, const float* x, int64_t n, float* y, uint16_t* ws,
            cublasHandle_t h, cudaStream_t s) {
    if (n <= 0) return;
    if (n <= kGemvMaxTokens) {
        gemv(w, x, int(n), y, s);
        return;
    }
    check_matrix(w);
    const int64_t K = w.ne0, M = w.ne1;
    uint16_t* x16 = ws;
    uint16_t* w16 = ws + size_t(n) * size_t(K);
    f32_to_f16(x, x16, n * K, s);
    LLM8_CUBLAS_CHECK(cublasSetStream(h, s));
    const float alpha = 1.0f, beta = 0.0f;
    const int64_t tile = w.type == GgmlType::F16 ? M : gemm_tile_rows(w);
    for (int64_t r0 = 0; r0 < M; r0 += tile) {
        const int64_t rows = std::min(tile, M - r0);
        const void* a;
        if (w.type == GgmlType::F16) {
            a = w.data + size_t(r0) * w.row_bytes;
        } else {
            dequantize_f16(w, r0, rows, w16, s);
            a = w16;
        }
        // Column-major view: C (rows x n, ldc M) = A^T (A: K x rows) * B (K x n).
        LLM8_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(n), int(K),
                                       &alpha, a, CUDA_R_16F, int(K), x16, CUDA_R_16F, int(K),
                                       &beta, y + r0, CUDA_R_32F, int(M), CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    }
}

}  // namespace cuda
}  // namespace llm8
