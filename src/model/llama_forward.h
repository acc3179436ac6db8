// The Llama-family forward pass on the CPU, written top to bottom over the ops in cpu/ops.h.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "common/forward_batch.h"
#include "model/llama.h"

namespace llm8 {

struct ForwardScratch {
    std::vector<float> x, xn, q, k, v, att, o, gate, up;
    std::vector<float> router, moe, qa, qh, lat, vh;  // MoE and MLA layers
    std::vector<int32_t> expert_ids;
    std::vector<float> expert_w;
};

// Runs one step of a batch of sequences (common/forward_batch.h): every token's K/V goes to
// its pool row (b.slots) of the f32 cache `kv`, each sequence attends over its own blocks.
// logits: [b.out_rows.size(), n_vocab], the rows b.out_rows in that order (may be null when
// there are none). attn: each layer's attention mode (the plan), n_layer entries.
// after_attention (may be empty): called after each layer's attention with its parameters
// (inputs and output), for the accuracy guard.
void llama_forward_cpu(
    const LlamaModel& m, const KvStorage& kv, const ForwardBatch& b,
    const std::vector<AttnMode>& attn, float* logits, ForwardScratch& s,
    const std::function<void(int, const AttnParams&)>& after_attention = nullptr);

}  // namespace llm8
