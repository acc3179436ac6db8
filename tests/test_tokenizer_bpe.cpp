// Byte-level BPE vocabularies against llama.cpp's test vectors (every vocab in shared/vocab).
#include "test_tokenizer_util.h"
#include "tokenizer/pretokenize.h"

using llm8_test::ids_str;
using llm8_test::load_vocab;
using llm8_test::read_vocab_cases;
using llm8_test::vocab_dir;

namespace {

// llama.cpp's detokenizer tidies " ?", " !", " .", " ,", " ' " and " 's"-style contractions
// for most BPE vocabs; the byte-exact round trip is checked on the pieces instead.
bool has_clean_up_pattern(const std::string& s) {
    for (const char* p : {" ?", " !", " .", " ,", " '"}) {
        if (s.find(p) != std::string::npos) return true;
    }
    return false;
}

void check_vectors(const std::string& gguf, const std::string& vectors, bool clean_spaces) {
    const std::string path = vocab_dir() + "/" + gguf;
    const std::string base = vocab_dir() + "/" + vectors;
    LLM8_REQUIRE_FILE(path);
    LLM8_REQUIRE_FILE(base + ".inp");
    auto vocab = load_vocab(path);
    ASSERT_EQ(vocab->kind(), llm8::VocabKind::bpe);
    const auto cases = read_vocab_cases(base + ".inp", base + ".out");
    ASSERT_FALSE(cases.empty());
    int passed = 0;
    for (const auto& [text, expected] : cases) {
        const auto ids = vocab->tokenize(text, /*add_special=*/false, /*parse_special=*/false);
        EXPECT_EQ(ids_str(ids), ids_str(expected)) << gguf << " text: '" << text << "'";
        if (ids == expected) ++passed;
        std::string pieces;
        for (auto id : ids) pieces += vocab->token_to_piece(id);
        EXPECT_EQ(pieces, text) << gguf;
        if (!clean_spaces || !has_clean_up_pattern(text)) {
            EXPECT_EQ(vocab->detokenize(ids), text) << gguf;
        }
    }
    std::printf("%s with %s vectors: %d/%zu cases match llama.cpp\n", gguf.c_str(), vectors.c_str(),
                passed, cases.size());
}

}  // namespace

TEST(TokenizerBpe, Gpt2) {
    check_vectors("ggml-vocab-gpt-2.gguf", "ggml-vocab-gpt-2.gguf", true);
}
TEST(TokenizerBpe, Falcon) {
    check_vectors("ggml-vocab-falcon.gguf", "ggml-vocab-falcon.gguf", true);
}
TEST(TokenizerBpe, Mpt) {
    check_vectors("ggml-vocab-mpt.gguf", "ggml-vocab-mpt.gguf", true);
}
TEST(TokenizerBpe, Refact) {
    check_vectors("ggml-vocab-refact.gguf", "ggml-vocab-refact.gguf", true);
}
TEST(TokenizerBpe, Starcoder) {
    check_vectors("ggml-vocab-starcoder.gguf", "ggml-vocab-starcoder.gguf", true);
}
TEST(TokenizerBpe, DeepseekLlm) {
    check_vectors("ggml-vocab-deepseek-llm.gguf", "ggml-vocab-deepseek-llm.gguf", false);
}
TEST(TokenizerBpe, DeepseekCoder) {
    check_vectors("ggml-vocab-deepseek-coder.gguf", "ggml-vocab-deepseek-coder.gguf", false);
}
TEST(TokenizerBpe, Llama3) {
    check_vectors("llama3-vocab.gguf", "ggml-vocab-llama-bpe.gguf", true);
}
TEST(TokenizerBpe, Qwen3) {
    check_vectors("qwen3-vocab.gguf", "ggml-vocab-qwen2.gguf", false);
}

// Whitespace outside ASCII only ever matches \s, as in llama.cpp's collapsed std::regex: it
// is not part of a literal range (DeepSeek's [　-。]) and U+180E is not whitespace.
TEST(PreTokenizer, WhitespaceStandIns) {
    llm8::PreTokenizer ranges({"\\s?[\\x{3000}-\\x{3002}]+"});
    const auto a = ranges.split("\xE3\x80\x82\xE3\x80\x80");  // "。" U+3000
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(a[0], "\xE3\x80\x82");
    EXPECT_EQ(a[1], "\xE3\x80\x80");
    const auto b = ranges.split("\xE3\x80\x80\xE3\x80\x82");  // U+3000 then "。": one piece
    ASSERT_EQ(b.size(), 1u);

    llm8::PreTokenizer spaces({"\\s+"});
    EXPECT_EQ(spaces
                  .split("a\xE1\xA0\x8E"
                         "b")
                  .size(),
              1u);  // U+180E is no space
    EXPECT_EQ(spaces
                  .split("a\xC2\x85"
                         "b")
                  .size(),
              3u);  // U+0085 is
    EXPECT_EQ(spaces
                  .split("a\xE2\x80\xAF"
                         "b")
                  .size(),
              3u);  // U+202F is
    EXPECT_TRUE(spaces.split("").empty());
}
