// llm8-convert's conversions: llama2.c -> GGUF (against the independent v1 GGUF of the same
// weights), GGUF v1 -> v3, re-quantization, and the errors of corrupt inputs.
#include <cstdio>
#include <cstring>
#include <fstream>

#include "gguf/gguf.h"
#include "llm8/engine.h"
#include "model/convert.h"
#include "runtime/embedded_model.h"
#include "test_util.h"

namespace {
const std::string kModels = llm8_test::shared_data() + "/models/";

std::string tmp(const std::string& n) {
    return "/tmp/llm8-conv-" + std::to_string(::getpid()) + n;
}
}  // namespace

TEST(Convert, Llama2cMatchesTheIndependentV1File) {
    LLM8_REQUIRE_FILE(kModels + "stories260K.bin");
    LLM8_REQUIRE_FILE(kModels + "stories260K-v1-f32.gguf");
    const auto bytes =
        llm8::convert_llama2c(kModels + "stories260K.bin", kModels + "tok512.bin", "s").to_bytes();
    auto ours = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), "ours");
    auto v1 = llm8::GgufFile::open(kModels + "stories260K-v1-f32.gguf");
    // Every tensor of ours equals the v1 file's tensor of that name, byte for byte.
    for (const auto& t : ours->tensors()) {
        const auto* o = v1->find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(t.ne, o->ne) << t.name;
        ASSERT_EQ(t.nbytes, o->nbytes) << t.name;
        EXPECT_EQ(std::memcmp(t.data, o->data, t.nbytes), 0) << t.name;
    }
    // Same vocabulary, scores and token types.
    for (const char* k :
         {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
        const auto& a = ours->get_array(k);
        const auto& b = v1->get_array(k);
        EXPECT_EQ(a.strings, b.strings) << k;
        EXPECT_EQ(a.floats, b.floats) << k;
        EXPECT_EQ(a.ints, b.ints) << k;
    }
    for (const char* k :
         {"llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
          "llama.attention.head_count", "llama.attention.head_count_kv",
          "llama.rope.dimension_count", "llama.context_length"})
        EXPECT_EQ(ours->get_int(k), v1->get_int(k)) << k;
    // The embedded model is this very conversion.
    ASSERT_GT(llm8::embedded_model_size(), 0u);
    auto emb = llm8::GgufFile::from_memory(llm8::embedded_model_data(), llm8::embedded_model_size(),
                                           "emb");
    for (const auto& t : emb->tensors())
        EXPECT_EQ(std::memcmp(t.data, ours->find_tensor(t.name)->data, t.nbytes), 0) << t.name;
}

TEST(Convert, V1ToV3GivesTheSameGreedyText) {
    LLM8_REQUIRE_FILE(kModels + "stories260K-v1-f32.gguf");
    auto v1 = llm8::GgufFile::open(kModels + "stories260K-v1-f32.gguf");
    const std::string out = tmp("v3.gguf");
    llm8::convert_gguf(*v1, nullptr).write(out);
    auto v3 = llm8::GgufFile::open(out);
    EXPECT_EQ(v3->version(), 3u);
    EXPECT_EQ(v3->tensors().size(), v1->tensors().size());
    EXPECT_EQ(v3->metadata().size(), v1->metadata().size());
    auto generate = [](const std::string& path) {
        auto m = llm8::Model::load({path, 0});
        llm8::Session s(m, {128, 64, 1});
        auto toks = m->tokenize("Once upon a time", true);
        s.decode(toks);
        std::string text;
        for (int i = 0; i < 30; ++i) {
            const float* l = s.logits();
            int32_t best = 0;
            for (int j = 1; j < m->n_vocab(); ++j)
                if (l[j] > l[best]) best = j;
            text += m->token_to_piece(best);
            s.decode(&best, 1);
        }
        return text;
    };
    const std::string a = generate(kModels + "stories260K-v1-f32.gguf"), b = generate(out),
                      c = generate("");
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, c);
    EXPECT_EQ(a.rfind(", there was a little girl named Lily.", 0), 0u) << a;
    std::remove(out.c_str());
}

TEST(Convert, RequantizeKeepsNormsAndLoads) {
    auto src = llm8::GgufFile::from_memory(llm8::embedded_model_data(), llm8::embedded_model_size(),
                                           "emb");
    const llm8::GgmlType t = llm8::GgmlType::Q8_0;
    const auto bytes = llm8::convert_gguf(*src, &t).to_bytes();
    auto q = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), "q8");
    EXPECT_EQ(q->find_tensor("blk.0.attn_q.weight")->type, llm8::GgmlType::Q8_0);
    EXPECT_EQ(q->find_tensor("blk.0.attn_norm.weight")->type, llm8::GgmlType::F32);
    EXPECT_EQ(q->find_tensor("blk.0.ffn_down.weight")->type,
              llm8::GgmlType::F32);  // 172: not a block multiple
    EXPECT_EQ(q->get_int("general.file_type"), 7);
    const llm8::GgmlType bad = llm8::GgmlType::Q2_K;
    EXPECT_THROW(llm8::convert_gguf(*src, &bad), llm8::Error);
}

TEST(Convert, RequantizeNeedsConsent) {
    auto src = llm8::GgufFile::from_memory(llm8::embedded_model_data(), llm8::embedded_model_size(),
                                           "emb");
    const llm8::GgmlType q8 = llm8::GgmlType::Q8_0, q4 = llm8::GgmlType::Q4_0;
    const auto bytes = llm8::convert_gguf(*src, &q8).to_bytes();
    auto q = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), "q8");
    EXPECT_FALSE(llm8::requantized_tensors(*q, q4).empty());
    EXPECT_TRUE(llm8::requantized_tensors(*src, q4).empty());
    try {
        llm8::convert_gguf(*q, &q4);
        ADD_FAILURE() << "requantized without --allow-requantize";
    } catch (const llm8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("--allow-requantize"), std::string::npos);
    }
    llm8::ConvertOptions opt;
    opt.allow_requantize = true;
    size_t calls = 0;
    opt.progress = [&](size_t, size_t) { ++calls; };
    const auto b4 = llm8::convert_gguf(*q, &q4, opt).to_bytes();
    auto r = llm8::GgufFile::from_memory(b4.data(), b4.size(), "q4");
    EXPECT_EQ(r->find_tensor("blk.0.attn_q.weight")->type, q4);
    EXPECT_EQ(calls, q->tensors().size());
    // Unchanged types are no requantization: q8_0 -> q8_0 copies.
    EXPECT_NO_THROW(llm8::convert_gguf(*q, &q8));
}

TEST(ConvertErrors, CorruptLlama2cInputs) {
    LLM8_REQUIRE_FILE(kModels + "stories260K.bin");
    const std::string ck = llm8_test::read_file(kModels + "stories260K.bin");
    const std::string tk = llm8_test::read_file(kModels + "tok512.bin");
    auto write = [](const std::string& path, const std::string& data) {
        std::ofstream(path, std::ios::binary).write(data.data(), long(data.size()));
    };
    const std::string p = tmp("ck.bin"), q = tmp("tk.bin");
    write(q, tk);
    write(p, ck.substr(0, ck.size() - 4));  // truncated
    EXPECT_THROW(llm8::convert_llama2c(p, q, "x"), llm8::Error);
    write(p, ck.substr(0, 10));
    EXPECT_THROW(llm8::convert_llama2c(p, q, "x"), llm8::Error);
    std::string bad = ck;
    const int32_t huge = 1 << 30;
    std::memcpy(&bad[0], &huge, 4);
    write(p, bad);
    EXPECT_THROW(llm8::convert_llama2c(p, q, "x"), llm8::Error);
    write(p, ck);
    write(q, tk.substr(0, tk.size() / 2));  // truncated tokenizer
    EXPECT_THROW(llm8::convert_llama2c(p, q, "x"), llm8::Error);
    EXPECT_THROW(llm8::convert_llama2c("/nonexistent", q, "x"), llm8::Error);
    std::remove(p.c_str());
    std::remove(q.c_str());
}
