// CPU operators of the forward pass. Each has a plain reference (`*_ref`, double accumulation,
// no threads) that tests and other backends compare against, and the fast version the engine
// runs (OpenMP threads, OpenBLAS sgemm over dequantized weight tiles).
//
// Layouts: activations are row-major [n_tokens, features]; a weight matrix W is [ne1 rows of
// ne0 inputs] (ggml/PyTorch Linear layout), so Y = X * W^T.
#pragma once
#include <cstdint>

#include "common/attn_params.h"
#include "common/tensor_types.h"

namespace llm8 {
namespace cpu {

// Threads for the operators below; 0 means all hardware threads.
void set_threads(int n);
int threads();

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// Y[n, W.ne1] = X[n, W.ne0] * W^T. GEMV per row when n is small, tiled sgemm otherwise.
void matmul(const WeightView& w, const float* x, int64_t n, float* y);
void matmul_ref(const WeightView& w, const float* x, int64_t n, float* y);
// The row-streaming path alone (each weight row read once, dotted with every token): what
// matmul does for 1-2 tokens, and what decode steps of a batch of sequences use (a few tokens:
// dequantized tiles + sgemm spent most of a 4-sequence step switching between OpenMP's and
// OpenBLAS's threads, 11 t/s against 94 for one sequence on 2 cores).
void matmul_rows(const WeightView& w, const float* x, int64_t n, float* y);

// y[n, m] += b[m] per row
void add_bias(float* y, const float* b, int64_t n, int64_t m);

// Y[n, W.ne0] = X[n, W.ne1] * W: W used transposed (its rows as columns). For deepseek2's
// older attn_kv_b, whose K part must be applied from the latent side (the query absorbs it).
void matmul_t(const WeightView& w, const float* x, int64_t n, float* y);

// Rotates the first n_rot dims of every head of x ([n_tokens, n_heads * head_dim]) by
// pos[t] * freq_scale * base^(-2i/n_rot) (divided by factors[i] when given); with yarn (may be
// null) the YaRN blend and magnitude of common/tensor_types.h.
void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos,
          RopeLayout layout, float base, float freq_scale, const float* factors,
          const RopeYarn* yarn = nullptr);

// Attention of a batch of sequences over the paged cache (common/attn_params.h: per-sequence
// query rows and key counts, causal masks aligned to the end, block tables). Host pointers; the
// cache type must be f32. GQA: query head h reads kv head h / (n_head / n_head_kv).
void attention(const AttnParams& p);
// Work item wi (of n_tokens * n_head) of the CPU attention kernels: batch query row `row`, head
// h reading KV head hk; the row is query i of sequence s and sees its first n_keys keys
// (causal masks aligned to the end).
struct AttnItem {
    int row, h, hk, s, i, n_keys;
};
AttnItem attn_item(const AttnParams& p, int64_t wi);
// The reference: one sequence, n_tokens queries at positions pos0.. over contiguous cache rows
// [0, pos0+t] (k, v: [n_keys, n_head_kv*hd]), double accumulation, scale 1/sqrt(hd).
void attention_ref(const float* q, const float* k, const float* v, int64_t n_tokens, int64_t pos0,
                   int n_head, int n_head_kv, int head_dim, float* out);

// The GPU decode path's recipe (src/cuda/gemv_decode.cu), for bit-exact tests of its integer
// parts. Activations per 32-element unit: d = amax / 127, q = round-to-nearest-even(x / d)
// (0 when amax is 0), sum = sum of q. K % 32 == 0.
void quantize_act_q8(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum);
// The integer dot product of unit u of a Q4_0 or Q8_0 row (ggml's blocks) with unit u of the
// quantized activations: sum (q_w - 8) q_x for Q4_0, sum q_w q_x for Q8_0.
int32_t dot_unit_q8(GgmlType t, const uint8_t* row, int64_t u, const int8_t* q);
// y[r] = sum_u d_w(u) * d_x(u) * dot_unit_q8(u), accumulated in double (the recipe's value).
void matmul_act_q8_ref(const WeightView& w, const int8_t* q, const float* d, double* y);

// g[i] = silu(g[i]) * u[i]
void swiglu(float* g, const float* u, int64_t n);

}  // namespace cpu
}  // namespace llm8
