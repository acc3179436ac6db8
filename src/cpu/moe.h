// Mixture-of-experts FFN on the CPU: the router (which experts each token uses, and with what
// weight) and the routed experts' SwiGLU FFNs, only the chosen experts' rows computed. Plain code
// over cpu::matmul; it is the reference a GPU version will be held to.
//
// Routing, as llama.cpp's build_moe_ffn (llama-graph.cpp) defines it:
//   p = softmax(logits) or sigmoid(logits)              over all n_expert
//   s = p + bias                                         selection only (DeepSeek-V3)
//   groups (V3): each group's score is the sum of its two best s; the n_group_used best groups
//   stay, the others' s become -inf
//   chosen = the n_used largest s (ties: lower expert id first)
//   w = p[chosen]; w /= sum(w) when norm (sum clamped to >= 2^-14); w *= scale
// Mixtral and Qwen3-MoE normalize, so w is the softmax over the chosen logits.
#pragma once
#include <cstdint>

#include "common/tensor_types.h"

namespace llm8 {
namespace cpu {

struct MoeRouteParams {
    const float* logits = nullptr;  // [n_tokens, n_expert] router outputs
    const float* bias = nullptr;    // [n_expert] selection bias, or null
    int n_tokens = 0, n_expert = 0, n_used = 0;
    ExpertGating gating = ExpertGating::softmax;
    bool norm = false;
    float scale = 1.0f;
    int n_groups = 0, n_groups_used = 0;  // 0: no group limit
    int32_t* ids = nullptr;               // [n_tokens, n_used] out: chosen experts, best first
    float* weights = nullptr;             // [n_tokens, n_used] out: their weights
};
void moe_route(const MoeRouteParams& p);

struct MoeFfnParams {
    const float* x = nullptr;  // [n_tokens, n_embd] normed input
    float* y = nullptr;        // [n_tokens, n_embd] out: sum over the chosen experts (overwritten)
    int n_tokens = 0;
    int n_used = 0;
    const int32_t* ids = nullptr;    // [n_tokens, n_used] from moe_route
    const float* weights = nullptr;  // [n_tokens, n_used]
    // Expert e: rows [e*n_ff, (e+1)*n_ff) of gate/up (n_embd inputs), rows [e*n_embd, ...) of
    // down (n_ff inputs).
    WeightView gate, up, down;
    int n_ff = 0;
    // Stream weight rows for every token count (decode steps of a batch), as llama_forward_cpu's
    // other matrices do, instead of cpu::matmul's choice by count.
    bool rows_path = false;
};
// Groups the tokens by expert and runs each used expert once on its tokens; each token's sum
// runs over its experts in ascending id order, so a token's output does not depend on which
// other tokens share the batch (beyond the matmul path's rounding).
void moe_ffn(const MoeFfnParams& p);

}  // namespace cpu
}  // namespace llm8
