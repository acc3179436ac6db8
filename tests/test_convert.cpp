// llm8-convert's conversions: llama2.c -> GGUF (against the independent v1 GGUF of the same
// weights), GGUF v1 -> v3, re-quantization, llama-quantize's mixes and fallbacks, the
// perplexity of every low-bit outtype on the trained test model, and the errors of corrupt
// inputs.
#include <cstdio>
#include <cstring>
#include <fstream>

#include <map>

#include "gguf/gguf.h"
#include "llm8/engine.h"
#include "model/convert.h"
#include "model/quant_mix.h"
#include "model_builder.h"
#include "runtime/embedded_model.h"
#include "runtime/perplexity.h"
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
    const llm8::GgmlType bad = static_cast<llm8::GgmlType>(16);  // iq2_xxs: no quantizer
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

namespace {

using llm8::GgmlType;

// Type of every tensor after converting `in` to `name` (an --outtype).
std::map<std::string, GgmlType> planned(const llm8::GgufFile& in, const std::string& name,
                                        bool pure = false) {
    llm8::QuantTarget t;
    EXPECT_TRUE(llm8::parse_quant_target(name, pure, &t)) << name;
    std::map<std::string, GgmlType> m;
    for (const auto& p : llm8::plan_conversion(in, t)) m[p.name] = p.to;
    return m;
}

std::string blk(int l, const char* t) {
    return "blk." + std::to_string(l) + "." + t + ".weight";
}

}  // namespace

TEST(QuantMix, NamesAsLlamaQuantize) {
    llm8::QuantTarget t;
    ASSERT_TRUE(llm8::parse_quant_target("Q4_K_M", false, &t));
    EXPECT_EQ(t.type, GgmlType::Q4_K);
    EXPECT_EQ(t.mix, llm8::QuantMix::q4_k_m);
    EXPECT_EQ(llm8::quant_target_ftype(t), 15u);
    ASSERT_TRUE(llm8::parse_quant_target("q2_k", false, &t));  // llama-quantize's Q2_K mix
    EXPECT_EQ(t.mix, llm8::QuantMix::q2_k);
    EXPECT_EQ(llm8::quant_target_ftype(t), 10u);
    ASSERT_TRUE(llm8::parse_quant_target("q2_K", true, &t));  // --pure: plain q2_K
    EXPECT_EQ(t.type, GgmlType::Q2_K);
    EXPECT_EQ(t.mix, llm8::QuantMix::none);
    ASSERT_TRUE(llm8::parse_quant_target("IQ4_XS", false, &t));
    EXPECT_EQ(t.type, GgmlType::IQ4_XS);
    EXPECT_EQ(llm8::quant_target_ftype(t), 30u);
    ASSERT_TRUE(llm8::parse_quant_target("q3_K", false, &t));
    EXPECT_EQ(t.mix, llm8::QuantMix::none);
    EXPECT_FALSE(llm8::parse_quant_target("Q4_K_S", false, &t));   // not (yet) a mix llm8 knows
    EXPECT_FALSE(llm8::parse_quant_target("iq2_xxs", false, &t));  // a type without quantizer
}

// The rules of llama.cpp's llama_tensor_get_type_impl for 8 layers (use_more_bits: layers 0, 3,
// 6, 7), GQA 4, untied output, every row length a multiple of 256.
TEST(QuantMix, MixRulesFollowLlamaQuantize) {
    llm8_test::TinySpec s;
    s.n_embd = 256;
    s.n_ff = 512;
    s.n_layer = 8;
    s.n_head = 4;
    s.n_head_kv = 1;
    const auto bytes = llm8_test::build_tiny_model(s).to_bytes();
    auto f = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), "mix");
    const std::vector<int> more = {0, 3, 6, 7};
    auto more_bits = [&](int l) { return std::find(more.begin(), more.end(), l) != more.end(); };

    auto q4 = planned(*f, "Q4_K_M"), q5 = planned(*f, "Q5_K_M");
    auto q3 = planned(*f, "Q3_K_M"), q2 = planned(*f, "Q2_K");
    for (auto* m : {&q4, &q5, &q3, &q2}) {
        EXPECT_EQ((*m)["output.weight"], GgmlType::Q6_K);
        EXPECT_EQ((*m)["blk.0.attn_norm.weight"], GgmlType::F32);  // norms stay
    }
    EXPECT_EQ(q4["token_embd.weight"], GgmlType::Q4_K);
    EXPECT_EQ(q2["token_embd.weight"], GgmlType::Q2_K);
    for (int l = 0; l < 8; ++l) {
        const GgmlType hi4 = more_bits(l) ? GgmlType::Q6_K : GgmlType::Q4_K;
        const GgmlType hi5 = more_bits(l) ? GgmlType::Q6_K : GgmlType::Q5_K;
        EXPECT_EQ(q4[blk(l, "attn_v")], hi4) << l;
        EXPECT_EQ(q4[blk(l, "ffn_down")], hi4) << l;
        EXPECT_EQ(q4[blk(l, "attn_q")], GgmlType::Q4_K) << l;
        EXPECT_EQ(q4[blk(l, "ffn_up")], GgmlType::Q4_K) << l;
        EXPECT_EQ(q5[blk(l, "attn_v")], hi5) << l;
        EXPECT_EQ(q5[blk(l, "ffn_down")], hi5) << l;
        EXPECT_EQ(q5[blk(l, "attn_k")], GgmlType::Q5_K) << l;
        // Q3_K_M: attn_v q5_K in the first two layers then q4_K; ffn_down q5_K below n/16 (none
        // of 8), else q4_K; attn_output q4_K; the rest q3_K.
        EXPECT_EQ(q3[blk(l, "attn_v")], l < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << l;
        EXPECT_EQ(q3[blk(l, "ffn_down")], GgmlType::Q4_K) << l;
        EXPECT_EQ(q3[blk(l, "attn_output")], GgmlType::Q4_K) << l;
        EXPECT_EQ(q3[blk(l, "ffn_gate")], GgmlType::Q3_K) << l;
        // Q2_K: attn_v q4_K with GQA >= 4 (q3_K below), ffn_down and attn_output q3_K.
        EXPECT_EQ(q2[blk(l, "attn_v")], GgmlType::Q4_K) << l;
        EXPECT_EQ(q2[blk(l, "ffn_down")], GgmlType::Q3_K) << l;
        EXPECT_EQ(q2[blk(l, "attn_output")], GgmlType::Q3_K) << l;
        EXPECT_EQ(q2[blk(l, "attn_q")], GgmlType::Q2_K) << l;
    }
    // --pure: every matrix the base type, the output too.
    for (const auto& kv : planned(*f, "Q4_K_M", true))
        if (kv.first.find("norm") == std::string::npos) EXPECT_EQ(kv.second, GgmlType::Q4_K);
    // GQA 2: Q2_K's attn_v is q3_K.
    s.n_head_kv = 2;
    const auto b2 = llm8_test::build_tiny_model(s).to_bytes();
    auto f2 = llm8::GgufFile::from_memory(b2.data(), b2.size(), "mix2");
    EXPECT_EQ(planned(*f2, "Q2_K")[blk(0, "attn_v")], GgmlType::Q3_K);
}

// Rows that do not fill a 256-element block: llama.cpp's tensor_type_fallback.
TEST(QuantMix, RowsThatDoNotFillABlockFallBack) {
    llm8_test::TinySpec s;
    s.n_embd = 256;
    s.n_ff = 320;  // ffn_down rows: 320 = 10 x 32, not a multiple of 256
    s.n_layer = 8;
    s.tied = true;
    const auto bytes = llm8_test::build_tiny_model(s).to_bytes();
    auto f = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), "fb");
    const std::string down0 = blk(0, "ffn_down"), down1 = blk(1, "ffn_down");
    EXPECT_EQ(planned(*f, "Q4_K_M")[down0], GgmlType::Q8_0);  // q6_K -> q8_0
    EXPECT_EQ(planned(*f, "Q4_K_M")[down1], GgmlType::Q5_0);  // q4_K -> q5_0
    EXPECT_EQ(planned(*f, "Q5_K_M")[down1], GgmlType::Q5_1);  // q5_K -> q5_1
    EXPECT_EQ(planned(*f, "Q2_K")[down1], GgmlType::Q4_0);    // q3_K -> q4_0
    EXPECT_EQ(planned(*f, "q2_K", true)[down1], GgmlType::Q4_0);
    EXPECT_EQ(planned(*f, "iq4_xs")[down1], GgmlType::IQ4_NL);
    EXPECT_EQ(planned(*f, "iq4_xs")[blk(1, "attn_q")], GgmlType::IQ4_XS);
    // Tied output: token_embd is the output matrix and gets q6_K in a mix.
    EXPECT_EQ(planned(*f, "Q4_K_M")["token_embd.weight"], GgmlType::Q6_K);
    // The fallback is reported.
    llm8::QuantTarget t;
    llm8::parse_quant_target("Q4_K_M", false, &t);
    for (const auto& p : llm8::plan_conversion(*f, t))
        EXPECT_EQ(p.fell_back, p.name.find("ffn_down") != std::string::npos) << p.name;
    // Rows of 96 (not a multiple of 32 either... 96 is; 100 is not): f32 becomes f16.
    s.n_ff = 100;
    const auto b2 = llm8_test::build_tiny_model(s).to_bytes();
    auto f2 = llm8::GgufFile::from_memory(b2.data(), b2.size(), "fb2");
    EXPECT_EQ(planned(*f2, "Q4_K_M")[down1], GgmlType::F16);
    EXPECT_EQ(planned(*f2, "q8_0")[down1], GgmlType::F32);  // no fallback: kept, as before
}

// The embedded stories260K (f32, rows of 64 and 172): every K-quant target falls back, and
// the file still loads and runs close to the original.
TEST(QuantMix, Stories260KConvertsToEveryMix) {
    auto src = llm8::GgufFile::from_memory(llm8::embedded_model_data(), llm8::embedded_model_size(),
                                           "emb");
    std::string text;
    for (int i = 0; i < 60; ++i) text += "Once upon a time, there was a little girl named Lily. ";
    auto base = llm8::Model::load({"", 0});
    const auto tokens = base->tokenize(text, true);
    const double ppl0 = llm8::perplexity(base, tokens, 128, 3, 128, 2).ppl;
    for (const char* name : {"Q4_K_M", "Q2_K", "iq4_xs", "q3_K"}) {
        llm8::QuantTarget t;
        ASSERT_TRUE(llm8::parse_quant_target(name, false, &t));
        const std::string path = tmp(std::string("-") + name + ".gguf");
        llm8::convert_gguf(*src, &t).write(path);
        auto f = llm8::GgufFile::open(path);
        EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->type, GgmlType::F16) << name;
        auto m = llm8::Model::load({path, 0});
        const double ppl = llm8::perplexity(m, tokens, 128, 3, 128, 2).ppl;
        std::printf("stories260K %-7s PPL %.4f (f32 %.4f)\n", name, ppl, ppl0);
        EXPECT_LT(ppl, ppl0 * 1.5) << name;
        std::remove(path.c_str());
    }
}

// Every low-bit outtype on the trained test model (Q8_0 weights, requantized): the file loads
// and its perplexity over WikiText-2 stays near the source's. Bounds are about 1.5x the
// measured loss (docs/quantization.md has the full-length figures).
struct PplCase {
    const char* outtype;
    bool pure;
    double max_ratio;  // PPL / PPL of the Q8_0 source
};

void PrintTo(const PplCase& c, std::ostream* os) {
    *os << c.outtype << (c.pure ? " --pure" : "");
}

class LowBitPerplexity : public ::testing::TestWithParam<PplCase> {};

TEST_P(LowBitPerplexity, StaysCloseToTheSource) {
    const PplCase& c = GetParam();
    const std::string model = kModels + "tiny-llama-hd64-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto src = llm8::GgufFile::open(model);
    llm8::QuantTarget t;
    ASSERT_TRUE(llm8::parse_quant_target(c.outtype, c.pure, &t));
    llm8::ConvertOptions opt;
    opt.allow_requantize = true;
    const std::string path = tmp(std::string("-") + c.outtype + (c.pure ? "-pure" : "") + ".gguf");
    llm8::convert_gguf(*src, &t, opt).write(path);
    auto base = llm8::Model::load({model, 0});
    auto q = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    const auto tokens = base->tokenize(llm8_test::read_file(text).substr(0, 200000), true);
    const int chunks = 4;
    const double p0 = llm8::perplexity(base, tokens, 512, chunks, 512, 0).ppl;
    const double p1 = llm8::perplexity(q, tokens, 512, chunks, 512, 0).ppl;
    std::printf("tiny-llama-hd64 %s%s: PPL %.3f, q8_0 source %.3f, ratio %.4f\n", c.outtype,
                c.pure ? " --pure" : "", p1, p0, p1 / p0);
    EXPECT_LT(p1 / p0, c.max_ratio);
}

INSTANTIATE_TEST_SUITE_P(
    Shared, LowBitPerplexity,
    ::testing::Values(PplCase{"Q5_K_M", false, 1.03}, PplCase{"Q4_K_M", false, 1.04},
                      PplCase{"iq4_xs", false, 1.06}, PplCase{"iq4_nl", false, 1.06},
                      PplCase{"Q3_K_M", false, 1.10}, PplCase{"q3_K", false, 1.2},
                      PplCase{"Q2_K", false, 1.35}, PplCase{"q2_K", true, 1.7}),
    [](const ::testing::TestParamInfo<PplCase>& info) {
        std::string n = std::string(info.param.outtype) + (info.param.pure ? "_pure" : "");
        return n;
    });
