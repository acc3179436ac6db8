// The Llama-family forward pass on the CPU, written top to bottom over the ops in cpu/ops.h.
#pragma once
#include <cstdint>
#include <vector>

#include "model/llama.h"
#include "runtime/kv_cache.h"

namespace llm8 {

struct ForwardScratch {
    std::vector<float> x, xn, q, k, v, att, o, gate, up;
    std::vector<int32_t> pos;
};

// Runs n tokens at positions pos0.. through the model, writing their K/V into the cache.
// logits: [n_out, n_vocab] for the last n_out tokens (n_out is 1 or n).
void llama_forward_cpu(const LlamaModel& m, KvCache& cache, const int32_t* tokens, int64_t n,
                       int64_t pos0, int64_t n_out, float* logits, ForwardScratch& s);

}  // namespace llm8
