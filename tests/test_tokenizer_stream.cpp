// TokenStreamer: streamed text equals the detokenized text and never ends inside a character.
#include "tokenizer/token_streamer.h"
#include "tokenizer/utf8.h"

#include "test_tokenizer_util.h"

namespace {

void check_stream(const char* file, const std::string& text) {
    const std::string path = llm8_test::vocab_dir() + "/" + file;
    if (!llm8_test::file_exists(path)) GTEST_SKIP() << "test data not found: " << path;
    auto vocab = llm8_test::load_vocab(path);
    const auto ids = vocab->tokenize(text, false);
    llm8::TokenStreamer streamer(*vocab);
    std::string streamed;
    int held = 0;
    for (auto id : ids) {
        const std::string part = streamer.push(id);
        EXPECT_TRUE(llm8::utf8_is_valid(part)) << file;
        if (streamer.has_pending()) ++held;
        streamed += part;
    }
    streamed += streamer.flush();
    std::string pieces;
    for (auto id : ids) pieces += vocab->token_to_piece(id);
    EXPECT_EQ(streamed, pieces) << file;
    EXPECT_GT(held, 0) << file << ": the text should split a character across tokens";
}

}  // namespace

const char* const k_text = "llamas \xF0\x9F\xA6\x99 and \xE5\x9C\x8B\xE9\x9A\x9B \xF0\x9F\x98\x80!";

TEST(TokenStreamer, SpmByteFallback) {
    check_stream("ggml-vocab-llama-spm.gguf", k_text);
}
TEST(TokenStreamer, ByteLevelBpe) {
    check_stream("llama3-vocab.gguf", k_text);
}
TEST(TokenStreamer, Gpt2) {
    check_stream("ggml-vocab-gpt-2.gguf", k_text);
}

TEST(TokenStreamer, FlushReturnsIncompleteTail) {
    const std::string path = llm8_test::vocab_dir() + "/ggml-vocab-llama-spm.gguf";
    LLM8_REQUIRE_FILE(path);
    auto vocab = llm8_test::load_vocab(path);
    llm8::TokenStreamer s(*vocab);
    EXPECT_EQ(s.push(vocab->find("<0xF0>")), "");
    EXPECT_EQ(s.push(vocab->find("<0x9F>")), "");
    EXPECT_TRUE(s.has_pending());
    EXPECT_EQ(s.flush(), "\xF0\x9F");
    EXPECT_FALSE(s.has_pending());
    // A byte that can never start a character is not held back.
    EXPECT_EQ(s.push(vocab->find("<0xFF>")), "\xFF");
    // Control tokens print only when asked.
    EXPECT_EQ(s.push(vocab->eos()), "");
    llm8::TokenStreamer special(*vocab, true);
    EXPECT_EQ(special.push(vocab->eos()), "</s>");
}

TEST(Utf8, IsValidChecksByteStructure) {
    EXPECT_TRUE(llm8::utf8_is_valid(""));
    EXPECT_TRUE(llm8::utf8_is_valid("plain ascii"));
    EXPECT_TRUE(llm8::utf8_is_valid("\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80"));  // é ▁ 😀
    EXPECT_FALSE(llm8::utf8_is_valid("\xe2\x96"));                               // cut off
    EXPECT_FALSE(llm8::utf8_is_valid("\x80"));                                   // lone continuation
    EXPECT_FALSE(llm8::utf8_is_valid("\xc3\x28"));                               // bad continuation
    EXPECT_FALSE(llm8::utf8_is_valid("\xff"));                                   // no such lead byte
}
