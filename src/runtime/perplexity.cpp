#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/error.h"

namespace llm8 {

double token_logprob(const float* logits, int n_vocab, int32_t target) {
    double mx = -INFINITY;
    for (int i = 0; i < n_vocab; ++i) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    return double(logits[target]) - mx - std::log(sum);
}

namespace {

int count_chunks(size_t n_tokens, int n_ctx, int n_chunks) {
    if (n_ctx < 4) fail(ErrorKind::invalid_arg, "perplexity: context must be at least 4 tokens");
    const int max_chunks = int(std::min<size_t>(n_tokens / size_t(n_ctx), 1u << 30));
    if (max_chunks < 1)
        fail(ErrorKind::invalid_arg, "perplexity: need at least " + std::to_string(n_ctx) +
                                         " tokens, the text has " + std::to_string(n_tokens) +
                                         " (use a smaller -c or a longer file)");
    return n_chunks > 0 ? std::min(n_chunks, max_chunks) : max_chunks;
}

// The chunks of llama-perplexity's protocol: chunk c is tokens [c n_ctx, (c + 1) n_ctx) (its
// first token replaced by BOS when set_bos and the vocabulary adds one), scored from position
// n_ctx / 2 to n_ctx - 2. Returns the NLL statistics and the attention guard's; calls
// extra(j, logits, chunk) at every scored position (the KL base and comparison) and
// on_chunk(c, running PPL) after each chunk.
using PositionHook = std::function<void(int, const float*, const std::vector<int32_t>&)>;
PerplexityResult score_chunks(const std::shared_ptr<const Model>& model, const int32_t* tokens,
                              int n_ctx, int chunks, int n_batch, int n_threads, bool set_bos,
                              const PositionHook& extra,
                              const std::function<void(int, double)>& on_chunk) {
    Session session(model, {n_ctx, n_batch, n_threads});
    const int V = model->n_vocab();
    const int32_t bos = model->bos();
    const bool add_bos = set_bos && bos >= 0 && model->vocab_adds_bos();
    std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
    PerplexityResult r;
    double sum = 0, sum2 = 0;
    for (int c = 0; c < chunks; ++c) {
        const int32_t* begin = tokens + size_t(c) * size_t(n_ctx);
        chunk.assign(begin, begin + n_ctx);
        if (add_bos) chunk[0] = bos;
        session.clear();
        session.decode(chunk, true);
        for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {
            const float* logits = session.logits(j);
            const double nll = -token_logprob(logits, V, chunk[size_t(j) + 1]);
            sum += nll;
            sum2 += nll * nll;
            ++r.n_scored;
            if (extra) extra(j, logits, chunk);
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
    r.attn_stats = session.context().attn_stats();
    return r;
}

// ---- the KL base file ------------------------------------------------------------------
// Layout (little-endian): "llm8-kld" | u32 version (1) | u32 n_ctx | u32 n_vocab | u32 n_chunks
// | i32 tokens[n_chunks][n_ctx] (as scored: BOS in place) | for every chunk and scored position
// a record: f32 lo, f32 step, i32 top token, f32 logp(target), u16 q[n_vocab], where
// logp[i] ~= lo + step * q[i] (the range is capped at 64 nats below the top: lower values
// clamp to lo, probabilities under e^-64).
constexpr char kKlMagic[8] = {'l', 'l', 'm', '8', '-', 'k', 'l', 'd'};
constexpr uint32_t kKlVersion = 1;
constexpr size_t kKlHeader = 8 + 4 * 4;
constexpr double kKlRange = 64.0;

size_t kl_record_bytes(int n_vocab) {
    return 16 + 2 * size_t(n_vocab);
}
int scored_per_chunk(int n_ctx) {
    return n_ctx - 1 - n_ctx / 2;
}

struct FileCloser {
    void operator()(FILE* f) const {
        if (f) std::fclose(f);
    }
};
using File = std::unique_ptr<FILE, FileCloser>;

// log softmax of a row, in double.
void log_softmax(const float* logits, int n, std::vector<double>& out) {
    out.resize(size_t(n));
    double mx = -INFINITY;
    for (int i = 0; i < n; ++i) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
    const double lse = mx + std::log(sum);
    for (int i = 0; i < n; ++i) out[size_t(i)] = double(logits[i]) - lse;
}

int argmax_row(const float* x, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

struct KlBase {
    KlBaseInfo info;
    File f;
    std::string path;
};

KlBase open_kl_base(const std::string& path) {
    KlBase b;
    b.path = path;
    b.f.reset(std::fopen(path.c_str(), "rb"));
    if (!b.f) fail(ErrorKind::io, "KL divergence base " + path + ": cannot open it");
    auto bad = [&](const std::string& why) {
        fail(ErrorKind::format, "KL divergence base " + path + ": " + why);
    };
    char magic[8];
    uint32_t h[4];
    if (std::fread(magic, 1, 8, b.f.get()) != 8 || std::memcmp(magic, kKlMagic, 8) != 0)
        bad("not an llm8 KL divergence base (written by llm8-perplexity --kl-divergence-base)");
    if (std::fread(h, 4, 4, b.f.get()) != 4) bad("truncated header");
    if (h[0] != kKlVersion) bad("layout version " + std::to_string(h[0]) + ", expected 1");
    if (h[1] < 4 || h[1] > (1u << 24)) bad("bad context size " + std::to_string(h[1]));
    if (h[2] < 1 || h[2] > (1u << 24)) bad("bad vocabulary size " + std::to_string(h[2]));
    if (h[3] < 1 || h[3] > (1u << 24)) bad("bad chunk count " + std::to_string(h[3]));
    b.info.n_ctx = int(h[1]);
    b.info.n_vocab = int(h[2]);
    b.info.n_chunks = int(h[3]);
    // Size check without overflow: every factor is below 2^26.
    if (std::fseek(b.f.get(), 0, SEEK_END) != 0) bad("cannot seek");
    const long end = std::ftell(b.f.get());
    if (end < 0) bad("cannot tell its size");
    const unsigned long long per_chunk =
        4ull * unsigned(b.info.n_ctx) +
        (unsigned long long)scored_per_chunk(b.info.n_ctx) * kl_record_bytes(b.info.n_vocab);
    const unsigned long long body = (unsigned long long)(end)-kKlHeader;
    if ((unsigned long long)end < kKlHeader || body / per_chunk < (unsigned long long)h[3] ||
        body != per_chunk * h[3])
        bad("size " + std::to_string(end) + " bytes does not match its header (" +
            std::to_string(h[3]) + " chunks of " + std::to_string(h[1]) + " tokens, vocabulary " +
            std::to_string(h[2]) + "): truncated or not written to the end");
    if (std::fseek(b.f.get(), long(kKlHeader), SEEK_SET) != 0) bad("cannot seek");
    return b;
}

}  // namespace

PerplexityResult perplexity(const std::shared_ptr<const Model>& model,
                            const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                            int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk) {
    const int chunks = count_chunks(tokens.size(), n_ctx, n_chunks);
    return score_chunks(model, tokens.data(), n_ctx, chunks, n_batch, n_threads, true, nullptr,
                        on_chunk);
}

PerplexityResult save_kl_base(const std::shared_ptr<const Model>& model,
                              const std::vector<int32_t>& tokens, int n_ctx, int n_chunks,
                              int n_batch, int n_threads, const std::string& path,
                              const std::function<void(int, double)>& on_chunk) {
    const int chunks = count_chunks(tokens.size(), n_ctx, n_chunks);
    const int V = model->n_vocab();
    // Written to PATH.tmp and renamed at the end: an interrupted run leaves no half file.
    const std::string tmp = path + ".tmp";
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) fail(ErrorKind::io, "KL divergence base " + path + ": cannot write " + tmp);
    bool ok = true;
    auto put = [&](const void* p, size_t bytes) {
        ok = ok && std::fwrite(p, 1, bytes, f.get()) == bytes;
    };
    PerplexityResult r;
    try {
        const uint32_t h[4] = {kKlVersion, uint32_t(n_ctx), uint32_t(V), uint32_t(chunks)};
        put(kKlMagic, 8);
        put(h, sizeof(h));
        // The tokens as scored (BOS in place), so the comparison needs no text or tokenizer.
        const int32_t bos = model->bos();
        const bool add_bos = bos >= 0 && model->vocab_adds_bos();
        for (int c = 0; c < chunks; ++c) {
            std::vector<int32_t> chunk(tokens.begin() + long(c) * n_ctx,
                                       tokens.begin() + long(c + 1) * n_ctx);
            if (add_bos) chunk[0] = bos;
            put(chunk.data(), chunk.size() * sizeof(int32_t));
        }
        std::vector<double> lp;
        std::vector<unsigned char> rec(kl_record_bytes(V));
        r = score_chunks(
            model, tokens.data(), n_ctx, chunks, n_batch, n_threads, true,
            [&](int j, const float* logits, const std::vector<int32_t>& chunk) {
                log_softmax(logits, V, lp);
                const int32_t target = chunk[size_t(j) + 1];
                const double hi = *std::max_element(lp.begin(), lp.end());
                const double lo = std::max(*std::min_element(lp.begin(), lp.end()), hi - kKlRange);
                const float lo_f = float(lo);
                const float step = float((hi - double(lo_f)) / 65535.0);
                const int32_t top = argmax_row(logits, V);
                const float lt = float(lp[size_t(target)]);
                std::memcpy(rec.data(), &lo_f, 4);
                std::memcpy(rec.data() + 4, &step, 4);
                std::memcpy(rec.data() + 8, &top, 4);
                std::memcpy(rec.data() + 12, &lt, 4);
                uint16_t* q = reinterpret_cast<uint16_t*>(rec.data() + 16);
                for (int i = 0; i < V; ++i) {
                    const double v = step > 0 ? (lp[size_t(i)] - double(lo_f)) / double(step) : 0;
                    q[i] = uint16_t(std::lround(std::min(65535.0, std::max(0.0, v))));
                }
                put(rec.data(), rec.size());
            },
            on_chunk);
        ok = ok && std::fflush(f.get()) == 0;
        f.reset();
        if (!ok) fail(ErrorKind::io, "KL divergence base " + path + ": writing " + tmp + " failed");
        if (std::rename(tmp.c_str(), path.c_str()) != 0)
            fail(ErrorKind::io, "KL divergence base: cannot rename " + tmp + " to " + path);
    } catch (...) {
        f.reset();
        std::remove(tmp.c_str());
        throw;
    }
    return r;
}

KlBaseInfo read_kl_base_info(const std::string& path) {
    return open_kl_base(path).info;
}

double KlStats::quantile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0.0;
    const double pos = q * double(sorted.size() - 1);
    return sorted[size_t(std::llround(std::min(std::max(pos, 0.0), double(sorted.size() - 1))))];
}

KlStats kl_divergence(const std::shared_ptr<const Model>& model, const std::string& path,
                      int n_chunks, int n_batch, int n_threads,
                      const std::function<void(int, double)>& on_chunk) {
    KlBase b = open_kl_base(path);
    const int V = model->n_vocab();
    if (b.info.n_vocab != V)
        fail(ErrorKind::invalid_arg, "KL divergence base " + path + " has a vocabulary of " +
                                         std::to_string(b.info.n_vocab) + " tokens, the model " +
                                         std::to_string(V) +
                                         ": it was made with another model family");
    const int n_ctx = b.info.n_ctx;
    const int chunks = n_chunks > 0 ? std::min(n_chunks, b.info.n_chunks) : b.info.n_chunks;
    std::vector<int32_t> tokens(size_t(b.info.n_chunks) * size_t(n_ctx));
    if (std::fread(tokens.data(), 4, tokens.size(), b.f.get()) != tokens.size())
        fail(ErrorKind::format, "KL divergence base " + path + ": truncated token list");
    for (int32_t t : tokens)
        if (t < 0 || t >= V)
            fail(ErrorKind::format, "KL divergence base " + path + ": token id " +
                                        std::to_string(t) + " out of range");
    KlStats st;
    std::vector<double> nll_q, nll_b;
    std::vector<double> lq, lb(static_cast<size_t>(V));
    std::vector<unsigned char> rec(kl_record_bytes(V));
    int same = 0;
    double kld_sum = 0;
    st.ppl = score_chunks(
        model, tokens.data(), n_ctx, chunks, n_batch, n_threads, false,
        [&](int j, const float* logits, const std::vector<int32_t>& chunk) {
            if (std::fread(rec.data(), 1, rec.size(), b.f.get()) != rec.size())
                fail(ErrorKind::format, "KL divergence base " + path + ": truncated");
            float lo, step, lt;
            int32_t top;
            std::memcpy(&lo, rec.data(), 4);
            std::memcpy(&step, rec.data() + 4, 4);
            std::memcpy(&top, rec.data() + 8, 4);
            std::memcpy(&lt, rec.data() + 12, 4);
            if (!std::isfinite(lo) || !std::isfinite(step) || step < 0 || top < 0 || top >= V ||
                !(lt <= 0.0f))
                fail(ErrorKind::format, "KL divergence base " + path +
                                            ": corrupt record (chunk position " +
                                            std::to_string(j) + ")");
            const uint16_t* q = reinterpret_cast<const uint16_t*>(rec.data() + 16);
            double mx = -INFINITY;
            for (int i = 0; i < V; ++i) {
                lb[size_t(i)] = double(lo) + double(step) * q[i];
                mx = std::max(mx, lb[size_t(i)]);
            }
            double z = 0;
            for (int i = 0; i < V; ++i) z += std::exp(lb[size_t(i)] - mx);
            const double lse = mx + std::log(z);
            log_softmax(logits, V, lq);
            double kl = 0;
            for (int i = 0; i < V; ++i) {
                const double l = lb[size_t(i)] - lse;
                kl += std::exp(l) * (l - lq[size_t(i)]);
            }
            const int32_t target = chunk[size_t(j) + 1];
            const double nq = -lq[size_t(target)], nb = -double(lt);
            nll_q.push_back(nq);
            nll_b.push_back(nb);
            st.kld_sorted.push_back(kl);
            st.dp_sorted.push_back(std::exp(-nq) - std::exp(-nb));
            same += argmax_row(logits, V) == top;
            kld_sum += kl;
        },
        [&](int c, double) {
            if (on_chunk) on_chunk(c, kld_sum / double(st.kld_sorted.size()));
        });
    const int64_t n = st.ppl.n_scored;
    st.n = n;
    // Mean and standard error of a list.
    auto mean_err = [n](const std::vector<double>& v, double* err) {
        double s = 0, s2 = 0;
        for (double x : v) {
            s += x;
            s2 += x * x;
        }
        const double m = s / double(n), var = std::max(0.0, s2 / double(n) - m * m);
        *err = n > 1 ? std::sqrt(var / double(n - 1)) : 0.0;
        return m;
    };
    double e = 0;
    const double nb_mean = mean_err(nll_b, &e);
    st.ppl_base = std::exp(nb_mean);
    st.ppl_base_err = st.ppl_base * e;
    std::vector<double> diff(nll_q.size());
    for (size_t i = 0; i < diff.size(); ++i) diff[i] = nll_q[i] - nll_b[i];
    st.ln_ratio = mean_err(diff, &st.ln_ratio_err);
    double sq = 0, sb = 0, cov = 0;
    const double nq_mean = st.ppl.nll;
    for (size_t i = 0; i < nll_q.size(); ++i) {
        cov += (nll_q[i] - nq_mean) * (nll_b[i] - nb_mean);
        sq += (nll_q[i] - nq_mean) * (nll_q[i] - nq_mean);
        sb += (nll_b[i] - nb_mean) * (nll_b[i] - nb_mean);
    }
    st.cor = sq > 0 && sb > 0 ? cov / std::sqrt(sq * sb) : 1.0;
    st.kld = mean_err(st.kld_sorted, &st.kld_err);
    st.dp = mean_err(st.dp_sorted, &st.dp_err);
    std::vector<double> dp2(st.dp_sorted.size());
    for (size_t i = 0; i < dp2.size(); ++i) dp2[i] = st.dp_sorted[i] * st.dp_sorted[i];
    double dp2_err = 0;
    st.dp_rms = std::sqrt(mean_err(dp2, &dp2_err));
    st.dp_rms_err = st.dp_rms > 0 ? dp2_err / (2 * st.dp_rms) : 0.0;
    st.same_top = double(same) / double(n);
    st.same_top_err = n > 1 ? std::sqrt(st.same_top * (1 - st.same_top) / double(n - 1)) : 0.0;
    std::sort(st.kld_sorted.begin(), st.kld_sorted.end());
    std::sort(st.dp_sorted.begin(), st.dp_sorted.end());
    return st;
}

}  // namespace llm8
