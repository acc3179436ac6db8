// The CPU forward of every supported architecture and weight type against the double-precision
// reference (tests/reference_llama.h), on small random models: batched prefill, one-token
// decode over the KV cache, and a mix of both. Plus the load-time errors of malformed models.
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "llm8/engine.h"
#include "model_builder.h"
#include "reference_llama.h"
#include "test_util.h"

using llm8::GgmlType;
using llm8_test::TinySpec;

namespace {

struct Case {
    const char* label;
    TinySpec spec;
};

void PrintTo(const Case& c, std::ostream* os) {
    *os << c.label;
}

std::vector<Case> cases() {
    std::vector<Case> c;
    TinySpec s;
    c.push_back({"llama_mha_f32", s});
    c.back().spec.n_head_kv = 4;
    s = TinySpec();
    s.n_head = 8;
    s.n_head_kv = 1;  // GQA 8
    s.wtype = GgmlType::Q8_0;
    c.push_back({"llama_gqa8_q8_0", s});
    s = TinySpec();
    s.arch = "qwen2";
    s.biases = true;
    s.wtype = GgmlType::F16;
    s.rope_base = 1000000.0f;
    c.push_back({"qwen2_bias_f16", s});
    s = TinySpec();
    s.arch = "qwen3";
    s.qk_norm = true;
    s.head_dim = 32;  // q_dim (128) != n_embd (64)
    s.wtype = GgmlType::BF16;
    c.push_back({"qwen3_qknorm_bf16", s});
    s = TinySpec();
    s.tied = true;
    s.wtype = GgmlType::Q4_0;
    c.push_back({"llama_tied_q4_0", s});
    s = TinySpec();
    s.arch = "mistral";
    s.wtype = GgmlType::Q5_1;
    c.push_back({"mistral_q5_1", s});
    s = TinySpec();
    s.n_embd = 256;
    s.n_ff = 256;
    s.n_head = 4;
    s.n_head_kv = 4;
    s.wtype = GgmlType::Q4_K;
    c.push_back({"llama_q4_K", s});
    s.wtype = GgmlType::Q6_K;
    c.push_back({"llama_q6_K", s});
    s.wtype = GgmlType::Q5_K;
    s.arch = "qwen2";
    s.biases = true;
    c.push_back({"qwen2_q5_K", s});
    s.wtype = GgmlType::IQ4_XS;
    c.push_back({"qwen2_iq4_xs", s});
    s = TinySpec();
    s.n_embd = 256;
    s.n_ff = 256;
    s.wtype = GgmlType::Q2_K;
    c.push_back({"llama_gqa2_q2_K", s});
    s.wtype = GgmlType::Q3_K;
    c.push_back({"llama_gqa2_q3_K", s});
    s.wtype = GgmlType::IQ4_NL;
    s.tied = true;
    c.push_back({"llama_tied_iq4_nl", s});
    return c;
}

double max_rel_err(const float* got, const std::vector<double>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        num = std::max(num, std::fabs(double(got[i]) - want[i]));
        den = std::max(den, std::fabs(want[i]));
    }
    return num / std::max(den, 1e-12);
}

}  // namespace

class ModelVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(ModelVsReference, PrefillAndDecodeMatchDoublePrecision) {
    const Case& c = GetParam();
    const std::string path = llm8_test::temp_path(std::string(c.label) + ".gguf");
    llm8_test::build_tiny_model(c.spec).write(path);
    auto file = llm8::GgufFile::open(path);
    llm8_test::RefLlama ref(*file);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());

    const std::vector<int32_t> toks = {1, 270, 5, 300, 299, 42, 260, 270, 13, 310, 4};
    const auto want = ref.forward(toks);

    // Whole sequence in one batch, every position's logits.
    llm8::Session s1(model, {64, 512, 2});
    s1.decode(toks, true);
    for (size_t t = 0; t < toks.size(); ++t)
        EXPECT_LT(max_rel_err(s1.logits(int(t)), want[t]), 2e-5) << c.label << " position " << t;

    // Token by token through the KV cache.
    llm8::Session s2(model, {64, 512, 1});
    for (size_t t = 0; t < toks.size(); ++t) {
        s2.decode(&toks[t], 1);
        EXPECT_LT(max_rel_err(s2.logits(), want[t]), 2e-5) << c.label << " decode step " << t;
    }

    // A 3-token batch size: prefill split across calls, then continued.
    llm8::Session s3(model, {64, 3, 2});
    s3.decode(toks.data(), 7);
    EXPECT_LT(max_rel_err(s3.logits(), want[6]), 2e-5);
    s3.decode(toks.data() + 7, toks.size() - 7, true);
    for (size_t t = 7; t < toks.size(); ++t)
        EXPECT_LT(max_rel_err(s3.logits(int(t - 7)), want[t]), 2e-5) << c.label << " chunked " << t;
}

INSTANTIATE_TEST_SUITE_P(Archs, ModelVsReference, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                             return std::string(i.param.label);
                         });

// ---- errors -------------------------------------------------------------------------------------

namespace {

std::string load_error(llm8::GgufWriter w, const std::string& label) {
    const std::string path = llm8_test::temp_path(label + ".gguf");
    w.write(path);
    std::string msg;
    try {
        llm8::Model::load({path, 0});
        msg = "(loaded)";
    } catch (const llm8::Error& e) {
        msg = e.what();
    }
    std::remove(path.c_str());
    return msg;
}

}  // namespace

TEST(ModelErrors, UnknownArchitecture) {
    TinySpec s;
    auto w = llm8_test::build_tiny_model(s);
    w.set("general.architecture", llm8::GgufValue::make_str("gpt-neox"));
    EXPECT_NE(load_error(w, "arch").find("unknown architecture 'gpt-neox'"), std::string::npos);
}

TEST(ModelErrors, MissingTensor) {
    TinySpec s;
    s.n_layer = 1;
    auto full = llm8_test::build_tiny_model(s);
    // Rebuild without blk.0.ffn_up.weight by copying through a file.
    const std::string path = llm8_test::temp_path("full.gguf");
    full.write(path);
    auto f = llm8::GgufFile::open(path);
    llm8::GgufWriter w;
    for (const auto& kv : f->metadata()) w.set(kv.first, kv.second);
    for (const auto& t : f->tensors())
        if (t.name != "blk.0.ffn_up.weight") w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
    std::remove(path.c_str());
    EXPECT_NE(load_error(w, "missing").find("missing tensor 'blk.0.ffn_up.weight'"),
              std::string::npos);
}

TEST(ModelErrors, WrongShape) {
    TinySpec s;
    auto w = llm8_test::build_tiny_model(s);
    w.set("llama.feed_forward_length", llm8::GgufValue::make_u32(97));
    EXPECT_NE(load_error(w, "shape").find("has shape"), std::string::npos);
}

TEST(ModelErrors, MissingHparam) {
    TinySpec s;
    const std::string path = llm8_test::temp_path("hp.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto f = llm8::GgufFile::open(path);
    llm8::GgufWriter w;
    for (const auto& kv : f->metadata())
        if (kv.first != "llama.block_count") w.set(kv.first, kv.second);
    for (const auto& t : f->tensors()) w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
    std::remove(path.c_str());
    EXPECT_NE(load_error(w, "hp").find("missing metadata 'llama.block_count'"), std::string::npos);
}

TEST(ModelErrors, HeadsNotDivisible) {
    TinySpec s;
    auto w = llm8_test::build_tiny_model(s);
    w.set("llama.attention.head_count_kv", llm8::GgufValue::make_u32(3));
    EXPECT_NE(load_error(w, "heads").find("not a multiple of head_count_kv"), std::string::npos);
}

TEST(ModelErrors, BadRopeAndEps) {
    // Each bad value is refused with its key (metadata values llama.cpp would accept silently).
    const struct {
        const char* key;
        float value;
    } cases[] = {
        {"llama.rope.freq_base", INFINITY},
        {"llama.rope.freq_base", 0.5f},
        {"llama.rope.scale_linear", -2.0f},
        {"llama.rope.scale_linear", NAN},
        {"llama.attention.layer_norm_rms_epsilon", 0.0f},
        {"llama.attention.layer_norm_rms_epsilon", 0.5f},
        {"llama.attention.layer_norm_rms_epsilon", -1e-5f},
    };
    for (const auto& c : cases) {
        auto w = llm8_test::build_tiny_model(TinySpec{});
        w.set(c.key, llm8::GgufValue::make_f32(c.value));
        const std::string msg = load_error(w, "rope");
        EXPECT_NE(msg.find(std::string("metadata '") + c.key + "'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
    }
    auto w = llm8_test::build_tiny_model(TinySpec{});
    w.set("llama.rope.scaling.type", llm8::GgufValue::make_str("linear"));
    w.set("llama.rope.scaling.factor", llm8::GgufValue::make_f32(-4.0f));
    EXPECT_NE(load_error(w, "scale").find("rope.scaling.factor' = -4"), std::string::npos);
}

TEST(ModelErrors, CheckTensorsNamesTheCorruptTensor) {
    TinySpec s;
    s.wtype = GgmlType::Q8_0;
    const std::string path = llm8_test::temp_path("nan.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto f = llm8::GgufFile::open(path);
    llm8::GgufWriter w;
    for (const auto& kv : f->metadata()) w.set(kv.first, kv.second);
    for (const auto& t : f->tensors()) {
        std::vector<uint8_t> b(t.data, t.data + t.nbytes);
        if (t.name == "blk.1.ffn_up.weight") {
            // the fp16 scale of the second block of row 2: a NaN
            const size_t at = 2 * llm8::row_size(t.type, t.ne[0]) + 34;
            b[at] = 0x00;
            b[at + 1] = 0x7e;
        }
        w.add_tensor(t.name, t.type, t.ne, b.data(), b.size());
    }
    std::remove(path.c_str());
    const std::string bad = llm8_test::temp_path("nan2.gguf");
    w.write(bad);
    EXPECT_NO_THROW(llm8::Model::load({bad, 0}));  // unchecked, the load succeeds
    llm8::ModelParams mp{bad, 0};
    mp.check_tensors = true;
    uint64_t last_done = 0;
    mp.progress = [&](uint64_t done, uint64_t) { last_done = done; };
    std::string msg;
    try {
        llm8::Model::load(mp);
    } catch (const llm8::Error& e) {
        msg = e.what();
    }
    std::remove(bad.c_str());
    EXPECT_NE(msg.find("tensor 'blk.1.ffn_up.weight' (layer 1) holds a NaN at row 2, column 32"),
              std::string::npos)
        << msg;
    EXPECT_GT(last_done, 0u);
    // A sound model passes the check.
    llm8::ModelParams ok{"", 0};
    ok.check_tensors = true;
    EXPECT_NO_THROW(llm8::Model::load(ok));
}

TEST(ModelErrors, UnsupportedTensorType) {
    // A well-formed iq2_xxs matrix (ggml type 16, 66 bytes per 256): known to ggml, not to llm8.
    TinySpec s;
    s.n_embd = 256;
    s.n_ff = 256;
    s.n_layer = 1;
    const std::string path = llm8_test::temp_path("q2k.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto f = llm8::GgufFile::open(path);
    llm8::GgufWriter w;
    for (const auto& kv : f->metadata()) w.set(kv.first, kv.second);
    for (const auto& t : f->tensors()) {
        if (t.name == "blk.0.ffn_up.weight") {
            std::vector<uint8_t> q2(size_t(t.ne[1]) * 66, 0);
            w.add_tensor(t.name, static_cast<GgmlType>(16), t.ne, q2.data(), q2.size());
        } else {
            w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
        }
    }
    std::remove(path.c_str());
    const std::string msg = load_error(w, "q2k");
    EXPECT_NE(msg.find("tensor 'blk.0.ffn_up.weight' has type iq2_xxs"), std::string::npos) << msg;
}

TEST(ModelErrors, SessionRejectsBadTokensAndOverflow) {
    TinySpec s;
    const std::string path = llm8_test::temp_path("sess.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    llm8::Session sess(model, {8, 4, 1});
    const int32_t bad[] = {1, 100000};
    EXPECT_THROW(sess.decode(bad, 2), llm8::Error);
    const int32_t neg[] = {-1};
    EXPECT_THROW(sess.decode(neg, 1), llm8::Error);
    std::vector<int32_t> nine(9, 5);
    EXPECT_THROW(sess.decode(nine), llm8::Error);
    EXPECT_THROW(sess.logits(), llm8::Error);
    EXPECT_EQ(sess.n_past(), 0);
    sess.decode(nine.data(), 8);
    EXPECT_EQ(sess.n_past(), 8);
    EXPECT_THROW(sess.decode(nine.data(), 1), llm8::Error);
    EXPECT_THROW(sess.logits(3), llm8::Error);
    sess.clear();
    EXPECT_EQ(sess.n_past(), 0);
    EXPECT_THROW(llm8::Session(model, {-1, 4, 1}), llm8::Error);
    EXPECT_THROW(llm8::Session(model, {8, 0, 1}), llm8::Error);
}

TEST(ModelInfo, DescriptionAndCounts) {
    TinySpec s;
    s.wtype = GgmlType::Q8_0;
    const std::string path = llm8_test::temp_path("info.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    EXPECT_EQ(model->arch(), "llama");
    EXPECT_EQ(model->name(), "tiny-llama");
    EXPECT_EQ(model->n_vocab(), llm8_test::tiny_vocab_size());
    EXPECT_EQ(model->n_layer(), 2);
    EXPECT_EQ(model->n_embd(), 64);
    EXPECT_EQ(model->n_ctx_train(), 128);
    EXPECT_NE(model->description().find("Q8_0"), std::string::npos) << model->description();
    EXPECT_GT(model->n_params(), 0u);
    EXPECT_GT(model->size_bytes(), 0u);
}

TEST(ModelErrors, NonFiniteRopeParameters) {
    TinySpec s;
    s.n_layer = 1;
    auto w = llm8_test::build_tiny_model(s);
    w.set("llama.rope.scale_linear", llm8::GgufValue::make_f32(0.0f));
    EXPECT_NE(load_error(w, "scale0").find("rope.scale_linear' = 0 is out of range"),
              std::string::npos);
    w = llm8_test::build_tiny_model(s);
    w.set("llama.rope.scale_linear", llm8::GgufValue::make_f32(INFINITY));
    EXPECT_NE(load_error(w, "scaleinf").find("rope.scale_linear"), std::string::npos);
    w = llm8_test::build_tiny_model(s);
    w.set("llama.rope.freq_base", llm8::GgufValue::make_f32(INFINITY));
    EXPECT_NE(load_error(w, "baseinf").find("rope.freq_base' = inf is out of range"),
              std::string::npos);
}
