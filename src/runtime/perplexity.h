// Perplexity with llama-perplexity's protocol: the text is tokenized once with BOS; chunks of
// n_ctx tokens are scored independently (fresh context each); the first token of every chunk
// is replaced by BOS; only the second half of each chunk is scored (positions n_ctx/2 ..
// n_ctx-2 predict the next token), so every scored token has at least n_ctx/2 of context.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "llm8/engine.h"

namespace llm8 {

struct PerplexityResult {
    int n_chunks = 0;
    int64_t n_scored = 0;
    double nll = 0;                 // mean negative log-likelihood (nats)
    double ppl = 0;                 // exp(nll)
    double ppl_err = 0;             // llama.cpp's estimate: ppl * sqrt(var(nll_i) / (n - 1))
    std::vector<double> chunk_ppl;  // running PPL after each chunk
};

// n_chunks <= 0: as many as the tokens allow. on_chunk(i, running_ppl) after each chunk.
PerplexityResult perplexity(const std::shared_ptr<const Model>& model,
                            const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                            int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk = nullptr);

// log softmax(logits)[target], in double.
double token_logprob(const float* logits, int n_vocab, int32_t target);

}  // namespace llm8
