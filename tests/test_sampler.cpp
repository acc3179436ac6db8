// The CPU sampler chain, tested by counting: observed frequencies over many draws match the
// chain's distribution, filtered tokens never appear, greedy is exact, seeds reproduce.
#include <cmath>
#include <random>
#include <set>

#include "llm8/engine.h"
#include "llm8/error.h"
#include "llm8/sampling.h"
#include "sampling/philox.h"
#include "test_util.h"

using llm8::Sampler;
using llm8::SamplerParams;

namespace {

std::vector<float> random_logits(int n, uint32_t seed, float scale = 2.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> l(static_cast<size_t>(n));
    for (float& x : l) x = nd(rng);
    return l;
}

// Pearson chi-square of counts against probabilities (bins with expected >= 5).
double chi2_pvalue_ok(const std::vector<int>& counts, const std::vector<double>& p, int n,
                      double* stat) {
    double chi = 0;
    int dof = -1;
    for (size_t i = 0; i < p.size(); ++i) {
        const double e = p[i] * n;
        if (e < 5) continue;
        chi += (counts[i] - e) * (counts[i] - e) / e;
        ++dof;
    }
    *stat = chi;
    // Wilson-Hilferty: chi2(dof) quantile at 1 - 1e-4 ~ dof * (1 - 2/(9dof) + 3.72
    // sqrt(2/(9dof)))^3
    const double k = std::max(dof, 1);
    const double z = 3.72;
    return std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3) * k;
}

void check_frequencies(const SamplerParams& sp, const std::vector<float>& logits, int draws) {
    const int V = int(logits.size());
    Sampler s(sp, V);
    const auto p = s.distribution(logits.data());
    double total = 0;
    for (double x : p) total += x;
    ASSERT_NEAR(total, 1.0, 1e-9);
    std::vector<int> counts(static_cast<size_t>(V), 0);
    for (int i = 0; i < draws; ++i) {
        const int32_t t = s.sample(logits.data());
        ASSERT_GE(t, 0);
        ASSERT_LT(t, V);
        ASSERT_GT(p[size_t(t)], 0.0) << "drew filtered token " << t;
        ++counts[size_t(t)];
    }
    double stat;
    const double limit = chi2_pvalue_ok(counts, p, draws, &stat);
    EXPECT_LT(stat, limit) << "chi-square " << stat << " over the 1e-4 critical value " << limit;
    // Cosine similarity of observed and expected frequencies.
    double dot = 0, a = 0, b = 0;
    for (int i = 0; i < V; ++i) {
        dot += counts[size_t(i)] * p[size_t(i)];
        a += double(counts[size_t(i)]) * counts[size_t(i)];
        b += p[size_t(i)] * p[size_t(i)];
    }
    EXPECT_GT(dot / std::sqrt(a * b), 0.999);
}

}  // namespace

TEST(Sampler, PlainSamplingMatchesSoftmax) {
    SamplerParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = 7;
    const auto l = random_logits(64, 1);
    Sampler s(sp, 64);
    const auto p = s.distribution(l.data());
    double mx = *std::max_element(l.begin(), l.end()), z = 0;
    for (float x : l) z += std::exp(x - mx);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(p[size_t(i)], std::exp(l[size_t(i)] - mx) / z, 1e-12);
    check_frequencies(sp, l, 200000);
}

TEST(Sampler, TopKTopPMinPFrequencies) {
    const auto l = random_logits(200, 2);
    for (int k : {0, 1, 5, 50, 500})
        for (float p : {1.0f, 0.9f, 0.5f})
            for (float mp : {0.0f, 0.1f}) {
                SamplerParams sp;
                sp.temperature = 0.8f;
                sp.top_k = k;
                sp.top_p = p;
                sp.min_p = mp;
                sp.seed = uint64_t(k * 100 + int(p * 10) + int(mp * 1000));
                SCOPED_TRACE("k=" + std::to_string(k) + " p=" + std::to_string(p) +
                             " min_p=" + std::to_string(mp));
                check_frequencies(sp, l, 60000);
            }
}

TEST(Sampler, FilterSetsAreExact) {
    const auto l = random_logits(1000, 3);
    std::vector<int> order(1000);
    for (int i = 0; i < 1000; ++i) order[size_t(i)] = i;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
    SamplerParams sp;
    sp.temperature = 1.0f;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.top_k = 10;
    auto p = Sampler(sp, 1000).distribution(l.data());
    std::set<int> kept;
    for (int i = 0; i < 1000; ++i)
        if (p[size_t(i)] > 0) kept.insert(i);
    EXPECT_EQ(kept, std::set<int>(order.begin(), order.begin() + 10));

    // top-p: the smallest prefix (by probability) whose mass reaches p.
    sp.top_k = 0;
    sp.top_p = 0.6f;
    p = Sampler(sp, 1000).distribution(l.data());
    double mx = l[size_t(order[0])], z = 0;
    for (float x : l) z += std::exp(x - mx);
    double cum = 0;
    size_t n_keep = 0;
    while (cum < 0.6) cum += std::exp(l[size_t(order[n_keep++])] - mx) / z;
    for (size_t j = 0; j < 1000; ++j) EXPECT_EQ(p[size_t(order[j])] > 0, j < n_keep) << j;

    // min-p: tokens with prob >= min_p * max prob.
    sp.top_p = 1.0f;
    sp.min_p = 0.2f;
    p = Sampler(sp, 1000).distribution(l.data());
    for (int i = 0; i < 1000; ++i)
        EXPECT_EQ(p[size_t(i)] > 0, std::exp(l[size_t(i)] - mx) >= 0.2 * 1.0 - 1e-12) << i;
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
    std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, NAN, 2.9f};
    SamplerParams sp;
    sp.temperature = 0.0f;
    Sampler s(sp, 6);
    EXPECT_EQ(s.sample(l.data()), 1);
    EXPECT_EQ(llm8::argmax(l.data(), 6), 1);
    l[0] = INFINITY;
    EXPECT_EQ(s.sample(l.data()), 0);
    std::vector<float> bad = {NAN, -INFINITY, NAN, NAN, -INFINITY, NAN};
    EXPECT_EQ(llm8::argmax(bad.data(), 6), -1);
    EXPECT_THROW(s.sample(bad.data()), llm8::Error);
    sp.temperature = 1.0f;
    Sampler s2(sp, 6);
    EXPECT_THROW(s2.sample(bad.data()), llm8::Error);
    // Greedy over random rows equals a direct argmax.
    sp.temperature = 0.0f;
    Sampler big(sp, 5000);
    for (uint32_t seed = 0; seed < 50; ++seed) {
        const auto r = random_logits(5000, seed);
        EXPECT_EQ(big.sample(r.data()), int32_t(std::max_element(r.begin(), r.end()) - r.begin()));
    }
}

TEST(Sampler, NanAndInfinityAreDefined) {
    SamplerParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    std::vector<float> l = {NAN, 1.0f, -INFINITY, 1.0f};
    Sampler s(sp, 4);
    auto p = s.distribution(l.data());
    EXPECT_EQ(p[0], 0.0);
    EXPECT_EQ(p[2], 0.0);
    EXPECT_NEAR(p[1], 0.5, 1e-12);
    // +inf tokens: uniform among them.
    l = {INFINITY, 1.0f, INFINITY, 5.0f};
    p = s.distribution(l.data());
    EXPECT_NEAR(p[0], 0.5, 1e-12);
    EXPECT_NEAR(p[2], 0.5, 1e-12);
    EXPECT_EQ(p[3], 0.0);
}

TEST(Sampler, SameSeedSameTokensAndCounterBased) {
    SamplerParams sp;
    sp.temperature = 1.5f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = 12345;
    const auto l = random_logits(32000, 9);
    Sampler a(sp, 32000), b(sp, 32000);
    std::vector<int32_t> ta, tb;
    for (int i = 0; i < 200; ++i) {
        ta.push_back(a.sample(l.data()));
        tb.push_back(b.sample(l.data()));
    }
    EXPECT_EQ(ta, tb);
    EXPECT_EQ(a.draws(), 200u);
    a.reset();
    EXPECT_EQ(a.sample(l.data()), ta[0]);
    sp.seed = 54321;
    Sampler c(sp, 32000);
    int same = 0;
    for (int i = 0; i < 200; ++i) same += c.sample(l.data()) == ta[size_t(i)];
    EXPECT_LT(same, 50);
}

TEST(Sampler, PhiloxKnownAnswer) {
    // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors):
    // counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
    // counter ffffffff x4, key ffffffff x2 -> 408f276d 41c83b0e a20bc7c6 6d5451fd
    auto r = llm8::philox4x32_10(0, 0, 0, 0, 0, 0);
    EXPECT_EQ(r.v[0], 0x6627e8d5u);
    EXPECT_EQ(r.v[1], 0xe169c58du);
    EXPECT_EQ(r.v[2], 0xbc57ac4cu);
    EXPECT_EQ(r.v[3], 0x9b00dbd8u);
    r = llm8::philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
    EXPECT_EQ(r.v[0], 0x408f276du);
    EXPECT_EQ(r.v[1], 0x41c83b0eu);
    EXPECT_EQ(r.v[2], 0xa20bc7c6u);
    EXPECT_EQ(r.v[3], 0x6d5451fdu);
    // Uniforms lie in [0, 1).
    for (uint64_t i = 0; i < 10000; ++i) {
        const float u = llm8::philox_draw(99, i);
        ASSERT_GE(u, 0.0f);
        ASSERT_LT(u, 1.0f);
    }
}

TEST(Sampler, PenaltiesAndBias) {
    SamplerParams sp;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 2.0f;
    std::vector<float> l = {2.0f, 1.5f, -1.0f, 0.5f};
    Sampler s(sp, 4);
    EXPECT_EQ(s.sample(l.data()), 0);
    s.accept(0);  // 2.0 -> 1.0 < 1.5
    EXPECT_EQ(s.sample(l.data()), 1);

    // Frequency and presence: -count*f - p.
    sp.repeat_penalty = 1.0f;
    sp.frequency_penalty = 0.3f;
    sp.presence_penalty = 0.1f;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    Sampler f(sp, 4);
    f.accept(1);
    f.accept(1);
    f.accept(3);
    auto p = f.distribution(l.data());
    const double z0 = std::exp(2.0), z1 = std::exp(1.5 - 0.6 - 0.1), z2 = std::exp(-1.0),
                 z3 = std::exp(0.5 - 0.3 - 0.1);
    EXPECT_NEAR(p[1], z1 / (z0 + z1 + z2 + z3), 1e-6);

    // Window: only the last n tokens count.
    sp.penalty_last_n = 1;
    Sampler w(sp, 4);
    w.accept(1);
    w.accept(3);
    p = w.distribution(l.data());
    EXPECT_NEAR(p[1] / p[0], std::exp(1.5 - 2.0), 1e-6);
    sp.penalty_last_n = 0;
    Sampler off(sp, 4);
    off.accept(1);
    p = off.distribution(l.data());
    EXPECT_NEAR(p[1] / p[0], std::exp(1.5 - 2.0), 1e-6);

    // Logit bias, including -inf as a ban.
    SamplerParams bp;
    bp.temperature = 0.0f;
    bp.logit_bias = {{0, -INFINITY}, {2, 10.0f}};
    Sampler b(bp, 4);
    EXPECT_EQ(b.sample(l.data()), 2);
    bp.logit_bias = {{0, -INFINITY}};
    bp.temperature = 1.0f;
    Sampler b2(bp, 4);
    for (int i = 0; i < 2000; ++i) ASSERT_NE(b2.sample(l.data()), 0);
}

TEST(Sampler, RejectsBadParameters) {
    SamplerParams sp;
    EXPECT_THROW(Sampler(sp, 0), llm8::Error);
    sp.temperature = NAN;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.top_p = -0.1f;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.min_p = 1.5f;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.repeat_penalty = 0.0f;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.penalty_last_n = -2;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.logit_bias[10] = 1.0f;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
    sp = SamplerParams();
    sp.frequency_penalty = NAN;
    EXPECT_THROW(Sampler(sp, 10), llm8::Error);
}

TEST(Sampler, DecodeSampleEqualsDecodeThenSampleOnCpu) {
    auto model = llm8::Model::load({"", 0});
    SamplerParams sp;
    sp.temperature = 0.9f;
    sp.top_k = 30;
    sp.repeat_penalty = 1.2f;
    sp.seed = 77;
    Sampler a(sp, model->n_vocab()), b(sp, model->n_vocab());
    llm8::Session sa(model, {128, 64, 1}), sb(model, {128, 64, 1});
    std::vector<int32_t> toks = model->tokenize("Once upon a time", true);
    for (int32_t t : toks) {
        a.accept(t);
        b.accept(t);
    }
    int32_t ta = sa.decode_sample(toks, a);
    sb.decode(toks);
    int32_t tb = b.sample(sb.logits());
    for (int i = 0; i < 40; ++i) {
        ASSERT_EQ(ta, tb) << "step " << i;
        a.accept(ta);
        b.accept(tb);
        ta = sa.decode_sample(&ta, 1, a);
        sb.decode(&tb, 1);
        tb = b.sample(sb.logits());
    }
    EXPECT_EQ(a.draws(), b.draws());
    EXPECT_EQ(a.penalty_window(), b.penalty_window());
    EXPECT_EQ(a.penalty_window().size(), toks.size() + 40);  // prompt + 40 drawn, window 64
}

TEST(Sampler, GpuRowParamsCarryTheChainParameters) {
    SamplerParams sp;
    sp.temperature = 0.7f;
    sp.top_k = 12;
    sp.top_p = 0.8f;
    sp.min_p = 0.02f;
    sp.repeat_penalty = 1.3f;
    sp.frequency_penalty = 0.4f;
    sp.presence_penalty = 0.5f;
    sp.seed = 0x123456789abcull;
    const llm8_sampling_row_params p = llm8::gpu_row_params(sp, 41);
    EXPECT_EQ(p.temperature, 0.7f);
    EXPECT_EQ(p.top_k, 12);
    EXPECT_EQ(p.top_p, 0.8f);
    EXPECT_EQ(p.min_p, 0.02f);
    EXPECT_EQ(p.repeat_penalty, 1.3f);
    EXPECT_EQ(p.frequency_penalty, 0.4f);
    EXPECT_EQ(p.presence_penalty, 0.5f);
    EXPECT_EQ(p.seed, 0x123456789abcull);
    EXPECT_EQ(p.draw_index, 41u);
    EXPECT_EQ(p.penalty_count, 0);
    EXPECT_EQ(p.bias_count, 0);
    EXPECT_EQ(p.flags, 0u);
}
