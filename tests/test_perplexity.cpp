// Perplexity and logits against independent references:
//  - stories260K (embedded) on Tiny Shakespeare: PPL and per-token NLL pinned against the
//    double-precision forward in tests/reference_llama.h, computed here in the test;
//  - the two trained models of ../shared/data/models: PPL over WikiText-2 (llama-perplexity's
//    protocol, 40 chunks of 512) within 0.2% of the PyTorch reference in their .ref.json, the
//    reference top-8 logits at 128 positions, and the reference greedy continuation.
#include <nlohmann/json.hpp>

#include <cmath>

#include "gguf/gguf.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
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
