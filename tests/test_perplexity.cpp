// Perplexity and logits against independent references:
//  - stories260K (embedded) on Tiny Shakespeare: PPL and per-token NLL pinned against the
//    double-precision forward in tests/reference_llama.h, computed here in the test;
//  - the two trained models of ../shared/data/models: PPL over WikiText-2 (llama-perplexity's
//    protocol, 40 chunks of 512) within 0.2% of the PyTorch reference in their .ref.json, the
//    reference top-8 logits at 128 positions, and the reference greedy continuation.
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "gguf/gguf.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "model/convert.h"
#include "reference_llama.h"
#include "runtime/embedded_model.h"
#include "runtime/perplexity.h"
#include "test_util.h"

namespace {

std::shared_ptr<const llm8::Model> stories() {
    return llm8::Model::load({"", 0});
}

}  // namespace

TEST(Perplexity, Stories260KMatchesDoublePrecisionReference) {
    const std::string text_path = llm8_test::shared_data() + "/text/tinyshakespeare.txt";
    std::string text;
    if (llm8_test::file_exists(text_path)) {
        text = llm8_test::read_file(text_path).substr(0, 40000);
    } else {  // the check does not need that exact text
        for (int i = 0; i < 400; ++i)
            text += "Once upon a time, there was a little girl named Lily. ";
    }
    auto model = stories();
    const auto tokens = model->tokenize(text, true);
    ASSERT_GE(tokens.size(), 4u * 128);
    const int n_ctx = 128, chunks = 3;
    const auto r = llm8::perplexity(model, tokens, n_ctx, chunks, 64, 2);
    ASSERT_TRUE(std::isfinite(r.ppl));
    EXPECT_EQ(r.n_chunks, chunks);
    EXPECT_EQ(r.n_scored, chunks * (n_ctx - n_ctx / 2 - 1));

    auto file = llm8::GgufFile::from_memory(llm8::embedded_model_data(),
                                            llm8::embedded_model_size(), "emb");
    llm8_test::RefLlama ref(*file);
    double sum = 0;
    int64_t n = 0;
    for (int c = 0; c < chunks; ++c) {
        std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        chunk[0] = model->bos();
        const auto logits = ref.forward(chunk);
        for (int j = n_ctx / 2; j < n_ctx - 1; ++j, ++n)
            sum -= llm8_test::RefLlama::logprob(logits[size_t(j)], chunk[size_t(j) + 1]);
    }
    const double want = std::exp(sum / double(n));
    EXPECT_NEAR(r.ppl, want, want * 1e-5) << "llm8 " << r.ppl << " vs double " << want;
    EXPECT_GT(r.ppl_err, 0.0);
    ASSERT_EQ(r.chunk_ppl.size(), size_t(chunks));
    EXPECT_DOUBLE_EQ(r.chunk_ppl.back(), r.ppl);

    // Per-token NLL of a short sequence through the public API.
    std::vector<int32_t> seq(tokens.begin(), tokens.begin() + 24);
    llm8::Session s(model, {64, 512, 2});
    s.decode(seq, true);
    const auto logits = ref.forward(seq);
    for (size_t j = 0; j + 1 < seq.size(); ++j) {
        const double got = -llm8::token_logprob(s.logits(int(j)), model->n_vocab(), seq[j + 1]);
        const double exp = -llm8_test::RefLlama::logprob(logits[j], seq[j + 1]);
        EXPECT_NEAR(got, exp, 1e-4) << "token " << j;
    }
}

TEST(Perplexity, RejectsTooShortInput) {
    auto model = stories();
    std::vector<int32_t> toks(100, 5);
    EXPECT_THROW(llm8::perplexity(model, toks, 128, -1, 64, 1), llm8::Error);
    EXPECT_THROW(llm8::perplexity(model, toks, 2, -1, 64, 1), llm8::Error);
}

class TrainedModel : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainedModel, WikiTextPerplexityLogitsAndGreedyMatchReference) {
    const std::string dir = llm8_test::shared_data() + "/models/";
    const std::string name = GetParam();
    const std::string model_path = dir + name + "-q8_0.gguf";
    const std::string ref_path = dir + name + ".ref.json";
    const std::string text_path = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model_path);
    LLM8_REQUIRE_FILE(ref_path);
    LLM8_REQUIRE_FILE(text_path);
    const auto ref = nlohmann::json::parse(llm8_test::read_file(ref_path));
    auto model = llm8::Model::load({model_path, 0});

    // Logits at 128 positions: top-8 ids and values, and the L2 norm of each row.
    const auto& lr = ref["logits_ref"];
    const std::vector<int32_t> toks = lr["tokens"].get<std::vector<int32_t>>();
    llm8::Session s(model, {1024, 512, 0});
    s.decode(toks, true);
    int id_mismatch = 0;
    double max_err = 0;
    for (size_t t = 0; t < toks.size(); ++t) {
        const float* l = s.logits(int(t));
        const auto ids = lr["top8_ids"][t].get<std::vector<int>>();
        const auto vals = lr["top8_logits"][t].get<std::vector<double>>();
        for (size_t k = 0; k < ids.size(); ++k)
            max_err = std::max(max_err, std::fabs(l[ids[k]] - vals[k]));
        id_mismatch += llm8::argmax(l, model->n_vocab()) != ids[0];
        double norm = 0;
        for (int i = 0; i < model->n_vocab(); ++i) norm += double(l[i]) * l[i];
        EXPECT_NEAR(std::sqrt(norm), lr["logit_norms"][t].get<double>(),
                    1e-3 * lr["logit_norms"][t].get<double>());
    }
    EXPECT_LT(max_err, 2e-3) << "largest deviation of a reference top-8 logit";
    EXPECT_EQ(id_mismatch, 0);

    // Greedy continuation.
    const auto prompt = ref["greedy"]["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = ref["greedy"]["ids"].get<std::vector<int32_t>>();
    llm8::Session g(model, {1024, 512, 0});
    g.decode(prompt);
    std::vector<int32_t> got;
    for (size_t i = 0; i < want.size(); ++i) {
        const int32_t t = llm8::argmax(g.logits(), model->n_vocab());
        got.push_back(t);
        g.decode(&t, 1);
    }
    EXPECT_EQ(got, want);

    // WikiText-2 test perplexity, 40 chunks of 512.
    const auto tokens = model->tokenize(llm8_test::read_file(text_path), true);
    const std::vector<int32_t> head(lr["tokens"].begin(), lr["tokens"].end());
    ASSERT_TRUE(std::equal(head.begin(), head.end(), tokens.begin())) << "tokenization differs";
    const auto r = llm8::perplexity(model, tokens, 512, 40, 512, 0);
    const double want_ppl = ref["wikitext_test_ppl_c512_first40chunks"][0].get<double>();
    const double want_err = ref["wikitext_test_ppl_c512_first40chunks"][1].get<double>();
    std::printf("%s: PPL %.4f +/- %.5f (reference %.4f +/- %.5f)\n", name.c_str(), r.ppl, r.ppl_err,
                want_ppl, want_err);
    EXPECT_NEAR(r.ppl, want_ppl, 0.002 * want_ppl);
    EXPECT_NEAR(r.ppl_err, want_err, 0.01 * want_err);
}

INSTANTIATE_TEST_SUITE_P(Shared, TrainedModel,
                         ::testing::Values("tiny-llama-hd64", "tiny-llama-hd128"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                             std::string s = i.param;
                             for (char& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

// ---- KL divergence (llama-perplexity's --kl-divergence-base / --kl-divergence) ----------------

namespace {

std::string temp_file(const std::string& name) {
    return ::testing::TempDir() + "llm8_kld_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<int32_t> kl_tokens(const llm8::Model& m) {
    std::string text;
    for (int i = 0; i < 60; ++i)
        text += "Once upon a time, there was a little girl named Lily. She saw a big red ball " +
                std::to_string(i) + ". ";
    return m.tokenize(text, true);
}

// KL(P || Q) over a vocabulary in double, from two logit rows.
double kl_of_rows(const float* p, const float* q, int n) {
    std::vector<double> lp(static_cast<size_t>(n)), lq(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        lp[size_t(i)] = llm8::token_logprob(p, n, i);
        lq[size_t(i)] = llm8::token_logprob(q, n, i);
    }
    double kl = 0;
    for (int i = 0; i < n; ++i) kl += std::exp(lp[size_t(i)]) * (lp[size_t(i)] - lq[size_t(i)]);
    return kl;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
}

// A hand-made base file: n_ctx 4 (one scored position per chunk), one chunk.
std::vector<unsigned char> tiny_base(uint32_t vocab, int32_t token, float lo) {
    std::vector<unsigned char> b = {'l', 'l', 'm', '8', '-', 'k', 'l', 'd'};
    auto put = [&](const void* p, size_t n) {
        const auto* c = static_cast<const unsigned char*>(p);
        b.insert(b.end(), c, c + n);
    };
    const uint32_t h[4] = {1, 4, vocab, 1};
    put(h, sizeof(h));
    const int32_t toks[4] = {1, token, 2, 3};
    put(toks, sizeof(toks));
    const float step = 0.001f, lt = -1.0f;
    const int32_t top = 0;
    put(&lo, 4);
    put(&step, 4);
    put(&top, 4);
    put(&lt, 4);
    b.resize(b.size() + 2 * size_t(vocab), 0);
    return b;
}

}  // namespace

TEST(KlDivergence, MatchesADirectComputationAcrossModels) {
    auto base = stories();
    // The model under test: the same weights quantized to Q4_0.
    auto src = llm8::GgufFile::from_memory(llm8::embedded_model_data(), llm8::embedded_model_size(),
                                           "emb");
    const llm8::GgmlType q4 = llm8::GgmlType::Q4_0;
    const std::string q_path = temp_file("q4.gguf"), kl_path = temp_file("base.kld");
    llm8::convert_gguf(*src, &q4).write(q_path);
    auto q = llm8::Model::load({q_path, 0});
    const auto tokens = kl_tokens(*base);
    const int n_ctx = 64, chunks = 3, V = base->n_vocab();
    ASSERT_GE(tokens.size(), size_t(n_ctx * chunks));

    const auto rb = llm8::save_kl_base(base, tokens, n_ctx, chunks, 64, 1, kl_path);
    const auto plain = llm8::perplexity(base, tokens, n_ctx, chunks, 64, 1);
    EXPECT_DOUBLE_EQ(rb.ppl, plain.ppl);  // writing the base changes nothing
    const auto info = llm8::read_kl_base_info(kl_path);
    EXPECT_EQ(info.n_ctx, n_ctx);
    EXPECT_EQ(info.n_vocab, V);
    EXPECT_EQ(info.n_chunks, chunks);

    const auto st = llm8::kl_divergence(q, kl_path, 0, 64, 1);
    ASSERT_EQ(st.n, int64_t(chunks) * (n_ctx - 1 - n_ctx / 2));

    // The same statistics computed directly from both models' logits, in double.
    double kl_sum = 0, nll_q = 0, nll_b = 0;
    int same = 0;
    for (int c = 0; c < chunks; ++c) {
        std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        chunk[0] = base->bos();
        llm8::Session sb(base, {n_ctx, 64, 1}), sq(q, {n_ctx, 64, 1});
        sb.decode(chunk, true);
        sq.decode(chunk, true);
        for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {
            kl_sum += kl_of_rows(sb.logits(j), sq.logits(j), V);
            nll_q -= llm8::token_logprob(sq.logits(j), V, chunk[size_t(j) + 1]);
            nll_b -= llm8::token_logprob(sb.logits(j), V, chunk[size_t(j) + 1]);
            same += llm8::argmax(sb.logits(j), V) == llm8::argmax(sq.logits(j), V);
        }
    }
    const double n = double(st.n), want_kl = kl_sum / n;
    std::printf("stories260K Q4_0 against F32: mean KLD %.6f (direct %.6f), same top %.4f\n",
                st.kld, want_kl, st.same_top);
    EXPECT_GT(want_kl, 1e-4);  // Q4_0 does change the distribution
    // The base's log-probabilities are stored in 16 bits (steps under 1e-3 nats).
    EXPECT_NEAR(st.kld, want_kl, 2e-3 * want_kl + 1e-5);
    EXPECT_NEAR(st.ppl.ppl, std::exp(nll_q / n), 1e-9 * std::exp(nll_q / n));
    EXPECT_NEAR(st.ppl_base, std::exp(nll_b / n), 1e-5 * std::exp(nll_b / n));
    EXPECT_DOUBLE_EQ(st.same_top, double(same) / n);
    EXPECT_NEAR(st.ln_ratio, (nll_q - nll_b) / n, 1e-5);
    EXPECT_LE(st.kld_sorted.front(), st.kld);
    EXPECT_GE(st.kld_sorted.back(), st.kld);
    EXPECT_DOUBLE_EQ(llm8::KlStats::quantile(st.kld_sorted, 1.0), st.kld_sorted.back());

    // Against itself: nothing but the 16-bit storage.
    const auto self = llm8::kl_divergence(base, kl_path, 2, 64, 1);
    EXPECT_EQ(self.n, int64_t(2) * (n_ctx - 1 - n_ctx / 2));
    EXPECT_LT(self.kld_sorted.back(), 1e-6);
    EXPECT_DOUBLE_EQ(self.same_top, 1.0);
    EXPECT_LT(self.dp_rms, 1e-6);
    std::remove(q_path.c_str());
    std::remove(kl_path.c_str());
}

TEST(KlDivergence, BadBaseFilesAreClearErrors) {
    auto m = stories();
    auto expect_error = [&](const std::string& path, const std::string& what) {
        try {
            llm8::kl_divergence(m, path, 0, 64, 1);
            ADD_FAILURE() << "no error for " << what;
        } catch (const llm8::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    expect_error(temp_file("missing.kld"), "cannot open");
    const std::string p = temp_file("bad.kld");
    write_bytes(p, {'G', 'G', 'U', 'F', 0, 0, 0, 0, 1, 0, 0, 0});
    expect_error(p, "not an llm8 KL divergence base");
    auto ok = tiny_base(uint32_t(m->n_vocab()), 5, -10.0f);
    auto cut = ok;
    cut.pop_back();
    write_bytes(p, cut);
    expect_error(p, "truncated or not written to the end");
    write_bytes(p, tiny_base(7, 5, -10.0f));
    expect_error(p, "vocabulary of 7 tokens");
    write_bytes(p, tiny_base(uint32_t(m->n_vocab()), 99999, -10.0f));
    expect_error(p, "token id 99999 out of range");
    write_bytes(p, tiny_base(uint32_t(m->n_vocab()), 5, std::nanf("")));
    expect_error(p, "corrupt record");
    auto huge = ok;
    const uint32_t big = 1u << 30;
    std::memcpy(huge.data() + 16, &big, 4);  // the vocabulary field
    write_bytes(p, huge);
    expect_error(p, "bad vocabulary size");
    // The well-formed tiny file runs (one position).
    write_bytes(p, ok);
    const auto st = llm8::kl_divergence(m, p, 0, 64, 1);
    EXPECT_EQ(st.n, 1);
    std::remove(p.c_str());
}

TEST(KlDivergence, AFailedBaseRunLeavesNoFile) {
    auto m = stories();
    const std::string p = temp_file("never.kld");
    std::vector<int32_t> few(10, 5);
    EXPECT_THROW(llm8::save_kl_base(m, few, 64, 1, 64, 1, p), llm8::Error);
    EXPECT_FALSE(llm8_test::file_exists(p));
    EXPECT_FALSE(llm8_test::file_exists(p + ".tmp"));
}
