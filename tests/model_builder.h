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
    // Mixture of experts (n_expert 0: dense). Keys written only when set (-1: absent).
    int n_expert = 0;
    int n_expert_used = 0;
    int n_ff_exp = 0;         // 0: no expert_feed_forward_length key (llama: n_ff)
    int n_expert_shared = 0;  // deepseek2
    int n_dense_lead = 0;     // deepseek2
    int gating = -1;          // expert_gating_func
    int weights_norm = -1;    // expert_weights_norm (0/1)
    float weights_scale = 0;  // expert_weights_scale (0: absent)
    bool probs_bias = false;  // exp_probs_b.bias
    int n_groups = 0, n_groups_used = 0;
    // deepseek2 latent attention: head size nope + rope, values v_head.
    int q_lora_rank = 0, kv_lora_rank = 0, qk_rope = 0, qk_nope = 0, v_head = 0;
    bool kv_b_split = false;  // attn_k_b / attn_v_b and key_length_mla (newer files)
    float yarn_factor = 0;    // rope.scaling.type yarn with this factor
    int yarn_orig_ctx = 0;
    float yarn_log_mul = 0;  // deepseek2 yarn_log_multiplier (as in the file: 0.1 * mscale)
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
    const bool mla = s.kv_lora_rank > 0;
    if (s.n_expert > 0) {
        w.set(a + ".expert_count", GgufValue::make_u32(uint32_t(s.n_expert)));
        w.set(a + ".expert_used_count", GgufValue::make_u32(uint32_t(s.n_expert_used)));
        if (s.n_ff_exp > 0)
            w.set(a + ".expert_feed_forward_length", GgufValue::make_u32(uint32_t(s.n_ff_exp)));
        if (s.n_expert_shared > 0)
            w.set(a + ".expert_shared_count", GgufValue::make_u32(uint32_t(s.n_expert_shared)));
        if (s.n_dense_lead > 0)
            w.set(a + ".leading_dense_block_count", GgufValue::make_u32(uint32_t(s.n_dense_lead)));
        if (s.gating >= 0)
            w.set(a + ".expert_gating_func", GgufValue::make_u32(uint32_t(s.gating)));
        if (s.weights_norm >= 0)
            w.set(a + ".expert_weights_norm", GgufValue::make_bool(s.weights_norm != 0));
        if (s.weights_scale > 0)
            w.set(a + ".expert_weights_scale", GgufValue::make_f32(s.weights_scale));
        if (s.n_groups > 0) {
            w.set(a + ".expert_group_count", GgufValue::make_u32(uint32_t(s.n_groups)));
            w.set(a + ".expert_group_used_count", GgufValue::make_u32(uint32_t(s.n_groups_used)));
        }
    }
    if (mla) {
        if (s.q_lora_rank > 0)
            w.set(a + ".attention.q_lora_rank", GgufValue::make_u32(uint32_t(s.q_lora_rank)));
        w.set(a + ".attention.kv_lora_rank", GgufValue::make_u32(uint32_t(s.kv_lora_rank)));
        w.set(a + ".rope.dimension_count", GgufValue::make_u32(uint32_t(s.qk_rope)));
        if (s.kv_b_split) {
            w.set(a + ".attention.key_length",
                  GgufValue::make_u32(uint32_t(s.kv_lora_rank + s.qk_rope)));
            w.set(a + ".attention.value_length", GgufValue::make_u32(uint32_t(s.kv_lora_rank)));
            w.set(a + ".attention.key_length_mla",
                  GgufValue::make_u32(uint32_t(s.qk_nope + s.qk_rope)));
            w.set(a + ".attention.value_length_mla", GgufValue::make_u32(uint32_t(s.v_head)));
        } else {
            w.set(a + ".attention.key_length",
                  GgufValue::make_u32(uint32_t(s.qk_nope + s.qk_rope)));
            w.set(a + ".attention.value_length", GgufValue::make_u32(uint32_t(s.v_head)));
        }
    }
    if (s.yarn_factor > 0) {
        w.set(a + ".rope.scaling.type", GgufValue::make_str("yarn"));
        w.set(a + ".rope.scaling.factor", GgufValue::make_f32(s.yarn_factor));
        if (s.yarn_orig_ctx > 0)
            w.set(a + ".rope.scaling.original_context_length",
                  GgufValue::make_u32(uint32_t(s.yarn_orig_ctx)));
        if (s.yarn_log_mul > 0)
            w.set(a + ".rope.scaling.yarn_log_multiplier", GgufValue::make_f32(s.yarn_log_mul));
    }
    w.set(a + ".block_count", GgufValue::make_u32(uint32_t(s.n_layer)));
    w.set(a + ".feed_forward_length", GgufValue::make_u32(uint32_t(s.n_ff)));
    w.set(a + ".attention.head_count", GgufValue::make_u32(uint32_t(s.n_head)));
    w.set(a + ".attention.head_count_kv", GgufValue::make_u32(uint32_t(s.n_head_kv)));
    if (s.head_dim > 0 && !mla)
        w.set(a + ".attention.key_length", GgufValue::make_u32(uint32_t(hd)));
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
        // Rows that do not fill the type's blocks stay F16 (as llama-quantize falls back).
        const llm8::GgmlType wt =
            ne[0] % llm8::type_traits(s.wtype)->block_size == 0 ? s.wtype : llm8::GgmlType::F16;
        const size_t rb = llm8::row_size(wt, ne[0]);
        std::vector<uint8_t> q(rb * size_t(n / ne[0]));
        for (int64_t r = 0; r < n / ne[0]; ++r)
            llm8::quantize_row(wt, v.data() + r * ne[0], q.data() + size_t(r) * rb, ne[0]);
        w.add_tensor(name, wt, ne, q.data(), q.size());
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
        if (mla) {
            const int64_t H = s.n_head, R = s.kv_lora_rank, khd = s.qk_nope + s.qk_rope;
            if (s.q_lora_rank > 0) {
                add(p + "attn_q_a.weight", {E, s.q_lora_rank}, ws, true);
                add_norm(p + "attn_q_a_norm.weight", s.q_lora_rank);
                add(p + "attn_q_b.weight", {s.q_lora_rank, H * khd},
                    1.0f / std::sqrt(float(s.q_lora_rank)), true);
            } else {
                add(p + "attn_q.weight", {E, H * khd}, ws, true);
            }
            add(p + "attn_kv_a_mqa.weight", {E, R + s.qk_rope}, ws, true);
            add_norm(p + "attn_kv_a_norm.weight", R);
            const float rs = 1.0f / std::sqrt(float(R));
            if (s.kv_b_split) {
                add(p + "attn_k_b.weight", {s.qk_nope, R, H}, 1.0f / std::sqrt(float(s.qk_nope)),
                    true);
                add(p + "attn_v_b.weight", {R, s.v_head, H}, rs, true);
            } else {
                add(p + "attn_kv_b.weight", {R, H * (s.qk_nope + s.v_head)}, rs, true);
            }
            add(p + "attn_output.weight", {H * s.v_head, E}, 1.0f / std::sqrt(float(H * s.v_head)),
                true);
        } else {
            add(p + "attn_q.weight", {E, Q}, ws, true);
            add(p + "attn_k.weight", {E, KV}, ws, true);
            add(p + "attn_v.weight", {E, KV}, ws, true);
        }
        if (s.biases) {
            add(p + "attn_q.bias", {Q}, 0.1f, false);
            add(p + "attn_k.bias", {KV}, 0.1f, false);
            add(p + "attn_v.bias", {KV}, 0.1f, false);
        }
        if (s.qk_norm) {
            add_norm(p + "attn_q_norm.weight", hd);
            add_norm(p + "attn_k_norm.weight", hd);
        }
        if (!mla) add(p + "attn_output.weight", {Q, E}, 1.0f / std::sqrt(float(Q)), true);
        add_norm(p + "ffn_norm.weight", E);
        if (s.n_expert > 0 && l >= s.n_dense_lead) {
            const int64_t X = s.n_expert, F = s.n_ff_exp > 0 ? s.n_ff_exp : s.n_ff;
            // The router in F32, as llama.cpp's converters keep it.
            add(p + "ffn_gate_inp.weight", {E, X}, 2.0f * ws, false);
            add(p + "ffn_gate_exps.weight", {E, F, X}, ws, true);
            add(p + "ffn_up_exps.weight", {E, F, X}, ws, true);
            add(p + "ffn_down_exps.weight", {F, E, X}, 1.0f / std::sqrt(float(F)), true);
            if (s.probs_bias) add(p + "exp_probs_b.bias", {X}, 0.05f, false);
            if (s.n_expert_shared > 0) {
                const int64_t S = F * s.n_expert_shared;
                add(p + "ffn_gate_shexp.weight", {E, S}, ws, true);
                add(p + "ffn_up_shexp.weight", {E, S}, ws, true);
                add(p + "ffn_down_shexp.weight", {S, E}, 1.0f / std::sqrt(float(S)), true);
            }
        } else {
            add(p + "ffn_gate.weight", {E, s.n_ff}, ws, true);
            add(p + "ffn_up.weight", {E, s.n_ff}, ws, true);
            add(p + "ffn_down.weight", {s.n_ff, E}, 1.0f / std::sqrt(float(s.n_ff)), true);
        }
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
