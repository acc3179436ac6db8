// The 8-bit attention modes on the CPU: SageAttention (sage) and INT-FlashAttention (int8), the
// recipes of src/common/attn_recipe.h. They are the reference the CUDA kernels are checked
// against (integer parts bit for bit), and they run the whole model on the CPU with --attn.
#pragma once
#include <cstdint>
#include <vector>

#include "common/attn_params.h"

namespace llm8 {
namespace cpu {

// One (sequence, KV head)'s keys and values in an 8-bit mode's form.
struct Kv8 {
    int n_keys = 0, head_dim = 0;
    std::vector<float> mean;           // [head_dim] K's smoothing mean over the n_keys keys (0 when
                                       // the cache is INT8: its K was smoothed when written)
    std::vector<int8_t> k;             // [n_keys, head_dim] smoothed K, INT8
    int k_group = 1;                   // keys per K scale: 64 (sage over a float cache) or 1
    std::vector<float> k_scale;        // [ceil(n_keys / k_group)]
    std::vector<float> v16;            // sage: [n_keys, head_dim] V rounded to FP16
    std::vector<int8_t> v8;            // int8: [n_keys, head_dim]
    std::vector<float> v_scale;        // int8 over a float cache: [head_dim] one per channel
    std::vector<float> v_token_scale;  // int8 over an INT8 cache: [n_keys] one per key
};

// The INT8 KV cache's write step for one token (all KV heads): K minus the sequence's mean
// (k_mean, [kv_dim]) and V, each head's head_dim values with one scale (amax / 127).
// k8, v8: [kv_dim]; ks, vs: [kv_dim / head_dim].
void quantize_kv_row_i8(const float* k, const float* v, const float* k_mean, int kv_dim,
                        int head_dim, int8_t* k8, float* ks, int8_t* v8, float* vs);
// Quantizes the keys and values sequence s sees (kv_len[s] of them) of KV head hk for p.mode.
void prepare_kv_8bit(const AttnParams& p, int s, int hk, Kv8& out);

// Query rows of sequence s, head h ([q_len, head_dim], row i at q8[i * head_dim]) to INT8 with
// their scales: sage one per 64 rows (scale[i / 64]), int8 one per row (scale[i]).
void quantize_q_8bit(const AttnParams& p, int s, int h, std::vector<int8_t>& q8,
                     std::vector<float>& q_scale);

// Attention in p.mode (sage or int8) over a batch, as cpu::attention does for f16 (which calls
// this for the 8-bit modes).
void attention_8bit(const AttnParams& p);

}  // namespace cpu
}  // namespace llm8
