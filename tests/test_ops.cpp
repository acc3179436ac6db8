// CPU operators: the fast versions against the plain references on awkward shapes (token
// counts 1, 2, 3, 75; KV lengths up to 113; GQA 1, 4, 8), every weight type, fresh random
// inputs, outputs poisoned with NaN before each run so an unwritten element fails.
#include <cmath>
#include <random>

#include "attn_test_util.h"
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
