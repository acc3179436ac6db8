#include "model/convert.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/error.h"

namespace llm8 {

namespace {

std::vector<uint8_t> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(ErrorKind::io, "cannot open '" + path + "'");
    std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return b;
}

}  // namespace

GgufWriter convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                           const std::string& name) {
    const std::vector<uint8_t> ck = read_all(checkpoint_path);
    if (ck.size() < 28)
        fail(ErrorKind::format, checkpoint_path + ": too small for a llama2.c header");
    int32_t cfg[7];
    std::memcpy(cfg, ck.data(), sizeof cfg);
    const int dim = cfg[0], hidden = cfg[1], n_layers = cfg[2], n_heads = cfg[3],
              n_kv_heads = cfg[4], seq_len = cfg[6];
    const bool shared = cfg[5] > 0;
    const int vocab = shared ? cfg[5] : -cfg[5];
    if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv_heads <= 0 || vocab <= 0 ||
        seq_len <= 0 || dim % n_heads || n_heads % n_kv_heads || dim > (1 << 20) ||
        hidden > (1 << 22) || n_layers > 1024 || vocab > (1 << 24) || seq_len > (1 << 24))
        fail(ErrorKind::format,
             checkpoint_path + ": implausible llama2.c config (dim " + std::to_string(dim) +
                 ", layers " + std::to_string(n_layers) + ", heads " + std::to_string(n_heads) +
                 "/" + std::to_string(n_kv_heads) + ", vocab " + std::to_string(vocab) + ")");
    const int64_t hd = dim / n_heads, kv_dim = int64_t(n_kv_heads) * hd;
    const int64_t L = n_layers, D = dim, H = hidden, V = vocab;
    const int64_t n_floats = V * D + L * D + L * D * D + 2 * L * D * kv_dim + L * D * D + L * D +
                             3 * L * D * H + D + int64_t(seq_len) * hd + (shared ? 0 : V * D);
    if (ck.size() != 28 + size_t(n_floats) * 4)
        fail(ErrorKind::format, checkpoint_path + ": size " + std::to_string(ck.size()) +
                                    " does not match its config (expected " +
                                    std::to_string(28 + n_floats * 4) + " bytes)");
    const float* p = reinterpret_cast<const float*>(ck.data() + 28);
    auto take = [&](int64_t n) {
        const float* r = p;
        p += n;
        return r;
    };
    const float* tok_emb = take(V * D);
    const float* rms_att = take(L * D);
    const float* wq = take(L * D * D);
    const float* wk = take(L * D * kv_dim);
    const float* wv = take(L * D * kv_dim);
    const float* wo = take(L * D * D);
    const float* rms_ffn = take(L * D);
    const float* w1 = take(L * H * D);
    const float* w2 = take(L * D * H);
    const float* w3 = take(L * H * D);
    const float* rms_final = take(D);
    take(int64_t(seq_len) * hd);  // freq_cis_real and _imag (hd/2 each): recomputed at run time
    const float* wcls = shared ? nullptr : take(V * D);

    // Tokenizer.
    const std::vector<uint8_t> tk = read_all(tokenizer_path);
    size_t off = 0;
    auto need = [&](size_t n) {
        if (tk.size() - off < n)
            fail(ErrorKind::format, tokenizer_path + ": truncated llama2.c tokenizer");
    };
    need(4);
    off += 4;  // max_token_length
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (int i = 0; i < vocab; ++i) {
        need(8);
        float score;
        int32_t len;
        std::memcpy(&score, tk.data() + off, 4);
        std::memcpy(&len, tk.data() + off + 4, 4);
        off += 8;
        if (len < 0 || len > 4096) fail(ErrorKind::format, tokenizer_path + ": bad token length");
        need(size_t(len));
        std::string t(reinterpret_cast<const char*>(tk.data() + off), size_t(len));
        off += size_t(len);
        int32_t type = 1;  // normal
        if (t == "<unk>") {
            type = 2;
        } else if (t == "\n<s>\n" || t == "\n</s>\n") {  // llama2.c's export pads these
            t = t.substr(1, t.size() - 2);
            type = 3;
        } else if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
            type = 6;
        } else {  // llama2.c stores SentencePiece's U+2581 as a plain space: restore it
            std::string u;
            for (char c : t) u += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
            t = u;
        }
        tokens.push_back(t);
        scores.push_back(score);
        types.push_back(type);
    }

    GgufWriter w;
    w.set("general.architecture", GgufValue::make_str("llama"));
    w.set("general.name", GgufValue::make_str(name));
    w.set("general.file_type", GgufValue::make_u32(0));
    w.set("llama.context_length", GgufValue::make_u32(uint32_t(seq_len)));
    w.set("llama.embedding_length", GgufValue::make_u32(uint32_t(dim)));
    w.set("llama.block_count", GgufValue::make_u32(uint32_t(n_layers)));
    w.set("llama.feed_forward_length", GgufValue::make_u32(uint32_t(hidden)));
    w.set("llama.attention.head_count", GgufValue::make_u32(uint32_t(n_heads)));
    w.set("llama.attention.head_count_kv", GgufValue::make_u32(uint32_t(n_kv_heads)));
    w.set("llama.rope.dimension_count", GgufValue::make_u32(uint32_t(hd)));
    w.set("llama.rope.freq_base", GgufValue::make_f32(10000.0f));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::make_f32(1e-5f));
    w.set("tokenizer.ggml.model", GgufValue::make_str("llama"));
    w.set("tokenizer.ggml.tokens", GgufValue::make_str_array(tokens));
    w.set("tokenizer.ggml.scores", GgufValue::make_f32_array(scores));
    w.set("tokenizer.ggml.token_type", GgufValue::make_i32_array(types));
    w.set("tokenizer.ggml.unknown_token_id", GgufValue::make_u32(0));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::make_u32(1));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::make_u32(2));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::make_bool(true));
    w.set("tokenizer.ggml.add_eos_token", GgufValue::make_bool(false));

    auto add = [&](const std::string& n, const float* data, std::vector<int64_t> ne) {
        int64_t cnt = 1;
        for (int64_t d : ne) cnt *= d;
        w.add_tensor(n, GgmlType::F32, ne, data, size_t(cnt) * 4);
    };
    add("token_embd.weight", tok_emb, {D, V});
    for (int64_t l = 0; l < L; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        add(b + "attn_norm.weight", rms_att + l * D, {D});
        add(b + "attn_q.weight", wq + l * D * D, {D, D});
        add(b + "attn_k.weight", wk + l * D * kv_dim, {D, kv_dim});
        add(b + "attn_v.weight", wv + l * D * kv_dim, {D, kv_dim});
        add(b + "attn_output.weight", wo + l * D * D, {D, D});
        add(b + "ffn_norm.weight", rms_ffn + l * D, {D});
        add(b + "ffn_gate.weight", w1 + l * H * D, {D, H});
        add(b + "ffn_down.weight", w2 + l * D * H, {H, D});
        add(b + "ffn_up.weight", w3 + l * H * D, {D, H});
    }
    add("output_norm.weight", rms_final, {D});
    if (wcls) add("output.weight", wcls, {D, V});
    return w;
}

namespace {

bool is_quantized(GgmlType t) {
    return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16;
}

// An integer metadata value of the model's architecture, or dflt (absent, or an array such as
// per-layer head counts).
int arch_int(const GgufFile& in, const std::string& key, int dflt) {
    const std::string arch = in.get_str("general.architecture", "");
    const GgufValue* v = in.find(arch + "." + key);
    if (!v || v->is_array()) return dflt;
    try {
        return int(in.get_int(arch + "." + key));
    } catch (const Error&) {
        return dflt;
    }
}

}  // namespace

std::vector<TensorPlan> plan_conversion(const GgufFile& in, const QuantTarget& target) {
    MixModelInfo info;
    info.n_layer = arch_int(in, "block_count", 0);
    const int heads = arch_int(in, "attention.head_count", 1);
    const int heads_kv = arch_int(in, "attention.head_count_kv", heads);
    info.n_gqa = heads_kv > 0 ? heads / heads_kv : 1;
    info.tied = in.find_tensor("output.weight") == nullptr;
    std::vector<TensorPlan> plan;
    for (const auto& t : in.tensors()) {
        TensorPlan p;
        p.name = t.name;
        p.from = p.to = p.wanted = t.type;
        // 2-D matrices and 3-D expert / per-head stacks; MoE routers stay as they are (F32 in
        // llama.cpp's files: few bytes, and the expert choice is sensitive to their rounding).
        const bool matrix = (t.ne.size() == 2 || t.ne.size() == 3) && t.ne[1] > 1 &&
                            t.name.find("ffn_gate_inp.") == std::string::npos;
        if (matrix) {
            p.wanted = mix_tensor_type(target, info, t.name, t.ne[0]);
            p.to = fallback_type(p.wanted, t.ne[0], t.type, &p.fell_back);
        }
        plan.push_back(p);
    }
    return plan;
}

std::vector<std::string> requantized_tensors(const GgufFile& in, const QuantTarget& target) {
    std::vector<std::string> names;
    for (const TensorPlan& p : plan_conversion(in, target))
        if (p.to != p.from && is_quantized(p.from)) names.push_back(p.name);
    return names;
}

std::vector<std::string> requantized_tensors(const GgufFile& in, GgmlType out_type) {
    return requantized_tensors(in, QuantTarget{out_type, QuantMix::none});
}

GgufWriter convert_gguf(const GgufFile& in, const GgmlType* out_type, const ConvertOptions& opt) {
    if (!out_type) return convert_gguf(in, static_cast<const QuantTarget*>(nullptr), opt);
    const QuantTarget t{*out_type, QuantMix::none};
    return convert_gguf(in, &t, opt);
}

GgufWriter convert_gguf(const GgufFile& in, const QuantTarget* target, const ConvertOptions& opt) {
    GgufWriter w;
    for (const auto& kv : in.metadata()) w.set(kv.first, kv.second);
    if (in.alignment() != 32) w.set_alignment(in.alignment());
    std::vector<TensorPlan> plan;
    if (target) {
        const TypeTraits* tt = type_traits(target->type);
        if (!tt || !tt->supported)
            fail(ErrorKind::unsupported,
                 std::string("cannot convert to type ") + type_name(target->type));
        w.set("general.file_type", GgufValue::make_u32(quant_target_ftype(*target)));
        const std::vector<std::string> requant = requantized_tensors(in, *target);
        if (!requant.empty() && !opt.allow_requantize) {
            const GgufTensorInfo* t = in.find_tensor(requant.front());
            const std::string to = target->mix != QuantMix::none ? quant_mix_name(target->mix)
                                                                 : type_name(target->type);
            fail(ErrorKind::invalid_arg,
                 in.path() + " is already quantized (" + std::to_string(requant.size()) +
                     " tensors, e.g. '" + t->name + "' is " + type_name(t->type) +
                     "): converting it to " + to +
                     " rounds the weights a second time and loses accuracy; convert from the "
                     "f32/f16/bf16 original, or pass --allow-requantize to do it anyway");
        }
        plan = plan_conversion(in, *target);
    }
    std::vector<float> row;
    std::vector<uint8_t> out;
    const size_t n_tensors = in.tensors().size();
    for (size_t i = 0; i < n_tensors; ++i) {
        const GgufTensorInfo& t = in.tensors()[i];
        if (opt.progress && i) opt.progress(i, n_tensors);
        if (plan.empty() || plan[i].to == t.type) {
            w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
            continue;
        }
        const GgmlType to = plan[i].to;
        const int64_t ne0 = t.ne[0], rows = t.nrows();
        const size_t in_rb = row_size(t.type, ne0), out_rb = row_size(to, ne0);
        out.resize(out_rb * size_t(rows));
        // Rows are independent: the low-bit quantizers search scales and are worth the threads.
#pragma omp parallel for schedule(dynamic, 16) private(row) if (rows * ne0 >= (1 << 16))
        for (int64_t r = 0; r < rows; ++r) {
            row.resize(size_t(ne0));
            dequantize_row(t.type, t.data + size_t(r) * in_rb, row.data(), ne0);
            quantize_row(to, row.data(), out.data() + size_t(r) * out_rb, ne0);
        }
        w.add_tensor(t.name, to, t.ne, out.data(), out.size());
    }
    if (opt.progress) opt.progress(n_tensors, n_tensors);
    return w;
}

}  // namespace llm8
