// Perplexity with llama-perplexity's protocol: the text is tokenized once with BOS; chunks of
// n_ctx tokens are scored independently (fresh context each); the first token of every chunk
// is replaced by BOS; only the second half of each chunk is scored (positions n_ctx/2 ..
// n_ctx-2 predict the next token), so every scored token has at least n_ctx/2 of context.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
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
    std::vector<AttnLayerStats> attn_stats;  // the accuracy guard's monitor over the whole run
};

// n_chunks <= 0: as many as the tokens allow. on_chunk(i, running_ppl) after each chunk.
PerplexityResult perplexity(const std::shared_ptr<const Model>& model,
                            const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                            int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk = nullptr);

// log softmax(logits)[target], in double.
double token_logprob(const float* logits, int n_vocab, int32_t target);

// KL divergence against a reference run (llama-perplexity's --kl-divergence-base and
// --kl-divergence). save_kl_base scores the text as perplexity() does and also writes, for every
// scored position, the reference model's log-probabilities to `path` (llm8's own layout, see
// docs/kl-divergence.md: about 2 bytes per vocabulary entry and position). kl_divergence runs
// `model` over the tokens stored in that file (its chunks, its context size) and compares.
// The base and the model under test may run on different backends or attention modes.
PerplexityResult save_kl_base(const std::shared_ptr<const Model>& model,
                              const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                              int n_batch, int n_threads, const std::string& path,
                              const std::function<void(int, double)>& on_chunk = nullptr);

struct KlStats {
    int64_t n = 0;         // scored positions
    PerplexityResult ppl;  // of the model under test
    double ppl_base = 0, ppl_base_err = 0;
    double ln_ratio = 0, ln_ratio_err = 0;  // mean ln(PPL(Q)/PPL(base)) over positions
    double cor = 0;                         // correlation of the per-position NLLs (Q vs base)
    double kld = 0, kld_err = 0;            // mean KL(base || Q) in nats and its standard error
    double dp = 0, dp_err = 0;              // p_Q(target) - p_base(target), mean and standard error
    double dp_rms = 0, dp_rms_err = 0;
    double same_top = 0, same_top_err = 0;      // share of positions with the same top token
    std::vector<double> kld_sorted, dp_sorted;  // every position's value, ascending
    // The value at fraction q (0..1) of a sorted list (nearest rank).
    static double quantile(const std::vector<double>& sorted, double q);
};

// on_chunk(i, running_mean_kld) after each chunk. n_chunks <= 0: every chunk of the file.
KlStats kl_divergence(const std::shared_ptr<const Model>& model, const std::string& path,
                      int n_chunks, int n_batch, int n_threads,
                      const std::function<void(int, double)>& on_chunk = nullptr);

// The base file's context size and chunk count (and a check of its layout), for the tools.
struct KlBaseInfo {
    int n_ctx = 0, n_vocab = 0, n_chunks = 0;
};
KlBaseInfo read_kl_base_info(const std::string& path);

}  // namespace llm8
