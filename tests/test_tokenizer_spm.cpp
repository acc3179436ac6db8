// SentencePiece vocabularies against llama.cpp's own test vectors and the perplexity text.
#include <chrono>

#include "test_tokenizer_util.h"

using llm8_test::ids_str;
using llm8_test::load_vocab;
using llm8_test::read_vocab_cases;
using llm8_test::vocab_dir;

namespace {

void check_vectors(const std::string& name) {
    const std::string base = vocab_dir() + "/" + name;
    LLM8_REQUIRE_FILE(base);
    LLM8_REQUIRE_FILE(base + ".inp");
    LLM8_REQUIRE_FILE(base + ".out");
    auto vocab = load_vocab(base);
    ASSERT_EQ(vocab->kind(), llm8::VocabKind::spm);
    const auto cases = read_vocab_cases(base + ".inp", base + ".out");
    ASSERT_FALSE(cases.empty());
    int passed = 0;
    for (const auto& [text, expected] : cases) {
        const auto ids = vocab->tokenize(text, /*add_special=*/false, /*parse_special=*/false);
        EXPECT_EQ(ids_str(ids), ids_str(expected)) << "text: '" << text << "'";
        if (ids == expected) ++passed;
        // Round trip: SentencePiece adds one leading space, which detokenize removes again.
        EXPECT_EQ(vocab->detokenize(ids), text) << "text: '" << text << "'";
    }
    std::printf("%s: %d/%zu cases match llama.cpp\n", name.c_str(), passed, cases.size());
}

}  // namespace

TEST(TokenizerSpm, LlamaSpmVectors) {
    check_vectors("ggml-vocab-llama-spm.gguf");
}
TEST(TokenizerSpm, Phi3Vectors) {
    check_vectors("ggml-vocab-phi-3.gguf");
}

TEST(TokenizerSpm, Metadata) {
    const std::string path = vocab_dir() + "/ggml-vocab-llama-spm.gguf";
    LLM8_REQUIRE_FILE(path);
    auto v = load_vocab(path);
    EXPECT_EQ(v->n_tokens(), 32000);
    EXPECT_EQ(v->bos(), 1);
    EXPECT_EQ(v->eos(), 2);
    EXPECT_EQ(v->unk(), 0);
    EXPECT_TRUE(v->add_bos());
    EXPECT_FALSE(v->add_eos());
    EXPECT_TRUE(v->is_eog(2));
    EXPECT_TRUE(v->is_control(1));
    EXPECT_EQ(v->find("<0x0A>"), 13);
    EXPECT_EQ(v->token_to_piece(13), "\n");
    EXPECT_EQ(v->token_to_piece(1), "");
    EXPECT_EQ(v->token_to_piece(1, true), "<s>");
    EXPECT_EQ(v->token_to_piece(v->find("\xE2\x96\x81the")), " the");
}

TEST(TokenizerSpm, SpecialTokens) {
    const std::string path = vocab_dir() + "/ggml-vocab-llama-spm.gguf";
    LLM8_REQUIRE_FILE(path);
    auto v = load_vocab(path);
    EXPECT_EQ(ids_str(v->tokenize("", true)), "1");
    EXPECT_EQ(ids_str(v->tokenize("", false)), "");
    // Control tokens are text unless parse_special.
    const auto plain = v->tokenize("<s>hi", false, false);
    EXPECT_NE(plain.front(), 1);
    const auto parsed = v->tokenize("<s>hi", false, true);
    ASSERT_FALSE(parsed.empty());
    EXPECT_EQ(parsed.front(), 1);
    // After a special token the next text fragment gets the space prefix again.
    EXPECT_EQ(ids_str(v->tokenize("Hello<s>Hello", false, true)), ids_str([&] {
                  auto a = v->tokenize("Hello", false);
                  a.push_back(1);
                  auto b = v->tokenize("Hello", false);
                  a.insert(a.end(), b.begin(), b.end());
                  return a;
              }()));
    // The text after a special token got a space prefix; only the first piece loses it.
    EXPECT_EQ(v->detokenize(parsed, false, true), "<s> hi");
    EXPECT_EQ(v->detokenize(v->tokenize("hi", true)), " hi");  // BOS took the space removal
    EXPECT_EQ(v->detokenize(v->tokenize("hi", true), true), " hi");
    EXPECT_EQ(v->detokenize(v->tokenize("hi", false)), "hi");
}

TEST(TokenizerSpm, ModelVocabWikiText) {
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd64-q8_0.gguf";
    const std::string wiki = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(wiki);
    auto v = load_vocab(model);
    const std::string text = llm8_test::read_file(wiki);
    const std::vector<int32_t> expected = {
        1,     259,   13,  353,   4755, 350,   5059,  357,  353,   29871, 13,    29871,
        13,    4755,  350, 5059,  357,  338,   385,   4223, 2706,  1919,  11456, 322,
        24520, 11339, 869, 940,   750,  263,   17838, 732,  29899, 29992, 380,   23693,
        6297,  373,   278, 11456, 3652, 450,   6682,  297,  29871, 29906, 29900, 29900,
        29900, 869,   910, 471,   5643, 491,   263,   380,  23693, 6297,  297,   278,
        1708,  2439,  787, 3971,  491,  11254, 27265, 575};
    const auto prefix = v->tokenize(text.substr(0, 2000), true);
    ASSERT_GE(prefix.size(), expected.size());
    EXPECT_EQ(ids_str(std::vector<int32_t>(prefix.begin(), prefix.begin() + expected.size())),
              ids_str(expected));

    // Perplexity tokenizes the whole file at once: it must be quick.
    const auto t0 = std::chrono::steady_clock::now();
    const auto all = v->tokenize(text, true);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wiki.test.raw: %zu bytes -> %zu tokens in %.3f s\n", text.size(), all.size(),
                secs);
    EXPECT_LT(secs, 3.0);
    EXPECT_EQ(ids_str(std::vector<int32_t>(all.begin(), all.begin() + expected.size())),
              ids_str(expected));
    // remove_special drops the BOS, and with it the removal of the leading space (llama.cpp).
    EXPECT_TRUE(v->detokenize(all, true) == " " + text);
    EXPECT_TRUE(v->detokenize(std::vector<int32_t>(all.begin() + 1, all.end())) == text);
}
