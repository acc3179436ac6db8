// The CPU forward of every supported architecture and weight type against the double-precision
// reference (tests/reference_llama.h), on small random models: batched prefill, one-token
// decode over the KV cache, and a mix of both. Plus the load-time errors of malformed models.
#include <cmath>
#include <cstdio>
#include <functional>

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

// Mixture-of-experts and latent-attention models (random weights: these check the arithmetic
// against the reference, never accuracy; there is no trained MoE model to check that with).
TinySpec mixtral_spec() {
    TinySpec s;  // llama with experts; each expert is a feed_forward_length FFN
    s.n_expert = 4;
    s.n_expert_used = 2;
    return s;
}

TinySpec qwen3moe_spec() {
    TinySpec s;
    s.arch = "qwen3moe";
    s.qk_norm = true;
    s.head_dim = 32;
    s.n_expert = 8;
    s.n_expert_used = 3;
    s.n_ff_exp = 32;
    s.rope_base = 1000000.0f;
    return s;
}

// DeepSeek-V2-Lite's layout: no q_lora, one leading dense layer, two shared experts, the older
// attn_kv_b, softmax routing without renormalization.
TinySpec deepseek2_lite_spec() {
    TinySpec s;
    s.arch = "deepseek2";
    s.n_layer = 3;
    s.n_head = 4;
    s.n_head_kv = 4;
    s.kv_lora_rank = 32;
    s.qk_rope = 16;
    s.qk_nope = 32;
    s.v_head = 24;
    s.n_expert = 8;
    s.n_expert_used = 2;
    s.n_ff_exp = 32;
    s.n_expert_shared = 2;
    s.n_dense_lead = 1;
    return s;
}

// DeepSeek-V3's routing and the newer split attn_k_b / attn_v_b: q_lora, sigmoid gating with
// the selection bias, group-limited top-k, renormalized and scaled weights, YaRN with the log
// multiplier (so positions past the original context use blended frequencies).
TinySpec deepseek3_spec() {
    TinySpec s = deepseek2_lite_spec();
    s.q_lora_rank = 32;
    s.kv_lora_rank = 64;
    s.v_head = 32;
    s.kv_b_split = true;
    s.gating = 2;
    s.probs_bias = true;
    s.n_groups = 4;
    s.n_groups_used = 2;
    s.n_expert_used = 3;
    s.weights_norm = 1;
    s.weights_scale = 2.5f;
    s.n_expert_shared = 1;
    s.yarn_factor = 4.0f;
    s.yarn_orig_ctx = 8;
    s.yarn_log_mul = 0.0707f;
    s.rope_base = 100.0f;
    return s;
}

std::vector<Case> moe_cases() {
    std::vector<Case> c;
    c.push_back({"mixtral_f32", mixtral_spec()});
    c.push_back({"mixtral_q8_0", mixtral_spec()});
    c.back().spec.wtype = GgmlType::Q8_0;
    c.push_back({"qwen3moe_f16", qwen3moe_spec()});
    c.back().spec.wtype = GgmlType::F16;
    c.push_back({"qwen3moe_q8_0_norm_off", qwen3moe_spec()});
    c.back().spec.wtype = GgmlType::Q8_0;
    c.back().spec.weights_norm = 0;
    c.push_back({"deepseek2_lite_f32", deepseek2_lite_spec()});
    c.push_back({"deepseek2_lite_q8_0", deepseek2_lite_spec()});
    c.back().spec.wtype = GgmlType::Q8_0;
    c.push_back({"deepseek3_split_f32", deepseek3_spec()});
    c.push_back({"deepseek3_split_q8_0", deepseek3_spec()});
    c.back().spec.wtype = GgmlType::Q8_0;
    TinySpec y = deepseek2_lite_spec();  // YaRN without the log multiplier: scaled rotation
    y.yarn_factor = 8.0f;
    y.yarn_orig_ctx = 4;
    y.rope_base = 50.0f;
    c.push_back({"deepseek2_yarn_f16", y});
    c.back().spec.wtype = GgmlType::F16;
    return c;
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
    for (const Case& m : moe_cases()) c.push_back(m);
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

// ---- mixture of experts and latent attention ----------------------------------------------------

class MoeBatch : public ::testing::TestWithParam<Case> {};

// Three sequences prefilled in one batch and then decoded together give each sequence's logits
// as it gets them alone (the batch changes only the matmul path's rounding).
TEST_P(MoeBatch, BatchMatchesSolo) {
    const Case& c = GetParam();
    const std::string path = llm8_test::temp_path(std::string(c.label) + "-batch.gguf");
    llm8_test::build_tiny_model(c.spec).write(path);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    const std::vector<std::vector<int32_t>> prompts = {
        {1, 270, 5, 300, 299, 42}, {1, 7, 8}, {1, 260, 261, 262, 263, 264, 265, 266, 13}};
    const std::vector<int32_t> next = {17, 300, 4};
    std::vector<std::vector<std::vector<float>>> solo;  // [seq][step][vocab]
    for (size_t q = 0; q < prompts.size(); ++q) {
        llm8::Session s(model, {64, 512, 1});
        s.decode(prompts[q]);
        solo.push_back({std::vector<float>(s.logits(), s.logits() + model->n_vocab())});
        s.decode(&next[q], 1);
        solo.back().push_back(std::vector<float>(s.logits(), s.logits() + model->n_vocab()));
    }
    llm8::ContextParams cp;
    cp.n_ctx = 192;
    cp.n_seq_max = 3;
    cp.n_batch = 512;
    cp.n_threads = 1;
    llm8::Context ctx(model, cp);
    llm8::Batch b;
    std::vector<int> last;
    for (size_t q = 0; q < prompts.size(); ++q) {
        for (size_t i = 0; i < prompts[q].size(); ++i)
            b.add(prompts[q][i], int32_t(i), int32_t(q), i + 1 == prompts[q].size());
        last.push_back(int(b.size()) - 1);
    }
    ctx.decode(b);
    auto close = [&](const float* got, const std::vector<float>& want) {
        double num = 0, den = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            num = std::max(num, std::fabs(double(got[i]) - want[i]));
            den = std::max(den, std::fabs(double(want[i])));
        }
        return num / den;
    };
    for (size_t q = 0; q < prompts.size(); ++q)
        EXPECT_LT(close(ctx.logits(last[q]), solo[q][0]), 1e-5) << c.label << " prefill seq " << q;
    llm8::Batch d;
    for (size_t q = 0; q < prompts.size(); ++q)
        d.add(next[q], int32_t(prompts[q].size()), int32_t(q), true);
    ctx.decode(d);
    for (size_t q = 0; q < prompts.size(); ++q)
        EXPECT_LT(close(ctx.logits(int(q)), solo[q][1]), 1e-5) << c.label << " decode seq " << q;
}

INSTANTIATE_TEST_SUITE_P(Archs, MoeBatch, ::testing::ValuesIn(moe_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                             return std::string(i.param.label);
                         });

TEST(MoeModel, LatentCacheIsOneSharedRow) {
    // deepseek2 caches n_rot + kv_lora_rank floats per token and layer, K and V shared.
    const TinySpec s = deepseek2_lite_spec();
    const std::string path = llm8_test::temp_path("ds2-mem.gguf");
    llm8_test::build_tiny_model(s).write(path);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    llm8::Session sess(model, {64, 64, 1});
    llm8::Context ctx(model, {64, 1, 64, 1});
    const llm8::KvMemory mem = ctx.kv_memory();
    EXPECT_EQ(mem.bytes_total, size_t(mem.n_blocks) * 64 * s.n_layer *
                                   size_t(s.qk_rope + s.kv_lora_rank) * sizeof(float));
}

TEST(MoeModel, Forks) {
    // A forked deepseek2 sequence continues as the original does (copy on write of the shared
    // latent block; there is no V pool to copy).
    const std::string path = llm8_test::temp_path("ds2-fork.gguf");
    llm8_test::build_tiny_model(deepseek2_lite_spec()).write(path);
    auto model = llm8::Model::load({path, 0});
    std::remove(path.c_str());
    llm8::Context ctx(model, {256, 2, 64, 1});
    llm8::Batch b;
    for (int i = 0; i < 5; ++i) b.add(1 + i, i, 0, i == 4);
    ctx.decode(b);
    ctx.seq_fork(0, 1);
    llm8::Batch d;
    d.add(9, 5, 0, true);
    d.add(9, 5, 1, true);
    ctx.decode(d);
    const int V = model->n_vocab();
    for (int i = 0; i < V; ++i) ASSERT_EQ(ctx.logits(0)[i], ctx.logits(1)[i]) << i;
}

namespace {

std::string moe_load_error(TinySpec s, const std::string& label,
                           const std::function<void(llm8::GgufWriter&)>& edit,
                           llm8::ModelParams mp = {}) {
    auto w = llm8_test::build_tiny_model(s);
    if (edit) edit(w);
    const std::string path = llm8_test::temp_path(label + ".gguf");
    w.write(path);
    std::string msg;
    mp.path = path;
    mp.n_gpu_layers = 0;
    try {
        llm8::Model::load(mp);
        msg = "(loaded)";
    } catch (const llm8::Error& e) {
        msg = e.what();
    }
    std::remove(path.c_str());
    return msg;
}

}  // namespace

TEST(MoeModelErrors, HyperparametersAreNamed) {
    using llm8::GgufValue;
    auto has = [](const std::string& msg, const std::string& want) {
        return msg.find(want) != std::string::npos;
    };
    std::string m;
    // Each bad value is refused naming its key (or the tensor whose shape disagrees).
    m = moe_load_error(qwen3moe_spec(), "noexp", [](llm8::GgufWriter& w) {
        w.set("general.architecture", GgufValue::make_str("qwen3moe"));
        w.set("qwen3moe.expert_count", GgufValue::make_u32(0));
    });
    EXPECT_TRUE(has(m, "'qwen3moe.expert_count' = 0 is out of range")) << m;
    m = moe_load_error(qwen3moe_spec(), "used", [](llm8::GgufWriter& w) {
        w.set("qwen3moe.expert_used_count", GgufValue::make_u32(9));
    });
    EXPECT_TRUE(has(m, "'qwen3moe.expert_used_count' = 9 is out of range [1, 8]")) << m;
    m = moe_load_error(qwen3moe_spec(), "ffexp", [](llm8::GgufWriter& w) {
        w.set("qwen3moe.expert_feed_forward_length", GgufValue::make_u32(40));
    });
    EXPECT_TRUE(has(m,
                    "tensor 'blk.0.ffn_gate_exps.weight' has shape [64, 32, 8], expected "
                    "[64, 40, 8]"))
        << m;
    m = moe_load_error(deepseek2_lite_spec(), "gating", [](llm8::GgufWriter& w) {
        w.set("deepseek2.expert_gating_func", GgufValue::make_u32(3));
    });
    EXPECT_TRUE(has(m, "'deepseek2.expert_gating_func' = 3 is not supported")) << m;
    m = moe_load_error(deepseek2_lite_spec(), "groups", [](llm8::GgufWriter& w) {
        w.set("deepseek2.expert_group_count", GgufValue::make_u32(3));
        w.set("deepseek2.expert_group_used_count", GgufValue::make_u32(1));
    });
    EXPECT_TRUE(has(m, "expert_count 8 is not a multiple of expert_group_count 3")) << m;
    m = moe_load_error(deepseek2_lite_spec(), "shared", [](llm8::GgufWriter& w) {
        w.set("deepseek2.expert_shared_count", GgufValue::make_u32(3));
    });
    EXPECT_TRUE(has(m, "tensor 'blk.1.ffn_gate_shexp.weight' has shape")) << m;
    m = moe_load_error(deepseek2_lite_spec(), "lead", [](llm8::GgufWriter& w) {
        w.set("deepseek2.leading_dense_block_count", GgufValue::make_u32(2));
    });
    EXPECT_TRUE(has(m, "missing tensor 'blk.1.ffn_gate.weight'")) << m;
    m = moe_load_error(deepseek2_lite_spec(), "kvlora", [](llm8::GgufWriter& w) {
        w.set("deepseek2.attention.kv_lora_rank", GgufValue::make_u32(0));
    });
    EXPECT_TRUE(has(m, "'deepseek2.attention.kv_lora_rank' = 0 is out of range")) << m;
    TinySpec split = deepseek3_spec();
    m = moe_load_error(split, "keylen", [](llm8::GgufWriter& w) {
        w.set("deepseek2.attention.key_length", GgufValue::make_u32(48));
    });
    EXPECT_TRUE(has(m, "disagree with kv_lora_rank")) << m;
    m = moe_load_error(mixtral_spec(), "mixtral-used", [](llm8::GgufWriter& w) {
        w.set("llama.expert_used_count", GgufValue::make_u32(0));
    });
    EXPECT_TRUE(has(m, "'llama.expert_used_count' = 0 is out of range")) << m;
    m = moe_load_error(TinySpec{}, "qwen-lead", [](llm8::GgufWriter& w) {
        w.set("llama.leading_dense_block_count", GgufValue::make_u32(1));
        w.set("llama.expert_count", GgufValue::make_u32(4));
        w.set("llama.expert_used_count", GgufValue::make_u32(2));
    });
    EXPECT_TRUE(has(m, "'llama.leading_dense_block_count' is only supported for deepseek2")) << m;
    m = moe_load_error(TinySpec{}, "dense-used", [](llm8::GgufWriter& w) {
        w.set("llama.expert_used_count", GgufValue::make_u32(2));
    });
    EXPECT_TRUE(has(m, "'llama.expert_used_count' without 'llama.expert_count'")) << m;
}

TEST(MoeModelErrors, LatentAttentionRefusesTheInt8CacheAnd8BitModes) {
    llm8::ModelParams mp;
    mp.cache_type_k = mp.cache_type_v = "int8";
    std::string m = moe_load_error(deepseek2_lite_spec(), "ds-int8", nullptr, mp);
    EXPECT_NE(m.find("latent attention (deepseek2) runs with the plain cache"), std::string::npos)
        << m;
    mp = llm8::ModelParams();
    mp.attn = "sage";
    m = moe_load_error(deepseek2_lite_spec(), "ds-sage", nullptr, mp);
    EXPECT_NE(m.find("--attn f16 only"), std::string::npos) << m;
    // MoE models with ordinary attention take the INT8 cache.
    mp = llm8::ModelParams();
    mp.cache_type_k = mp.cache_type_v = "int8";
    EXPECT_EQ(moe_load_error(qwen3moe_spec(), "q3-int8", nullptr, mp), "(loaded)");
}

TEST(MoeModel, MultiTokenPredictionBlocksAreSkipped) {
    // DeepSeek-V3 files count their MTP block in block_count and say nextn_predict_layers; the
    // model proper is the blocks before it, so the logits equal those of the file without it.
    using llm8::GgufValue;
    const TinySpec s = deepseek2_lite_spec();
    auto w = llm8_test::build_tiny_model(s);
    const std::string plain = llm8_test::temp_path("ds-plain.gguf");
    w.write(plain);
    w.set("deepseek2.block_count", GgufValue::make_u32(uint32_t(s.n_layer + 1)));
    w.set("deepseek2.nextn_predict_layers", GgufValue::make_u32(1));
    const std::string mtp = llm8_test::temp_path("ds-mtp.gguf");
    w.write(mtp);
    auto a = llm8::Model::load({plain, 0});
    auto b = llm8::Model::load({mtp, 0});
    std::remove(plain.c_str());
    std::remove(mtp.c_str());
    EXPECT_EQ(b->n_layer(), s.n_layer);
    const std::vector<int32_t> toks = {1, 270, 5, 300};
    llm8::Session sa(a, {64, 64, 1}), sb(b, {64, 64, 1});
    sa.decode(toks);
    sb.decode(toks);
    for (int i = 0; i < a->n_vocab(); ++i) ASSERT_EQ(sa.logits()[i], sb.logits()[i]);
}
