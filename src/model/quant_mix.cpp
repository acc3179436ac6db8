// llama-quantize's tensor-type mixes (quant_mix.h). Source of every rule: llama.cpp
// src/llama-quant.cpp at commit 007dbbf3fd17, functions llama_tensor_get_type_impl (the mixes),
// tensor_type_fallback (rows that do not fill a block) and llama_ftype_get_default_type (the
// base type of each mix).
#include "model/quant_mix.h"

#include <cctype>
#include <cstdio>

namespace llm8 {

namespace {

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

struct MixName {
    const char* name;  // as llama-quantize spells it
    QuantMix mix;
    GgmlType base;
};

const MixName kMixes[] = {
    {"Q2_K", QuantMix::q2_k, GgmlType::Q2_K},
    {"Q3_K_M", QuantMix::q3_k_m, GgmlType::Q3_K},
    {"Q4_K_M", QuantMix::q4_k_m, GgmlType::Q4_K},
    {"Q5_K_M", QuantMix::q5_k_m, GgmlType::Q5_K},
};

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third one in
// between get more bits.
bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// The layer of "blk.N.xxx", or -1.
int layer_of(const std::string& name) {
    int l = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) return -1;
    return l;
}

bool contains(const std::string& s, const char* part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

bool parse_quant_target(const std::string& name, bool pure, QuantTarget* out) {
    const std::string u = upper(name);
    for (const MixName& m : kMixes) {
        if (u == m.name) {
            out->type = m.base;
            out->mix = pure ? QuantMix::none : m.mix;
            return true;
        }
    }
    GgmlType t;
    if (!type_from_name(name.c_str(), &t) || !type_traits(t)->supported) return false;
    out->type = t;
    out->mix = QuantMix::none;
    return true;
}

const char* quant_target_names() {
    return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q3_K q4_K q5_K q6_K iq4_nl iq4_xs (every "
           "matrix), or llama-quantize's mixes Q2_K Q3_K_M Q4_K_M Q5_K_M (with --pure: every "
           "matrix the mix's base type, so q2_K --pure is plain q2_K)";
}

uint32_t quant_target_ftype(const QuantTarget& t) {
    switch (t.mix) {
        case QuantMix::q2_k:
            return 10;
        case QuantMix::q3_k_m:
            return 12;
        case QuantMix::q4_k_m:
            return 15;
        case QuantMix::q5_k_m:
            return 17;
        case QuantMix::none:
            break;
    }
    switch (t.type) {  // LLAMA_FTYPE_*; a plain K-quant records the mix llama-quantize names it by
        case GgmlType::F32:
            return 0;
        case GgmlType::F16:
            return 1;
        case GgmlType::Q4_0:
            return 2;
        case GgmlType::Q4_1:
            return 3;
        case GgmlType::Q8_0:
            return 7;
        case GgmlType::Q5_0:
            return 8;
        case GgmlType::Q5_1:
            return 9;
        case GgmlType::Q2_K:
            return 10;
        case GgmlType::Q3_K:
            return 12;
        case GgmlType::Q4_K:
            return 15;
        case GgmlType::Q5_K:
            return 17;
        case GgmlType::Q6_K:
            return 18;
        case GgmlType::IQ4_NL:
            return 25;
        case GgmlType::IQ4_XS:
            return 30;
        case GgmlType::BF16:
            return 32;
        default:
            return 0;
    }
}

const char* quant_mix_name(QuantMix m) {
    for (const MixName& n : kMixes)
        if (n.mix == m) return n.name;
    return "none";
}

GgmlType mix_tensor_type(const QuantTarget& t, const MixModelInfo& m, const std::string& name,
                         int64_t ne0) {
    const GgmlType base = t.type;
    if (t.mix == QuantMix::none) return base;
    const bool output = name == "output.weight" || (m.tied && name == "token_embd.weight");
    if (output) {  // the output matrix: q6_K, or q8_0 when its rows do not fill q6_K blocks
        return ne0 % type_traits(base)->block_size != 0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
    }
    const int layer = layer_of(name);
    const int n = m.n_layer;
    GgmlType r = base;
    if (contains(name, "attn_v.weight")) {
        // llama.cpp counts attn_v tensors in layer order: with one per layer, the layer.
        switch (t.mix) {
            case QuantMix::q2_k:
                r = m.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
                break;
            case QuantMix::q3_k_m:
                r = layer < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
                break;
            case QuantMix::q4_k_m:
            case QuantMix::q5_k_m:
                if (use_more_bits(layer, n)) r = GgmlType::Q6_K;
                break;
            case QuantMix::none:
                break;
        }
        // llama.cpp's 70B rule (LLM_TYPE_70B: 80 layers): attn_v is 8x smaller than attn_q
        // there, so more bits cost little.
        if (n == 80 && (r == GgmlType::Q3_K || r == GgmlType::Q4_K)) r = GgmlType::Q5_K;
    } else if (contains(name, "ffn_down")) {
        switch (t.mix) {
            case QuantMix::q2_k:
                r = GgmlType::Q3_K;
                break;
            case QuantMix::q3_k_m:
                r = layer < n / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
                break;
            case QuantMix::q4_k_m:
            case QuantMix::q5_k_m:
                if (use_more_bits(layer, n)) r = GgmlType::Q6_K;
                break;
            case QuantMix::none:
                break;
        }
    } else if (contains(name, "attn_output.weight")) {
        if (t.mix == QuantMix::q2_k) r = GgmlType::Q3_K;
        if (t.mix == QuantMix::q3_k_m) r = GgmlType::Q4_K;
    }
    return r;
}

GgmlType fallback_type(GgmlType t, int64_t ne0, GgmlType src, bool* fell_back) {
    auto fits = [ne0](GgmlType x) { return ne0 % type_traits(x)->block_size == 0; };
    *fell_back = !fits(t);
    if (fits(t)) return t;
    GgmlType f;
    switch (t) {
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
            f = GgmlType::Q4_0;
            break;
        case GgmlType::Q4_K:
            f = GgmlType::Q5_0;
            break;
        case GgmlType::Q5_K:
            f = GgmlType::Q5_1;
            break;
        case GgmlType::Q6_K:
            f = GgmlType::Q8_0;
            break;
        case GgmlType::IQ4_XS:
            f = GgmlType::IQ4_NL;
            break;
        default:  // no fallback (32-element types): the tensor keeps its type
            return src;
    }
    if (fits(f)) return f;
    return src == GgmlType::F32 ? GgmlType::F16 : src;
}

}  // namespace llm8
