// CPU operators: the fast versions against the plain references on awkward shapes (token
// counts 1, 2, 3, 75; KV lengths up to 113; GQA 1, 4, 8), every weight type, fresh random
// inputs, outputs poisoned with NaN before each run so an unwritten element fails.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "attn_test_util.h"
#include "cpu/moe.h"
#include "cpu/ops.h"
#include "gguf/quants.h"
#include "test_util.h"

using llm8::GgmlType;

using llm8_test::nmse;
using llm8_test::randn;

namespace {}  // namespace

TEST(CpuOps, MatmulEveryTypeAndShape) {
    std::mt19937 rng(std::random_device{}());
    const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q2_K,
                              GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};
    for (GgmlType t : types) {
        // three blocks of 256 (K-quants, iq4_xs) or 32
        const int64_t K = llm8::type_traits(t)->block_size == 256 ? 768 : 96;
        for (int64_t M : {1, 17, 133}) {
            const auto wf = randn(size_t(K * M), rng);
            llm8::WeightView w;
            w.type = t;
            w.ne0 = K;
            w.ne1 = M;
            w.row_bytes = llm8::row_size(t, K);
            std::vector<uint8_t> wq(w.row_bytes * size_t(M));
            for (int64_t r = 0; r < M; ++r)
                llm8::quantize_row(t, wf.data() + r * K, wq.data() + size_t(r) * w.row_bytes, K);
            w.data = wq.data();
            for (int64_t n : {1, 2, 3, 75}) {
                const auto x = randn(size_t(n * K), rng);
                std::vector<float> want(static_cast<size_t>(n * M)), got(size_t(n * M), NAN);
                llm8::cpu::matmul_ref(w, x.data(), n, want.data());
                llm8::cpu::matmul(w, x.data(), n, got.data());
                // Per output, relative to sum |w x| (a single cancelling dot product can have a
                // large relative error; float accumulation of K terms stays within ~K * 2^-24).
                std::vector<float> row(static_cast<size_t>(K));
                double worst = 0;
                for (int64_t r = 0; r < M; ++r) {
                    llm8::dequantize_row(t, w.row(r), row.data(), K);
                    for (int64_t j = 0; j < n; ++j) {
                        double absdot = 0;
                        for (int64_t i = 0; i < K; ++i)
                            absdot += std::fabs(double(row[size_t(i)]) * x[size_t(j * K + i)]);
                        const double g = got[size_t(j * M + r)];
                        worst =
                            std::isfinite(g)
                                ? std::max(worst, std::fabs(g - want[size_t(j * M + r)]) / absdot)
                                : INFINITY;
                    }
                }
                EXPECT_LT(worst, 4e-5) << llm8::type_name(t) << " M=" << M << " n=" << n;
            }
        }
    }
}

TEST(CpuOps, AttentionShapesAndGqa) {
    // One sequence per shape, its keys scattered over the pool in random block order.
    std::mt19937 rng(std::random_device{}());
    struct Shape {
        int n_head, n_kv, hd;
        int n_tok, pos0, block;
    };
    const Shape shapes[] = {{4, 4, 64, 1, 0, 64},   {8, 2, 64, 3, 110, 16}, {8, 1, 128, 75, 0, 64},
                            {2, 2, 16, 1, 112, 1},  {4, 1, 32, 13, 38, 8},  {8, 8, 128, 2, 111, 64}};
    for (const Shape& s : shapes) {
        llm8_test::PagedCase c;
        c.n_head = s.n_head;
        c.n_kv = s.n_kv;
        c.hd = s.hd;
        c.block = s.block;
        c.q_len = {s.n_tok};
        c.kv_len = {s.pos0 + s.n_tok};
        c.build(rng, false);
        std::vector<float> got(c.q.size(), NAN);
        llm8::cpu::attention(c.params(c.q.data(), got.data(), c.kpool.data(), c.vpool.data(),
                                      c.q_start.data(), c.kvl.data(), c.tables.data(),
                                      llm8::KvType::f32));
        EXPECT_LT(nmse(got, c.want), 1e-10) << s.n_head << "/" << s.n_kv << " hd " << s.hd
                                            << " n " << s.n_tok << " pos0 " << s.pos0;
    }
}

TEST(CpuOps, AttentionBatchOfSequencesOverThePagedCache) {
    // Sequences of different query and key counts (decode, chunked prefill, fresh prefill) in
    // one call: each must equal its solo reference.
    std::mt19937 rng(std::random_device{}());
    llm8_test::PagedCase c;
    c.n_head = 8;
    c.n_kv = 2;
    c.hd = 32;
    c.block = 16;
    c.q_len = {1, 7, 33, 1, 16, 2};
    c.kv_len = {1, 50, 33, 200, 17, 65};
    c.build(rng, false);
    std::vector<float> got(c.q.size(), NAN);
    llm8::cpu::attention(c.params(c.q.data(), got.data(), c.kpool.data(), c.vpool.data(),
                                  c.q_start.data(), c.kvl.data(), c.tables.data(),
                                  llm8::KvType::f32));
    EXPECT_LT(nmse(got, c.want), 1e-10);
}

TEST(CpuOps, AttentionIsCausal) {
    // Changing keys/values beyond a query's position must not change its output.
    std::mt19937 rng(5);
    llm8_test::PagedCase c;
    c.n_head = 2;
    c.n_kv = 2;
    c.hd = 8;
    c.block = 4;
    c.q_len = {5};
    c.kv_len = {5};
    c.build(rng, false);
    std::vector<float> a(c.q.size()), b(c.q.size());
    auto run = [&](std::vector<float>& out) {
        llm8::cpu::attention(c.params(c.q.data(), out.data(), c.kpool.data(), c.vpool.data(),
                                      c.q_start.data(), c.kvl.data(), c.tables.data(),
                                      llm8::KvType::f32));
    };
    run(a);
    const int kv_dim = 2 * 8;
    for (int j = 3; j < 5; ++j) {
        const int64_t row = int64_t(c.tables[size_t(j / 4)]) * 4 + j % 4;
        for (int i = 0; i < kv_dim; ++i) c.kpool[size_t(row * kv_dim + i)] = c.vpool[size_t(row * kv_dim + i)] = 100.0f;
    }
    run(b);
    for (size_t i = 0; i < size_t(3 * 2 * 8); ++i) EXPECT_EQ(a[i], b[i]);
}

TEST(CpuOps, RmsNormRopeSwiglu) {
    std::mt19937 rng(11);
    const auto x = randn(100, rng), w = randn(100, rng);
    std::vector<float> y(100);
    llm8::cpu::rms_norm(x.data(), w.data(), y.data(), 100, 1e-5f);
    double ss = 0;
    for (float e : x) ss += double(e) * e;
    for (int i = 0; i < 100; ++i)
        EXPECT_NEAR(y[size_t(i)], x[size_t(i)] / std::sqrt(ss / 100 + 1e-5) * w[size_t(i)], 1e-5);

    // RoPE preserves each rotated pair's norm and, at position 0, is the identity.
    for (auto layout : {llm8::RopeLayout::norm, llm8::RopeLayout::neox}) {
        auto v = randn(2 * 3 * 16, rng);
        const auto orig = v;
        const int32_t pos[2] = {0, 37};
        const float factors[4] = {1.0f, 2.0f, 4.0f, 8.0f};
        llm8::cpu::rope(v.data(), 2, 3, 16, 8, pos, layout, 10000.0f, 0.5f, factors);
        for (int i = 0; i < 48; ++i) EXPECT_FLOAT_EQ(v[size_t(i)], orig[size_t(i)]);
        for (int h = 0; h < 3; ++h) {
            const float* a = orig.data() + 48 + h * 16;
            const float* b = v.data() + 48 + h * 16;
            for (int i = 0; i < 4; ++i) {
                const int p0 = layout == llm8::RopeLayout::norm ? 2 * i : i;
                const int p1 = layout == llm8::RopeLayout::norm ? 2 * i + 1 : i + 4;
                EXPECT_NEAR(a[p0] * a[p0] + a[p1] * a[p1], b[p0] * b[p0] + b[p1] * b[p1], 1e-4);
                const double theta = 37 * 0.5 * std::pow(10000.0, -2.0 * i / 8) / factors[i];
                EXPECT_NEAR(b[p0], a[p0] * std::cos(theta) - a[p1] * std::sin(theta), 1e-4);
            }
            for (int i = 8; i < 16; ++i) EXPECT_EQ(a[i], b[i]);  // beyond n_rot: untouched
        }
    }

    std::vector<float> g = {-2.0f, 0.0f, 3.0f}, u = {1.0f, 5.0f, 2.0f};
    llm8::cpu::swiglu(g.data(), u.data(), 3);
    EXPECT_NEAR(g[0], -2.0 / (1 + std::exp(2.0)), 1e-6);
    EXPECT_EQ(g[1], 0.0f);
    EXPECT_NEAR(g[2], 3.0 / (1 + std::exp(-3.0)) * 2, 1e-5);

    std::vector<float> yb = {1, 2, 3, 4}, b = {10, 20};
    llm8::cpu::add_bias(yb.data(), b.data(), 2, 2);
    EXPECT_EQ(yb, (std::vector<float>{11, 22, 13, 24}));
}

TEST(CpuOps, ThreadSetting) {
    const int before = llm8::cpu::threads();
    EXPECT_GE(before, 1);
    llm8::cpu::set_threads(1);
    EXPECT_EQ(llm8::cpu::threads(), 1);
    llm8::cpu::set_threads(0);
    EXPECT_GE(llm8::cpu::threads(), 1);
}

namespace {
// The MoE router written out plainly in double precision, as llama.cpp's build_moe_ffn defines
// it (cpu/moe.h): probabilities, selection scores with the bias, the group limit (a group's
// score is the sum of its two best), the n_used best experts by a full sort (ties: lower id),
// their unbiased probabilities as weights, normalized and scaled.
struct RouteRef {
    std::vector<int> ids;
    std::vector<double> w;
    double gap;  // selection score of the last chosen minus the best one left out
};
RouteRef route_ref(const float* lg, const float* bias, int X, int K, llm8::ExpertGating gating,
                   bool norm, double scale, int n_groups, int n_groups_used) {
    std::vector<double> p(static_cast<size_t>(X)), sel(static_cast<size_t>(X));
    if (gating == llm8::ExpertGating::softmax) {
        double mx = -1e300, sum = 0;
        for (int e = 0; e < X; ++e) mx = std::max(mx, double(lg[e]));
        for (int e = 0; e < X; ++e) sum += std::exp(double(lg[e]) - mx);
        for (int e = 0; e < X; ++e) p[size_t(e)] = std::exp(double(lg[e]) - mx) / sum;
    } else {
        for (int e = 0; e < X; ++e) p[size_t(e)] = 1.0 / (1.0 + std::exp(-double(lg[e])));
    }
    for (int e = 0; e < X; ++e) sel[size_t(e)] = p[size_t(e)] + (bias ? bias[e] : 0.0);
    if (n_groups > 1) {
        const int per = X / n_groups;
        std::vector<std::pair<double, int>> gs;
        for (int g = 0; g < n_groups; ++g) {
            std::vector<double> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
            std::sort(v.rbegin(), v.rend());
            gs.push_back({-(v[0] + v[1]), g});
        }
        std::sort(gs.begin(), gs.end());
        for (size_t r = size_t(n_groups_used); r < gs.size(); ++r)
            for (int e = gs[r].second * per; e < (gs[r].second + 1) * per; ++e)
                sel[size_t(e)] = -1e300;
    }
    std::vector<std::pair<double, int>> order;
    for (int e = 0; e < X; ++e) order.push_back({-sel[size_t(e)], e});
    std::sort(order.begin(), order.end());
    RouteRef r;
    double sum = 0;
    for (int k = 0; k < K; ++k) {
        r.ids.push_back(order[size_t(k)].second);
        r.w.push_back(p[size_t(order[size_t(k)].second)]);
        sum += r.w.back();
    }
    for (double& w : r.w) w = w / (norm ? std::max(sum, 6.103515625e-5) : 1.0) * scale;
    r.gap = K < X ? order[size_t(K)].first - order[size_t(K - 1)].first : 1.0;
    return r;
}
}  // namespace

TEST(CpuOps, MoeRoutingChoosesTheExpertsOfAPlainReference) {
    // Every token of a batch, for the routings of Mixtral / Qwen3-MoE (softmax, normalized),
    // DeepSeek-V2 (softmax, scaled, not normalized), DeepSeek-V3 (sigmoid, selection bias, 8 groups
    // of which 4 stay, normalized, scaled 2.5) and a group limit under softmax; logits spread
    // widely, with ties (repeated values) among them. The same experts in the same order, and
    // the same weights to float rounding. Exact ties (equal logits) take the lower expert id on
    // both sides; tokens whose k-th and (k+1)-th selection scores differ by less than float
    // rounding (at most 2 allowed) are only counted.
    struct Cfg {
        const char* name;
        int X, K;
        llm8::ExpertGating gating;
        bool norm, bias;
        float scale;
        int groups, groups_used;
    };
    const Cfg cfgs[] = {
        {"mixtral", 8, 2, llm8::ExpertGating::softmax, true, false, 1.0f, 0, 0},
        {"qwen3moe", 128, 8, llm8::ExpertGating::softmax, true, false, 1.0f, 0, 0},
        {"deepseek2", 64, 6, llm8::ExpertGating::softmax, false, false, 16.0f, 0, 0},
        {"deepseek3", 256, 8, llm8::ExpertGating::sigmoid, true, true, 2.5f, 8, 4},
        {"softmax groups", 32, 4, llm8::ExpertGating::softmax, true, false, 1.0f, 4, 2},
    };
    std::mt19937 rng(11);
    for (const Cfg& c : cfgs) {
        const int n = 97;
        std::vector<float> lg(size_t(n) * size_t(c.X)), bias(size_t(c.X));
        std::normal_distribution<float> nd(0.0f, 3.0f);
        for (float& x : lg) x = nd(rng);
        // Ties: some tokens repeat one logit across several experts.
        for (int t = 0; t < n; t += 7)
            for (int e = 1; e < c.X; e += 3) lg[size_t(t) * size_t(c.X) + size_t(e)] = lg[size_t(t) * size_t(c.X)];
        for (float& b : bias) b = nd(rng) * 0.05f;
        std::vector<int32_t> ids(size_t(n) * size_t(c.K));
        std::vector<float> w(ids.size());
        llm8::cpu::MoeRouteParams rp;
        rp.logits = lg.data();
        rp.bias = c.bias ? bias.data() : nullptr;
        rp.n_tokens = n;
        rp.n_expert = c.X;
        rp.n_used = c.K;
        rp.gating = c.gating;
        rp.norm = c.norm;
        rp.scale = c.scale;
        rp.n_groups = c.groups;
        rp.n_groups_used = c.groups_used;
        rp.ids = ids.data();
        rp.weights = w.data();
        llm8::cpu::moe_route(rp);
        int close = 0;
        for (int t = 0; t < n; ++t) {
            const RouteRef r = route_ref(lg.data() + size_t(t) * size_t(c.X), rp.bias, c.X, c.K,
                                         c.gating, c.norm, c.scale, c.groups, c.groups_used);
            if (r.gap > 0.0 && r.gap < 1e-6) {  // exact ties: both take the lower id
                ++close;
                continue;
            }
            for (int k = 0; k < c.K; ++k) {
                const size_t i = size_t(t) * size_t(c.K) + size_t(k);
                ASSERT_EQ(ids[i], r.ids[size_t(k)]) << c.name << " token " << t << " rank " << k;
                EXPECT_NEAR(w[i], r.w[size_t(k)], 1e-6 * std::max(1.0, std::fabs(r.w[size_t(k)])))
                    << c.name << " token " << t << " rank " << k;
            }
        }
        EXPECT_LE(close, 2) << c.name;
    }
}
