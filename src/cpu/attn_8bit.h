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
    std::vector<float> mean;     // [head_dim] K's smoothing mean over the n_keys keys
    std::vector<int8_t> k;       // [n_keys, head_dim] smoothed K, INT8
    std::vector<float> k_scale;  // sage: [ceil(n_keys / 64)] one per 64 keys; int8: [n_keys]
    std::vector<float> v16;      // sage: [n_keys, head_dim] V rounded to FP16
    std::vector<int8_t> v8;      // int8: [n_keys, head_dim]
    std::vector<float> v_scale;  // int8: [head_dim] one per channel
};
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
