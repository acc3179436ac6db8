#include "runtime/perplexity.h"

#include <cmath>

#include "common/error.h"

namespace llm8 {

double token_logprob(const float* logits, int n_vocab, int32_t target) {
    double mx = -INFINITY;
    for (int i = 0; i < n_vocab; ++i) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    return double(logits[target]) - mx - std::log(sum);
}

PerplexityResult perplexity(const std::shared_ptr<const Model>& model,
                            const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                            int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk) {
    if (n_ctx < 4) fail(ErrorKind::invalid_arg, "perplexity: context must be at least 4 tokens");
    const int max_chunks = int(tokens.size() / size_t(n_ctx));
    if (max_chunks < 1)
        fail(ErrorKind::invalid_arg, "perplexity: need at least " + std::to_string(n_ctx) +
                                         " tokens, the text has " + std::to_string(tokens.size()) +
                                         " (use a smaller -c or a longer file)");
    const int chunks = n_chunks > 0 ? std::min(n_chunks, max_chunks) : max_chunks;
    Session session(model, {n_ctx, n_batch, n_threads});
    const int V = model->n_vocab();
    const int32_t bos = model->bos();
    const bool add_bos = bos >= 0 && model->vocab_adds_bos();
    PerplexityResult r;
    double sum = 0, sum2 = 0;
    std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
    const int first = n_ctx / 2;
    for (int c = 0; c < chunks; ++c) {
        const size_t start = size_t(c) * size_t(n_ctx);
        chunk.assign(tokens.begin() + long(start), tokens.begin() + long(start) + n_ctx);
        if (add_bos) chunk[0] = bos;
        session.clear();
        session.decode(chunk, true);
        for (int j = first; j < n_ctx - 1; ++j) {
            const double nll = -token_logprob(session.logits(j), V, chunk[size_t(j) + 1]);
            sum += nll;
            sum2 += nll * nll;
            ++r.n_scored;
        }
        r.n_chunks = c + 1;
        const double running = std::exp(sum / double(r.n_scored));
        r.chunk_ppl.push_back(running);
        if (on_chunk) on_chunk(c, running);
    }
    r.nll = sum / double(r.n_scored);
    r.ppl = std::exp(r.nll);
    const double var = sum2 / double(r.n_scored) - r.nll * r.nll;
    r.ppl_err = var > 0 && r.n_scored > 1 ? r.ppl * std::sqrt(var / double(r.n_scored - 1)) : 0.0;
    return r;
}

}  // namespace llm8
