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
    } else {
        fail(ErrorKind::unsupported, f.path() + ": unknown architecture '" + a +
                                         "' (llm8 runs llama, mistral, qwen2, qwen3)");
    }
    const int64_t kMax = int64_t(1) << 24;
    hp.n_embd = get_pos_int(f, a + ".embedding_length", 1, kMax);
    hp.n_layer = get_pos_int(f, a + ".block_count", 1, 4096);
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
    if (f.has(a + ".attention.key_length")) {
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
    } else if (scaling != "none") {
        fail(ErrorKind::unsupported,
             f.path() + ": rope scaling '" + scaling + "' is not supported yet (none, linear)");
    }
    if (f.has(a + ".rope.scale_linear"))  // older files
        hp.rope_freq_scale =
            float(1.0 / get_float_in(f, a + ".rope.scale_linear", 1.0, 1.0 / 1024.0, 1024.0));
    return hp;
}

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

    const int64_t E = hp.n_embd, Q = hp.q_dim(), KV = hp.kv_dim(), F = hp.n_ff;
    m->layers.resize(size_t(hp.n_layer));
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        LayerWeights& L = m->layers[size_t(il)];
        L.attn_norm = vec(f, p + "attn_norm.weight", E);
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
        if (hp.arch == Arch::qwen3) {
            L.q_norm = vec(f, p + "attn_q_norm.weight", hp.head_dim);
            L.k_norm = vec(f, p + "attn_k_norm.weight", hp.head_dim);
        }
        L.ffn_norm = vec(f, p + "ffn_norm.weight", E);
        L.w_gate = matrix(f, p + "ffn_gate.weight", E, F);
        L.w_up = matrix(f, p + "ffn_up.weight", E, F);
        L.w_down = matrix(f, p + "ffn_down.weight", F, E);
    }
    return m;
}

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
