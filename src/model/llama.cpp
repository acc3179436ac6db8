// Loading the Llama family from GGUF: hparams from "<arch>.*" metadata, tensors by llama.cpp's
// names, shapes checked against the hparams so that a model whose tensors disagree with its
// metadata is refused at load instead of reading out of bounds later.
#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "common/error.h"

namespace llm8 {

namespace {

int get_pos_int(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
    const int64_t v = f.get_int(key);
    if (v < lo || v > hi)
        fail(ErrorKind::format, f.path() + ": metadata '" + key + "' = " + std::to_string(v) +
                                    " is out of range [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
    return int(v);
}

// A float key with a default, refused with the key, the value and the range when outside
// [lo, hi] (NaN and infinities included).
double get_float_in(const GgufFile& f, const std::string& key, double def, double lo, double hi) {
    const double v = f.get_float(key, def);
    if (!(v >= lo && v <= hi)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "' = %g is out of range [%g, %g]", v, lo, hi);
        fail(ErrorKind::format, f.path() + ": metadata '" + key + buf);
    }
    return v;
}

const GgufTensorInfo& need_tensor(const GgufFile& f, const std::string& name) {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) fail(ErrorKind::format, f.path() + ": missing tensor '" + name + "'");
    return *t;
}

void check_shape(const GgufFile& f, const GgufTensorInfo& t, std::vector<int64_t> ne) {
    std::vector<int64_t> have = t.ne;
    while (have.size() > ne.size() && have.back() == 1) have.pop_back();
    if (have != ne) {
        auto fmt = [](const std::vector<int64_t>& v) {
            std::string s = "[";
            for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
            return s + "]";
        };
        fail(ErrorKind::format, f.path() + ": tensor '" + t.name + "' has shape " + fmt(t.ne) +
                                    ", expected " + fmt(ne));
    }
}

void check_type(const GgufFile& f, const GgufTensorInfo& t) {
    const TypeTraits* tt = type_traits(t.type);
    if (!tt || !tt->supported)
        fail(ErrorKind::unsupported, f.path() + ": tensor '" + t.name + "' has type " +
                                         (tt ? tt->name : "unknown") +
                                         ", which llm8 does not support yet (supported: f32, f16, "
                                         "bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, "
                                         "q5_K, q6_K, iq4_nl, iq4_xs)");
}

WeightView matrix(const GgufFile& f, const std::string& name, int64_t ne0, int64_t ne1) {
    const GgufTensorInfo& t = need_tensor(f, name);
    check_type(f, t);
    check_shape(f, t, {ne0, ne1});
    WeightView w;
    w.type = t.type;
    w.ne0 = ne0;
    w.ne1 = ne1;
    w.row_bytes = row_size(t.type, ne0);
    w.data = t.data;
    w.name = name;
    return w;
}

// A 3-D tensor [ne0, ne1, ne2] (experts, or per-head projections) as one matrix of ne1 * ne2
// rows; WeightView::rows picks one slice.
WeightView matrix3(const GgufFile& f, const std::string& name, int64_t ne0, int64_t ne1,
                   int64_t ne2) {
    const GgufTensorInfo& t = need_tensor(f, name);
    check_type(f, t);
    check_shape(f, t, {ne0, ne1, ne2});
    WeightView w;
    w.type = t.type;
    w.ne0 = ne0;
    w.ne1 = ne1 * ne2;
    w.row_bytes = row_size(t.type, ne0);
    w.data = t.data;
    w.name = name;
    return w;
}

std::vector<float> vec(const GgufFile& f, const std::string& name, int64_t n) {
    const GgufTensorInfo& t = need_tensor(f, name);
    check_type(f, t);
    check_shape(f, t, {n});
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, out.data(), n);
    return out;
}

std::vector<float> opt_vec(const GgufFile& f, const std::string& name, int64_t n) {
    return f.find_tensor(name) ? vec(f, name, n) : std::vector<float>();
}

// deepseek2's head sizes. Files converted since llama.cpp's MLA support say key_length =
// kv_lora_rank + rope and value_length = kv_lora_rank (the latent as MQA) and give the per-head
// sizes in key_length_mla / value_length_mla; older files give the per-head sizes directly.
void read_mla_dims(const GgufFile& f, HParams& hp) {
    const std::string& a = hp.arch_name;
    hp.q_lora_rank = f.has(a + ".attention.q_lora_rank")
                         ? get_pos_int(f, a + ".attention.q_lora_rank", 0, 1 << 16)
                         : 0;
    if (!f.has(a + ".attention.kv_lora_rank"))
        fail(ErrorKind::format, f.path() + ": deepseek2 needs metadata '" + a +
                                    ".attention.kv_lora_rank' (the latent KV size)");
    hp.kv_lora_rank = get_pos_int(f, a + ".attention.kv_lora_rank", 1, 1 << 16);
    if (!f.has(a + ".rope.dimension_count"))
        fail(ErrorKind::format, f.path() + ": deepseek2 needs metadata '" + a +
                                    ".rope.dimension_count' (the decoupled RoPE dims)");
    hp.n_rot = get_pos_int(f, a + ".rope.dimension_count", 2, 1024);
    const int kl = get_pos_int(f, a + ".attention.key_length", 1, 1 << 16);
    const int vl = get_pos_int(f, a + ".attention.value_length", 1, 1 << 16);
    if (f.has(a + ".attention.key_length_mla")) {
        hp.mla_kv_b_split = true;
        hp.head_dim = get_pos_int(f, a + ".attention.key_length_mla", 1, 1024);
        hp.v_head_dim = get_pos_int(f, a + ".attention.value_length_mla", 1, 1024);
        if (kl != hp.kv_lora_rank + hp.n_rot || vl != hp.kv_lora_rank)
            fail(ErrorKind::format,
                 f.path() + ": metadata '" + a + ".attention.key_length' = " + std::to_string(kl) +
                     " and 'value_length' = " + std::to_string(vl) +
                     " disagree with kv_lora_rank " + std::to_string(hp.kv_lora_rank) + " + rope " +
                     std::to_string(hp.n_rot) +
                     " (files with key_length_mla store "
                     "the latent sizes there)");
    } else {
        hp.head_dim = kl;
        hp.v_head_dim = vl;
    }
    if (hp.head_dim <= hp.n_rot)
        fail(ErrorKind::format, f.path() + ": deepseek2 key length " + std::to_string(hp.head_dim) +
                                    " must exceed rope.dimension_count " +
                                    std::to_string(hp.n_rot) + " (it is nope + rope dims)");
    hp.n_head_kv = 1;  // the latent is one KV head shared by every query head
}

// YaRN (see RopeYarn): llama.cpp's defaults (ext_factor 1, beta_fast 32, beta_slow 1, the
// original context from the file) and its magnitude: the rotated dims are scaled by
// 1 + 0.1 ln(factor), except in deepseek2, whose yarn_log_multiplier moves the scaling into
// the softmax scale (read_hparams) and leaves the rotation unscaled.
void read_yarn(const GgufFile& f, HParams& hp) {
    const std::string& a = hp.arch_name;
    const double factor = get_float_in(f, a + ".rope.scaling.factor", 1.0, 1.0, 1024.0);
    hp.rope_freq_scale = float(1.0 / factor);
    const int n_orig = f.has(a + ".rope.scaling.original_context_length")
                           ? get_pos_int(f, a + ".rope.scaling.original_context_length", 1, 1 << 24)
                           : hp.n_ctx_train;
    const double beta_fast = get_float_in(f, a + ".rope.scaling.yarn_beta_fast", 32.0, 1e-3, 1e4);
    const double beta_slow = get_float_in(f, a + ".rope.scaling.yarn_beta_slow", 1.0, 1e-3, 1e4);
    hp.yarn.ext_factor = float(get_float_in(f, a + ".rope.scaling.yarn_ext_factor", 1.0, 0.0, 1.0));
    // The pair index at which a dimension completes n_orig / (beta * 2 pi) rotations.
    auto corr = [&](double beta) {
        return hp.n_rot * std::log(n_orig / (beta * 2.0 * M_PI)) /
               (2.0 * std::log(double(hp.rope_freq_base)));
    };
    hp.yarn.corr_low = float(std::max(0.0, std::floor(corr(beta_fast))));
    hp.yarn.corr_high = float(std::min(double(hp.n_rot - 1), std::ceil(corr(beta_slow))));
    const bool log_mul = f.has(a + ".rope.scaling.yarn_log_multiplier");
    if (log_mul && hp.arch != Arch::deepseek2)
        fail(ErrorKind::unsupported, f.path() + ": metadata '" + a +
                                         ".rope.scaling.yarn_log_multiplier' is only supported "
                                         "for deepseek2");
    const double attn_factor =
        get_float_in(f, a + ".rope.scaling.attn_factor", 1.0, 1.0 / 1024.0, 1024.0);
    const double m = (log_mul || hp.yarn.ext_factor == 0.0f) ? 1.0 : 1.0 + 0.1 * std::log(factor);
    hp.yarn.mscale = float(m * attn_factor);
}

// Mixture-of-experts hyperparameters: none of them without expert_count; with it, every one the
// architecture needs, checked against each other. Defaults follow llama.cpp: Mixtral and
// Qwen3-MoE renormalize the top-k weights, deepseek2 only when expert_weights_norm says so.
void read_moe(const GgufFile& f, HParams& hp) {
    const std::string& a = hp.arch_name;
    const std::string k_count = a + ".expert_count";
    if (!f.has(k_count)) {
        if (hp.arch == Arch::qwen3moe || hp.arch == Arch::deepseek2)
            fail(ErrorKind::format, f.path() + ": " + a + " needs metadata '" + k_count + "'");
        for (const char* k : {".expert_used_count", ".expert_feed_forward_length"})
            if (f.has(a + k))
                fail(ErrorKind::format, f.path() + ": metadata '" + a + k + "' without '" +
                                            k_count + "': is the file complete?");
        return;
    }
    if (hp.arch == Arch::qwen2 || hp.arch == Arch::qwen3)
        fail(ErrorKind::unsupported, f.path() + ": metadata '" + k_count + "' in a " + a +
                                         " file: experts are supported for llama (Mixtral), "
                                         "qwen3moe and deepseek2");
    hp.n_expert = get_pos_int(f, k_count, 1, 4096);
    const std::string k_used = a + ".expert_used_count";
    if (!f.has(k_used))
        fail(ErrorKind::format, f.path() + ": missing metadata '" + k_used +
                                    "' (experts per token) beside '" + k_count + "'");
    hp.n_expert_used = get_pos_int(f, k_used, 1, hp.n_expert);
    const std::string k_ff = a + ".expert_feed_forward_length";
    if (hp.arch == Arch::llama) {  // Mixtral: each expert is a feed_forward_length FFN
        hp.n_ff_exp = f.has(k_ff) ? get_pos_int(f, k_ff, 1, 1 << 24) : hp.n_ff;
    } else {
        if (!f.has(k_ff))
            fail(ErrorKind::format,
                 f.path() + ": missing metadata '" + k_ff + "' (the FFN width of one expert)");
        hp.n_ff_exp = get_pos_int(f, k_ff, 1, 1 << 24);
    }
    hp.expert_weights_norm = f.get_bool(a + ".expert_weights_norm", hp.arch != Arch::deepseek2);
    const double scale = get_float_in(f, a + ".expert_weights_scale", 0.0, 0.0, 1e4);
    hp.expert_weights_scale = scale == 0.0 ? 1.0f : float(scale);  // 0: not given
    const int64_t gating = f.get_int(a + ".expert_gating_func", 0);
    if (gating == 0 || gating == 1)
        hp.expert_gating = ExpertGating::softmax;
    else if (gating == 2)
        hp.expert_gating = ExpertGating::sigmoid;
    else
        fail(ErrorKind::unsupported, f.path() + ": metadata '" + a +
                                         ".expert_gating_func' = " + std::to_string(gating) +
                                         " is not supported (1 softmax, 2 sigmoid)");
    if (hp.arch == Arch::deepseek2) {
        hp.n_expert_shared = f.has(a + ".expert_shared_count")
                                 ? get_pos_int(f, a + ".expert_shared_count", 0, 64)
                                 : 0;
        hp.n_layer_dense_lead =
            f.has(a + ".leading_dense_block_count")
                ? get_pos_int(f, a + ".leading_dense_block_count", 0, hp.n_layer)
                : 0;
    } else {
        for (const char* k : {".expert_shared_count", ".leading_dense_block_count"})
            if (f.has(a + k) && f.get_int(a + k) != 0)
                fail(ErrorKind::unsupported,
                     f.path() + ": metadata '" + a + k + "' is only supported for deepseek2");
    }
    if (f.has(a + ".expert_group_count")) {
        hp.n_expert_groups = get_pos_int(f, a + ".expert_group_count", 1, hp.n_expert);
        hp.n_group_used = get_pos_int(f, a + ".expert_group_used_count", 1, hp.n_expert_groups);
        if (hp.n_expert % hp.n_expert_groups != 0)
            fail(ErrorKind::format, f.path() + ": expert_count " + std::to_string(hp.n_expert) +
                                        " is not a multiple of expert_group_count " +
                                        std::to_string(hp.n_expert_groups));
        if (hp.n_expert / hp.n_expert_groups < 2)
            fail(ErrorKind::format, f.path() +
                                        ": group-limited routing needs at least two "
                                        "experts per group (expert_group_count)");
        if (hp.n_expert_used > hp.n_group_used * (hp.n_expert / hp.n_expert_groups))
            fail(ErrorKind::format,
                 f.path() + ": expert_used_count " + std::to_string(hp.n_expert_used) +
                     " exceeds the experts of the expert_group_used_count groups");
        if (hp.n_expert_groups == 1) hp.n_expert_groups = hp.n_group_used = 0;
    }
}

}  // namespace

HParams read_hparams(const GgufFile& f) {
    HParams hp;
    hp.arch_name = f.get_str("general.architecture");
    const std::string& a = hp.arch_name;
    if (a == "llama" || a == "mistral") {
        hp.arch = Arch::llama;
        hp.rope = RopeLayout::norm;
    } else if (a == "qwen2") {
        hp.arch = Arch::qwen2;
        hp.rope = RopeLayout::neox;
    } else if (a == "qwen3") {
        hp.arch = Arch::qwen3;
        hp.rope = RopeLayout::neox;
    } else if (a == "qwen3moe") {
        hp.arch = Arch::qwen3moe;
        hp.rope = RopeLayout::neox;
    } else if (a == "deepseek2") {
        // llama.cpp rotates adjacent pairs for deepseek2 (its converter does not permute).
        hp.arch = Arch::deepseek2;
        hp.rope = RopeLayout::norm;
        hp.mla = true;
    } else {
        fail(ErrorKind::unsupported,
             f.path() + ": unknown architecture '" + a +
                 "' (llm8 runs llama, mistral, qwen2, qwen3, qwen3moe, deepseek2)");
    }
    const int64_t kMax = int64_t(1) << 24;
    hp.n_embd = get_pos_int(f, a + ".embedding_length", 1, kMax);
    hp.n_layer = get_pos_int(f, a + ".block_count", 1, 4096);
    if (hp.arch == Arch::deepseek2 && f.has(a + ".nextn_predict_layers")) {
        // DeepSeek-V3's multi-token-prediction blocks come last and count in block_count; the
        // model proper stops before them (llama.cpp runs them only for speculative drafts).
        const int nextn = get_pos_int(f, a + ".nextn_predict_layers", 0, hp.n_layer - 1);
        hp.n_layer -= nextn;
    }
    hp.n_head = get_pos_int(f, a + ".attention.head_count", 1, 4096);
    hp.n_head_kv = f.has(a + ".attention.head_count_kv")
                       ? get_pos_int(f, a + ".attention.head_count_kv", 1, 4096)
                       : hp.n_head;
    if (hp.n_head % hp.n_head_kv != 0)
        fail(ErrorKind::format, f.path() + ": head_count " + std::to_string(hp.n_head) +
                                    " is not a multiple of head_count_kv " +
                                    std::to_string(hp.n_head_kv) + " (metadata '" + a +
                                    ".attention.head_count*'): each KV head must serve a whole "
                                    "group of query heads");
    hp.n_ff = get_pos_int(f, a + ".feed_forward_length", 1, kMax);
    hp.n_ctx_train =
        f.has(a + ".context_length") ? get_pos_int(f, a + ".context_length", 1, kMax) : 2048;
    if (hp.mla) {
        read_mla_dims(f, hp);
    } else if (f.has(a + ".attention.key_length")) {
        hp.head_dim = get_pos_int(f, a + ".attention.key_length", 1, 1024);
        if (f.has(a + ".attention.value_length") &&
            f.get_int(a + ".attention.value_length") != hp.head_dim)
            fail(ErrorKind::unsupported,
                 f.path() + ": key_length != value_length is not supported");
    } else {
        if (hp.n_embd % hp.n_head != 0)
            fail(ErrorKind::format, f.path() + ": metadata '" + a + ".embedding_length' = " +
                                        std::to_string(hp.n_embd) + " is not a multiple of '" + a +
                                        ".attention.head_count' = " + std::to_string(hp.n_head) +
                                        " (and no key_length gives the head size)");
        hp.head_dim = hp.n_embd / hp.n_head;
    }
    if (!hp.mla)
        hp.n_rot = f.has(a + ".rope.dimension_count")
                       ? get_pos_int(f, a + ".rope.dimension_count", 2, hp.head_dim)
                       : hp.head_dim;
    if (hp.n_rot % 2) fail(ErrorKind::format, f.path() + ": rope.dimension_count must be even");
    // Real models use 1e-6 or 1e-5; the range leaves room for any sane value and catches
    // garbage (0, negative, infinite, NaN, or large enough to flatten every activation).
    hp.rms_eps = float(get_float_in(f, a + ".attention.layer_norm_rms_epsilon", 1e-5, 1e-12, 1e-2));
    hp.rope_freq_base = float(get_float_in(f, a + ".rope.freq_base", 10000.0, 1.0, 1e12));
    if (hp.rope_freq_base == 1.0f)
        fail(ErrorKind::format,
             f.path() + ": metadata '" + a + ".rope.freq_base' = 1 makes every RoPE frequency 1");
    const std::string scaling = f.get_str(a + ".rope.scaling.type", "none");
    if (scaling == "linear") {
        const double factor =
            get_float_in(f, a + ".rope.scaling.factor", 1.0, 1.0 / 1024.0, 1024.0);
        hp.rope_freq_scale = float(1.0 / factor);
    } else if (scaling == "yarn") {
        read_yarn(f, hp);
    } else if (scaling != "none") {
        fail(ErrorKind::unsupported, f.path() + ": rope scaling '" + scaling +
                                         "' is not supported yet (none, linear, yarn)");
    }
    if (f.has(a + ".rope.scale_linear"))  // older files
        hp.rope_freq_scale =
            float(1.0 / get_float_in(f, a + ".rope.scale_linear", 1.0, 1.0 / 1024.0, 1024.0));
    if (hp.mla) {
        // llama.cpp's deepseek2 softmax scale: mscale^2 / sqrt(nope + rope), mscale = the RoPE
        // magnitude times 1 + 0.1 * log_mul * ln(factor) (1 without YaRN).
        double mscale = hp.yarn.mscale;
        if (hp.yarn.ext_factor != 0.0f) {
            const double log_mul =
                get_float_in(f, a + ".rope.scaling.yarn_log_multiplier", 0.0, 0.0, 10.0) / 0.1;
            mscale *= 1.0 + 0.1 * log_mul * std::log(1.0 / double(hp.rope_freq_scale));
        }
        hp.attn_scale = float(mscale * mscale / std::sqrt(double(hp.head_dim)));
    }
    read_moe(f, hp);
    return hp;
}

namespace {
void load_attention_layer(const GgufFile& f, const HParams& hp, const std::string& p,
                          LayerWeights& L);
void load_mla_layer(const GgufFile& f, const HParams& hp, const std::string& p, LayerWeights& L);
void load_moe_layer(const GgufFile& f, const HParams& hp, const std::string& p, LayerWeights& L);
}  // namespace

std::shared_ptr<LlamaModel> load_llama(std::shared_ptr<const GgufFile> file) {
    const GgufFile& f = *file;
    auto m = std::make_shared<LlamaModel>();
    m->file = file;
    m->hp = read_hparams(f);
    m->vocab = Vocab::from_gguf(f);
    HParams& hp = m->hp;
    m->name = f.get_str("general.name", "");
    if (m->name.empty()) {
        m->name = f.path();
        const size_t slash = m->name.find_last_of('/');
        if (slash != std::string::npos) m->name = m->name.substr(slash + 1);
    }

    const GgufTensorInfo& emb = need_tensor(f, "token_embd.weight");
    if (emb.ne.size() != 2 || emb.ne[0] != hp.n_embd)
        fail(ErrorKind::format, f.path() + ": token_embd.weight must be [n_embd, n_vocab]");
    if (emb.ne[1] > std::numeric_limits<int32_t>::max())  // token ids are int32
        fail(ErrorKind::format, f.path() + ": token_embd.weight has " + std::to_string(emb.ne[1]) +
                                    " rows, more than int32 token ids can address");
    hp.n_vocab = int(emb.ne[1]);
    if (hp.n_vocab != m->vocab->n_tokens())
        fail(ErrorKind::format, f.path() + ": token_embd has " + std::to_string(hp.n_vocab) +
                                    " rows but the vocabulary has " +
                                    std::to_string(m->vocab->n_tokens()) + " tokens");
    m->tok_embd = matrix(f, "token_embd.weight", hp.n_embd, hp.n_vocab);
    m->output_norm = vec(f, "output_norm.weight", hp.n_embd);
    if (f.find_tensor("output.weight")) {
        m->output = matrix(f, "output.weight", hp.n_embd, hp.n_vocab);
    } else {
        m->output = m->tok_embd;
        m->tied_output = true;
    }
    if (f.find_tensor("rope_freqs.weight"))
        m->rope_freq_factors = vec(f, "rope_freqs.weight", hp.n_rot / 2);

    const int64_t E = hp.n_embd, F = hp.n_ff;
    m->layers.resize(size_t(hp.n_layer));
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        LayerWeights& L = m->layers[size_t(il)];
        L.attn_norm = vec(f, p + "attn_norm.weight", E);
        if (hp.mla)
            load_mla_layer(f, hp, p, L);
        else
            load_attention_layer(f, hp, p, L);
        L.ffn_norm = vec(f, p + "ffn_norm.weight", E);
        if (hp.is_moe_layer(il)) {
            load_moe_layer(f, hp, p, L);
        } else {
            if (hp.n_expert > 0 && hp.arch == Arch::llama && f.find_tensor(p + "ffn_gate.0.weight"))
                fail(ErrorKind::unsupported,
                     f.path() + ": tensor '" + p +
                         "ffn_gate.0.weight': per-expert 2-D tensors are the old Mixtral GGUF "
                         "layout (before llama.cpp merged them into ffn_*_exps); convert the model "
                         "again with a current llama.cpp");
            L.w_gate = matrix(f, p + "ffn_gate.weight", E, F);
            L.w_up = matrix(f, p + "ffn_up.weight", E, F);
            L.w_down = matrix(f, p + "ffn_down.weight", F, E);
        }
    }
    return m;
}

namespace {

void load_attention_layer(const GgufFile& f, const HParams& hp, const std::string& p,
                          LayerWeights& L) {
    const int64_t E = hp.n_embd, Q = hp.q_dim(), KV = hp.kv_dim();
    L.wq = matrix(f, p + "attn_q.weight", E, Q);
    L.wk = matrix(f, p + "attn_k.weight", E, KV);
    L.wv = matrix(f, p + "attn_v.weight", E, KV);
    L.wo = matrix(f, p + "attn_output.weight", Q, E);
    if (hp.arch == Arch::qwen2) {
        L.bq = vec(f, p + "attn_q.bias", Q);
        L.bk = vec(f, p + "attn_k.bias", KV);
        L.bv = vec(f, p + "attn_v.bias", KV);
    } else {  // llama files may carry biases too (e.g. some fine-tunes): use them if present
        L.bq = opt_vec(f, p + "attn_q.bias", Q);
        L.bk = opt_vec(f, p + "attn_k.bias", KV);
        L.bv = opt_vec(f, p + "attn_v.bias", KV);
    }
    if (hp.arch == Arch::qwen3 || hp.arch == Arch::qwen3moe) {
        L.q_norm = vec(f, p + "attn_q_norm.weight", hp.head_dim);
        L.k_norm = vec(f, p + "attn_k_norm.weight", hp.head_dim);
    }
}

void load_mla_layer(const GgufFile& f, const HParams& hp, const std::string& p, LayerWeights& L) {
    const int64_t E = hp.n_embd, H = hp.n_head, hd = hp.head_dim, R = hp.kv_lora_rank;
    const int64_t nope = hp.qk_nope_dim(), vd = hp.v_head_dim;
    if (hp.q_lora_rank > 0) {
        L.wq_a = matrix(f, p + "attn_q_a.weight", E, hp.q_lora_rank);
        L.q_a_norm = vec(f, p + "attn_q_a_norm.weight", hp.q_lora_rank);
        L.wq_b = matrix(f, p + "attn_q_b.weight", hp.q_lora_rank, H * hd);
    } else {
        L.wq = matrix(f, p + "attn_q.weight", E, H * hd);
    }
    L.wkv_a = matrix(f, p + "attn_kv_a_mqa.weight", E, R + hp.n_rot);
    L.kv_a_norm = vec(f, p + "attn_kv_a_norm.weight", R);
    if (hp.mla_kv_b_split) {
        L.wk_b = matrix3(f, p + "attn_k_b.weight", nope, R, H);
        L.wv_b = matrix3(f, p + "attn_v_b.weight", R, vd, H);
    } else {
        L.wkv_b = matrix(f, p + "attn_kv_b.weight", R, H * (nope + vd));
    }
    L.wo = matrix(f, p + "attn_output.weight", H * vd, E);
}

void load_moe_layer(const GgufFile& f, const HParams& hp, const std::string& p, LayerWeights& L) {
    const int64_t E = hp.n_embd, X = hp.n_expert, F = hp.n_ff_exp;
    L.gate_inp = matrix(f, p + "ffn_gate_inp.weight", E, X);
    L.gate_exps = matrix3(f, p + "ffn_gate_exps.weight", E, F, X);
    L.up_exps = matrix3(f, p + "ffn_up_exps.weight", E, F, X);
    L.down_exps = matrix3(f, p + "ffn_down_exps.weight", F, E, X);
    L.exp_probs_b = opt_vec(f, p + "exp_probs_b.bias", X);
    if (hp.n_expert_shared > 0) {
        const int64_t S = F * hp.n_expert_shared;
        L.gate_shexp = matrix(f, p + "ffn_gate_shexp.weight", E, S);
        L.up_shexp = matrix(f, p + "ffn_up_shexp.weight", E, S);
        L.down_shexp = matrix(f, p + "ffn_down_shexp.weight", S, E);
    } else if (f.find_tensor(p + "ffn_gate_shexp.weight")) {
        fail(ErrorKind::format, f.path() + ": tensor '" + p +
                                    "ffn_gate_shexp.weight' is present but metadata '" +
                                    hp.arch_name + ".expert_shared_count' is 0 or missing");
    }
}

}  // namespace

size_t LlamaModel::n_params() const {
    size_t n = 0;
    for (const auto& t : file->tensors()) n += size_t(t.nelements());
    return n;
}

size_t LlamaModel::weight_bytes() const {
    size_t n = 0;
    for (const auto& t : file->tensors()) n += t.nbytes;
    return n;
}

std::string LlamaModel::type_summary() const {
    std::map<std::string, size_t> bytes;
    for (const auto& t : file->tensors())
        if (t.ne.size() >= 2) bytes[type_name(t.type)] += t.nbytes;
    std::string best = "f32";
    size_t most = 0;
    for (const auto& kv : bytes)
        if (kv.second > most) {
            most = kv.second;
            best = kv.first;
        }
    for (char& c : best) c = char(std::toupper(static_cast<unsigned char>(c)));
    return best;
}

}  // namespace llm8
