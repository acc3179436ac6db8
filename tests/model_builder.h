// Builds small random-weight GGUF models of each supported architecture for the tests (their
// logits are compared with tests/reference_llama.h, never used for accuracy claims).
#pragma once
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/quants.h"

namespace llm8_test {

struct TinySpec {
    std::string arch = "llama";
    int n_embd = 64;
    int n_layer = 2;
    int n_head = 4;
    int n_head_kv = 2;
    int head_dim = 0;  // 0: n_embd / n_head (no key_length key written)
    int n_ff = 96;
    int n_ctx = 128;
    float rope_base = 10000.0f;
    llm8::GgmlType wtype = llm8::GgmlType::F32;
    bool tied = false;
    bool biases = false;   // qwen2 style
    bool qk_norm = false;  // qwen3 style
    uint32_t seed = 1;
};

// A SentencePiece-style vocab: <unk> <s> </s>, 256 byte tokens, and some pieces.
inline void add_tiny_vocab(llm8::GgufWriter& w, int n_pieces = 64) {
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        toks.push_back(buf);
        types.push_back(6);
    }
    const char* pieces[] = {"\xe2\x96\x81",
                            "e",
                            "t",
                            "a",
                            "o",
                            "n",
                            "\xe2\x96\x81"
                            "t",
                            "he",
                            "\xe2\x96\x81"
                            "a",
                            "in"};
    for (int i = 0; i < n_pieces; ++i) {
        std::string p = i < 10 ? pieces[i] : "\xe2\x96\x81w" + std::to_string(i);
        toks.push_back(p);
        types.push_back(1);
    }
    std::vector<float> scores(toks.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = -float(i);
    w.set("tokenizer.ggml.model", llm8::GgufValue::make_str("llama"));
    w.set("tokenizer.ggml.tokens", llm8::GgufValue::make_str_array(toks));
    w.set("tokenizer.ggml.scores", llm8::GgufValue::make_f32_array(scores));
    w.set("tokenizer.ggml.token_type", llm8::GgufValue::make_i32_array(types));
    w.set("tokenizer.ggml.bos_token_id", llm8::GgufValue::make_u32(1));
    w.set("tokenizer.ggml.eos_token_id", llm8::GgufValue::make_u32(2));
    w.set("tokenizer.ggml.unknown_token_id", llm8::GgufValue::make_u32(0));
}

inline int tiny_vocab_size(int n_pieces = 64) {
    return 3 + 256 + n_pieces;
}

inline llm8::GgufWriter build_tiny_model(const TinySpec& s) {
    using llm8::GgufValue;
    llm8::GgufWriter w;
    const std::string a = s.arch;
    const int hd = s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head;
    w.set("general.architecture", GgufValue::make_str(a));
    w.set("general.name", GgufValue::make_str("tiny-" + a));
    w.set(a + ".context_length", GgufValue::make_u32(uint32_t(s.n_ctx)));
    w.set(a + ".embedding_length", GgufValue::make_u32(uint32_t(s.n_embd)));
    w.set(a + ".block_count", GgufValue::make_u32(uint32_t(s.n_layer)));
    w.set(a + ".feed_forward_length", GgufValue::make_u32(uint32_t(s.n_ff)));
    w.set(a + ".attention.head_count", GgufValue::make_u32(uint32_t(s.n_head)));
    w.set(a + ".attention.head_count_kv", GgufValue::make_u32(uint32_t(s.n_head_kv)));
    if (s.head_dim > 0) w.set(a + ".attention.key_length", GgufValue::make_u32(uint32_t(hd)));
    w.set(a + ".rope.freq_base", GgufValue::make_f32(s.rope_base));
    w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::make_f32(1e-6f));
    add_tiny_vocab(w);
    const int V = tiny_vocab_size();

    std::mt19937 rng(s.seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    auto add = [&](const std::string& name, std::vector<int64_t> ne, float scale, bool matrix) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = nd(rng) * scale;
        if (!matrix) {  // norms near 1, biases small
            w.add_tensor(name, llm8::GgmlType::F32, ne, v.data(), v.size() * 4);
            return;
        }
        const size_t rb = llm8::row_size(s.wtype, ne[0]);
        std::vector<uint8_t> q(rb * size_t(n / ne[0]));
        for (int64_t r = 0; r < n / ne[0]; ++r)
            llm8::quantize_row(s.wtype, v.data() + r * ne[0], q.data() + size_t(r) * rb, ne[0]);
        w.add_tensor(name, s.wtype, ne, q.data(), q.size());
    };
    auto add_norm = [&](const std::string& name, int64_t n) {
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = 1.0f + 0.1f * nd(rng);
        w.add_tensor(name, llm8::GgmlType::F32, {n}, v.data(), v.size() * 4);
    };
    const int64_t E = s.n_embd, Q = int64_t(s.n_head) * hd, KV = int64_t(s.n_head_kv) * hd;
    const float ws = 1.0f / std::sqrt(float(E));
    add("token_embd.weight", {E, V}, 1.0f, true);
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add_norm(p + "attn_norm.weight", E);
        add(p + "attn_q.weight", {E, Q}, ws, true);
        add(p + "attn_k.weight", {E, KV}, ws, true);
        add(p + "attn_v.weight", {E, KV}, ws, true);
        if (s.biases) {
            add(p + "attn_q.bias", {Q}, 0.1f, false);
            add(p + "attn_k.bias", {KV}, 0.1f, false);
            add(p + "attn_v.bias", {KV}, 0.1f, false);
        }
        if (s.qk_norm) {
            add_norm(p + "attn_q_norm.weight", hd);
            add_norm(p + "attn_k_norm.weight", hd);
        }
        add(p + "attn_output.weight", {Q, E}, 1.0f / std::sqrt(float(Q)), true);
        add_norm(p + "ffn_norm.weight", E);
        add(p + "ffn_gate.weight", {E, s.n_ff}, ws, true);
        add(p + "ffn_up.weight", {E, s.n_ff}, ws, true);
        add(p + "ffn_down.weight", {s.n_ff, E}, 1.0f / std::sqrt(float(s.n_ff)), true);
    }
    add_norm("output_norm.weight", E);
    if (!s.tied) add("output.weight", {E, V}, ws, true);
    return w;
}

inline std::string temp_path(const std::string& name) {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/llm8-test-" + std::to_string(::getpid()) +
           "-" + name;
}

}  // namespace llm8_test
