// Small fused row and element kernels of the forward pass: RMSNorm (one block per row, float
// accumulation), RoPE in both pair layouts with optional frequency factors, SwiGLU, residual
// and bias adds, and the append of K/V rows to the half-precision cache. All memory-bound and
// tiny next to the matrix work; written for clarity.
#include "common/attn_recipe.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "cuda/rope.cuh"

namespace llm8 {
namespace cuda {

namespace {

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                float* __restrict__ y, int n, float eps) {
    const float* xr = x + int64_t(blockIdx.x) * n;
    float* yr = y + int64_t(blockIdx.x) * n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    __shared__ float part[32];
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    const float scale = rsqrtf(part[0] / float(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

// One thread per (token, head, pair).
__global__ void rope_kernel(float* __restrict__ x, int64_t n_tokens, int n_heads, int head_dim,
                            int n_rot, const int32_t* __restrict__ pos, bool neox, float base,
                            float freq_scale, const float* __restrict__ factors) {
    const int half = n_rot / 2;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n_tokens * n_heads * half) return;
    const int p = int(i % half);
    const int64_t th = i / half;
    const int64_t t = th / n_heads;
    float inv_freq = powf(base, -2.0f * float(p) / float(n_rot));
    if (factors) inv_freq /= factors[p];
    const float theta = float(pos[t]) * freq_scale * inv_freq;
    float sn, cs;
    sincosf(theta, &sn, &cs);
    float* v = x + th * head_dim;
    const int a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * cs - x1 * sn;
    v[b] = x0 * sn + x1 * cs;
}

__global__ void swiglu_kernel(float* __restrict__ g, const float* __restrict__ u, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) g[i] = g[i] / (1.0f + __expf(-g[i])) * u[i];
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ b, int64_t n,
                                int64_t m) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n * m) y[i] += b[i % m];
}

__global__ void store_kv_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                __half* __restrict__ kc, __half* __restrict__ vc, int64_t n,
                                const int32_t* __restrict__ slots, int kv_dim) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n * kv_dim) return;
    const int64_t t = i / kv_dim;
    const int64_t dst = int64_t(slots[t]) * kv_dim + (i - t * kv_dim);
    kc[dst] = __float2half_rn(k[i]);
    vc[dst] = __float2half_rn(v[i]);
}

// Bias + RoPE of Q and K and the INT8 cache's write in one launch: one warp per (token, head
// slot), slots [0, n_head) query heads (rotated in place), the rest KV heads: K biased, rotated,
// minus the layer's mean, V biased, each quantized as cpu::quantize_kv_row_i8 does (bit for bit
// on the same floats: one subtraction, the maximum, one IEEE division 127 / amax, one
// round-to-nearest-even per element) at row slots[t]. Pairs as in rope_store_kernel.
__global__ void rope_store_i8_kernel(float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v, const float* __restrict__ bq,
                                     const float* __restrict__ bk, const float* __restrict__ bv,
                                     const float* __restrict__ k_mean, int8_t* __restrict__ k8,
                                     int8_t* __restrict__ v8, float* __restrict__ ks,
                                     float* __restrict__ vs, int64_t n,
                                     const int32_t* __restrict__ pos,
                                     const int32_t* __restrict__ slots, int n_head, int n_kv,
                                     int hd, int n_rot, bool neox, float base, float freq_scale,
                                     const float* __restrict__ factors) {
    // No early trigger: the decode attention after it, launched early, held SM slots while this
    // small kernel ran (tg128 at depth 4096 with the INT8 cache: 258 t/s with the trigger, 273
    // with PDL off; H200, session 6). Its dependents start as its blocks exit.
    pdl_wait();  // q, k, v come from the kernel before
    constexpr int kMaxPairs = 4;  // per lane: head dims up to 256
    const int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    const int heads = n_head + n_kv;
    if (w >= n * heads) return;
    const int64_t t = w / heads;
    const int slot = int(w % heads);
    const bool is_q = slot < n_head;
    const int head = is_q ? slot : slot - n_head;
    const int half_hd = hd / 2, half_rot = n_rot / 2;
    const int64_t kv_dim = int64_t(n_kv) * hd;
    const float* src = is_q ? q + (t * n_head + head) * hd : k + t * kv_dim + int64_t(head) * hd;
    const float* bias = is_q ? bq : bk;
    float x0[kMaxPairs], x1[kMaxPairs];
    int ia[kMaxPairs], ib[kMaxPairs];
#pragma unroll
    for (int u = 0; u < kMaxPairs; ++u) {
        const int p = lane + 32 * u;
        if (p >= half_hd) continue;
        int a, b;
        if (p < half_rot) {
            a = neox ? p : 2 * p;
            b = neox ? p + half_rot : 2 * p + 1;
        } else {
            a = n_rot + 2 * (p - half_rot);
            b = a + 1;
        }
        float y0 = src[a], y1 = src[b];
        if (bias) {
            y0 += bias[head * hd + a];
            y1 += bias[head * hd + b];
        }
        if (p < half_rot) rope_rotate(y0, y1, pos[t], p, n_rot, base, freq_scale, factors);
        x0[u] = y0;
        x1[u] = y1;
        ia[u] = a;
        ib[u] = b;
    }
    if (is_q) {
        float* dst = q + (t * n_head + head) * hd;
#pragma unroll
        for (int u = 0; u < kMaxPairs; ++u) {
            if (lane + 32 * u >= half_hd) continue;
            dst[ia[u]] = x0[u];
            dst[ib[u]] = x1[u];
        }
        return;
    }
    const float* mean = k_mean + int64_t(head) * hd;
    const float* vv = v + t * kv_dim + int64_t(head) * hd;
    float ka = 0.f, va = 0.f;
#pragma unroll
    for (int u = 0; u < kMaxPairs; ++u) {
        if (lane + 32 * u >= half_hd) continue;
        ka = fmaxf(ka, fmaxf(fabsf(x0[u] - mean[ia[u]]), fabsf(x1[u] - mean[ib[u]])));
    }
    for (int c = lane; c < hd; c += 32) va = fmaxf(va, fabsf(bv ? vv[c] + bv[head * hd + c] : vv[c]));
    for (int off = 16; off > 0; off >>= 1) {
        ka = fmaxf(ka, __shfl_xor_sync(0xffffffffu, ka, off));
        va = fmaxf(va, __shfl_xor_sync(0xffffffffu, va, off));
    }
    const float ki = i8_inv_scale(ka), vi = i8_inv_scale(va);
    const int64_t row = slots[t], dst = row * kv_dim + int64_t(head) * hd;
#pragma unroll
    for (int u = 0; u < kMaxPairs; ++u) {
        if (lane + 32 * u >= half_hd) continue;
        k8[dst + ia[u]] = quantize_i8(x0[u] - mean[ia[u]], ki);
        k8[dst + ib[u]] = quantize_i8(x1[u] - mean[ib[u]], ki);
    }
    for (int c = lane; c < hd; c += 32)
        v8[dst + c] = quantize_i8(bv ? vv[c] + bv[head * hd + c] : vv[c], vi);
    if (lane == 0) {
        ks[row * n_kv + head] = i8_scale(ka);
        vs[row * n_kv + head] = i8_scale(va);
    }
}

// blockIdx.y: one (src, dst) pair of block ids; per: 4-byte words per block.
__global__ void copy_blocks_kernel(uint32_t* __restrict__ pool, const int32_t* __restrict__ pairs,
                                   int64_t per) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= per) return;
    const int64_t src = int64_t(pairs[2 * blockIdx.y]), dst = int64_t(pairs[2 * blockIdx.y + 1]);
    pool[dst * per + i] = pool[src * per + i];
}

// One thread per (token, head slot, pair): slots [0, n_head) are query heads, the rest key heads
// (which also carry V). Pairs i < n_rot/2 rotate; the rest pass through (bias only).
__global__ void rope_store_kernel(float* __restrict__ q, float* __restrict__ k,
                                  const float* __restrict__ v, const float* __restrict__ bq,
                                  const float* __restrict__ bk, const float* __restrict__ bv,
                                  __half* __restrict__ kc, __half* __restrict__ vc, int64_t n,
                                  const int32_t* __restrict__ pos, const int32_t* __restrict__ slots,
                                  int n_head, int n_kv, int hd, int n_rot, bool neox, float base,
                                  float freq_scale, const float* __restrict__ factors) {
    pdl_trigger();
    pdl_wait();  // launched with launch_pdl: q, k, v come from the kernel before
    const int half_hd = hd / 2, half_rot = n_rot / 2;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int heads = n_head + n_kv;
    if (i >= n * heads * half_hd) return;
    const int p = int(i % half_hd);
    const int slot = int((i / half_hd) % heads);
    const int64_t t = i / (int64_t(half_hd) * heads);
    int a, b;
    if (p < half_rot) {
        a = neox ? p : 2 * p;
        b = neox ? p + half_rot : 2 * p + 1;
    } else {
        a = n_rot + 2 * (p - half_rot);
        b = a + 1;
    }
    const bool is_q = slot < n_head;
    const int head = is_q ? slot : slot - n_head;
    float* vec = is_q ? q + (t * n_head + head) * hd : k + (t * n_kv + head) * hd;
    const float* bias = is_q ? bq : bk;
    float x0 = vec[a], x1 = vec[b];
    if (bias) {
        x0 += bias[head * hd + a];
        x1 += bias[head * hd + b];
    }
    if (p < half_rot) rope_rotate(x0, x1, pos[t], p, n_rot, base, freq_scale, factors);
    if (is_q) {
        vec[a] = x0;
        vec[b] = x1;
        return;
    }
    const int64_t kv_dim = int64_t(n_kv) * hd;
    const int64_t dst = int64_t(slots[t]) * kv_dim + int64_t(head) * hd;
    kc[dst + a] = __float2half_rn(x0);
    kc[dst + b] = __float2half_rn(x1);
    const float* vv = v + t * kv_dim + int64_t(head) * hd;
    float v0 = vv[a], v1 = vv[b];
    if (bv) {
        v0 += bv[head * hd + a];
        v1 += bv[head * hd + b];
    }
    vc[dst + a] = __float2half_rn(v0);
    vc[dst + b] = __float2half_rn(v1);
}

}  // namespace

void rope_store(float* q, float* k, const float* v, const float* bq, const float* bk,
                const float* bv, uint16_t* kc, uint16_t* vc, int64_t n, const int32_t* pos,
                const int32_t* slots, int n_head, int n_head_kv, int head_dim, int n_rot,
                RopeLayout layout, float base, float freq_scale, const float* factors,
                cudaStream_t s) {
    const int64_t total = n * (n_head + n_head_kv) * (head_dim / 2);
    if (total == 0) return;
    launch_pdl(rope_store_kernel, ceil_div(total, 256), 256, 0, s, q, k, v, bq, bk, bv,
               reinterpret_cast<__half*>(kc), reinterpret_cast<__half*>(vc), n, pos, slots,
               n_head, n_head_kv, head_dim, n_rot, layout == RopeLayout::neox, base, freq_scale,
               factors);
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int n, float eps,
              cudaStream_t s) {
    if (rows == 0) return;
    rms_norm_kernel<<<unsigned(rows), n >= 1024 ? 1024 : 256, 0, s>>>(x, w, y, n, eps);
    LLM8_CUDA_CHECK_LAUNCH();
}

void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos,
          RopeLayout layout, float base, float freq_scale, const float* factors, cudaStream_t s) {
    const int64_t total = n_tokens * n_heads * (n_rot / 2);
    if (total == 0) return;
    rope_kernel<<<ceil_div(total, 256), 256, 0, s>>>(x, n_tokens, n_heads, head_dim, n_rot, pos,
                                                     layout == RopeLayout::neox, base, freq_scale,
                                                     factors);
    LLM8_CUDA_CHECK_LAUNCH();
}

void swiglu(float* g, const float* u, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    swiglu_kernel<<<ceil_div(n, 256), 256, 0, s>>>(g, u, n);
    LLM8_CUDA_CHECK_LAUNCH();
}

void add(float* y, const float* x, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    add_kernel<<<ceil_div(n, 256), 256, 0, s>>>(y, x, n);
    LLM8_CUDA_CHECK_LAUNCH();
}

void add_bias(float* y, const float* b, int64_t n, int64_t m, cudaStream_t s) {
    if (n * m == 0) return;
    add_bias_kernel<<<ceil_div(n * m, 256), 256, 0, s>>>(y, b, n, m);
    LLM8_CUDA_CHECK_LAUNCH();
}

void store_kv(const float* k, const float* v, uint16_t* kc, uint16_t* vc, int64_t n,
              const int32_t* slots, int kv_dim, cudaStream_t s) {
    if (n == 0) return;
    store_kv_kernel<<<ceil_div(n * kv_dim, 256), 256, 0, s>>>(
        k, v, reinterpret_cast<__half*>(kc), reinterpret_cast<__half*>(vc), n, slots, kv_dim);
    LLM8_CUDA_CHECK_LAUNCH();
}

void copy_kv_blocks(void* pool, const int32_t* pairs, int n_pairs, int64_t block_bytes,
                    cudaStream_t s) {
    if (n_pairs == 0) return;
    if (block_bytes % 4 != 0)
        fail(ErrorKind::invalid_arg, "copy_kv_blocks: blocks must be whole 4-byte words");
    const int64_t per = block_bytes / 4;
    copy_blocks_kernel<<<dim3(unsigned(ceil_div(per, 256)), unsigned(n_pairs)), 256, 0, s>>>(
        static_cast<uint32_t*>(pool), pairs, per);
    LLM8_CUDA_CHECK_LAUNCH();
}

void rope_store_i8(float* q, const float* k, const float* v, const float* bq, const float* bk,
                   const float* bv, const float* k_mean, int8_t* k8, int8_t* v8, float* ks,
                   float* vs, int64_t n, const int32_t* pos, const int32_t* slots, int n_head,
                   int n_head_kv, int head_dim, int n_rot, RopeLayout layout, float base,
                   float freq_scale, const float* factors, cudaStream_t s) {
    if (n == 0) return;
    if (head_dim > 256 || head_dim % 2 != 0 || n_rot > head_dim)
        fail(ErrorKind::invalid_arg, "rope_store_i8: head dim must be even and <= 256");
    const int64_t threads = n * (n_head + n_head_kv) * 32;
    launch_pdl(rope_store_i8_kernel, ceil_div(threads, 128), 128, 0, s, q, k, v, bq, bk, bv,
               k_mean, k8, v8, ks, vs, n, pos, slots, n_head, n_head_kv, head_dim, n_rot,
               layout == RopeLayout::neox, base, freq_scale, factors);
}

}  // namespace cuda
}  // namespace llm8
