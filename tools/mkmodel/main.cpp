// llm8-mkmodel: random-weight GGUF models of real shapes with a real vocabulary, for speed work
// only (their text is noise; never draw accuracy conclusions from them).
//   llm8-mkmodel --preset llama3-8b --type q8_0 --vocab llama3-vocab.gguf -o llama3-8b-q8_0.gguf
// --type takes a ggml type or a llama-quantize mix (Q4_K_M, ...: each matrix gets the type
// llama-quantize would give it, model/quant_mix.h); --pure as in llama-quantize.
// Presets: llama2-7b (MHA, vocab 32000), llama3-8b (GQA 32/8, ffn 14336, vocab 128256),
// qwen2.5-7b (GQA 28/4, QKV bias, vocab 151936 padded from the Qwen3 vocab); mixture of experts:
// qwen3-30b-a3b (128 experts, 8 used, Q/K norms), mixtral-8x7b (llama with 8 experts, 2 used),
// deepseek-v2-lite (latent attention, 64 experts + 2 shared, one dense layer first, YaRN x40,
// the newer split attn_k_b / attn_v_b layout), deepseek-v3 (low-rank Q, 256 experts in 8
// groups with sigmoid routing and a selection bias; --layers for a scaled copy); tiny,
// tiny-qwen3moe, tiny-mixtral, tiny-deepseek2 (tiny-deepseek2-q with a low-rank Q,
// tiny-deepseek3 with V3's routing) for tests. Weights are
// N(0, 1/fan_in) so activations stay in a realistic range; norms are 1.
#include <CLI/CLI.hpp>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf.h"
#include "gguf/quants.h"
#include "model/quant_mix.h"

namespace {

struct Preset {
    const char* name;
    const char* arch;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_base;
    bool qkv_bias = false;
    bool qk_norm = false;
    int head_dim = 0;  // 0: n_embd / n_head
    // Mixture of experts (n_expert 0: dense)
    int n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_shared = 0, n_dense_lead = 0;
    float weights_scale = 0;  // 0: no key
    // DeepSeek-V3 routing: sigmoid scores (expert_gating_func 2), group-limited top-k, a
    // selection bias per expert (exp_probs_b), the chosen weights renormalized.
    bool v3_routing = false;
    int n_groups = 0, n_groups_used = 0;
    // Latent attention (deepseek2)
    int q_lora = 0, kv_lora = 0, rope_dim = 0, nope = 0, v_head = 0;
    float yarn_factor = 0;
    int yarn_orig_ctx = 0;
    float yarn_log_mul = 0;
};

std::vector<Preset> presets() {
    std::vector<Preset> v;
    v.push_back({"llama2-7b", "llama", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f});
    v.push_back({"llama3-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 131072, 500000.0f});
    v.push_back({"qwen2.5-7b", "qwen2", 3584, 28, 28, 4, 18944, 151936, 32768, 1000000.0f});
    v.back().qkv_bias = true;
    v.push_back({"tiny", "llama", 256, 2, 4, 2, 512, 0, 2048, 10000.0f});  // vocab from the file
    // Qwen3-30B-A3B: feed_forward_length is the (unused) dense width, as in its GGUF.
    v.push_back({"qwen3-30b-a3b", "qwen3moe", 2048, 48, 32, 4, 6144, 151936, 40960, 1000000.0f});
    v.back().qk_norm = true;
    v.back().head_dim = 128;
    v.back().n_expert = 128;
    v.back().n_expert_used = 8;
    v.back().n_ff_exp = 768;
    v.push_back({"tiny-qwen3moe", "qwen3moe", 256, 2, 4, 2, 512, 0, 2048, 1000000.0f});
    v.back().qk_norm = true;
    v.back().head_dim = 64;
    v.back().n_expert = 8;
    v.back().n_expert_used = 2;
    v.back().n_ff_exp = 256;
    v.push_back({"mixtral-8x7b", "llama", 4096, 32, 32, 8, 14336, 32000, 32768, 1000000.0f});
    v.back().n_expert = 8;
    v.back().n_expert_used = 2;
    v.push_back({"tiny-mixtral", "llama", 256, 2, 4, 2, 512, 0, 2048, 1000000.0f});
    v.back().n_expert = 4;
    v.back().n_expert_used = 2;
    v.push_back(
        {"deepseek-v2-lite", "deepseek2", 2048, 27, 16, 16, 10944, 102400, 163840, 10000.0f});
    Preset* d = &v.back();
    d->n_expert = 64;
    d->n_expert_used = 6;
    d->n_ff_exp = 1408;
    d->n_shared = 2;
    d->n_dense_lead = 1;
    d->weights_scale = 1.0f;
    d->kv_lora = 512;
    d->rope_dim = 64;
    d->nope = 128;
    d->v_head = 128;
    d->yarn_factor = 40.0f;
    d->yarn_orig_ctx = 4096;
    d->yarn_log_mul = 0.0707f;
    v.push_back({"tiny-deepseek2", "deepseek2", 256, 2, 4, 4, 512, 0, 2048, 10000.0f});
    d = &v.back();
    d->n_expert = 8;
    d->n_expert_used = 2;
    d->n_ff_exp = 256;
    d->n_shared = 1;
    d->n_dense_lead = 1;
    d->weights_scale = 1.0f;
    d->kv_lora = 256;
    d->rope_dim = 32;
    d->nope = 64;
    d->v_head = 64;
    d->yarn_factor = 4.0f;
    d->yarn_orig_ctx = 512;
    d->yarn_log_mul = 0.0707f;
    // The same with Q through its own low-rank projection (attn_q_a / attn_q_b, as
    // DeepSeek-V2, V2.5 and V3 have; V2-Lite has none).
    const Preset lite = v.back();
    v.push_back(lite);
    v.back().name = "tiny-deepseek2-q";
    v.back().q_lora = 128;
    const Preset with_q = v.back();
    // DeepSeek-V3 / R1 (671B: use --layers for a scaled copy): 256 routed experts in 8 groups
    // (4 used), 8 per token, sigmoid routing with a selection bias, 3 dense layers first.
    v.push_back(
        {"deepseek-v3", "deepseek2", 7168, 61, 128, 128, 18432, 129280, 163840, 10000.0f});
    d = &v.back();
    d->n_expert = 256;
    d->n_expert_used = 8;
    d->n_ff_exp = 2048;
    d->n_shared = 1;
    d->n_dense_lead = 3;
    d->weights_scale = 2.5f;
    d->v3_routing = true;
    d->n_groups = 8;
    d->n_groups_used = 4;
    d->q_lora = 1536;
    d->kv_lora = 512;
    d->rope_dim = 64;
    d->nope = 128;
    d->v_head = 128;
    d->yarn_factor = 40.0f;
    d->yarn_orig_ctx = 4096;
    d->yarn_log_mul = 0.1f;
    // tiny-deepseek2-q with V3's routing.
    v.push_back(with_q);
    v.back().name = "tiny-deepseek3";
    d = &v.back();
    d->n_expert = 16;
    d->n_expert_used = 4;
    d->weights_scale = 2.5f;
    d->v3_routing = true;
    d->n_groups = 4;
    d->n_groups_used = 2;
    return v;
}

// xoshiro128+ per row: fast, and the same file for the same seed.
struct Rng {
    uint32_t s[4];
    explicit Rng(uint64_t seed) {
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
        for (uint32_t& w : s) {
            z ^= z >> 31;
            z *= 0xBF58476D1CE4E5B9ull;
            w = uint32_t(z >> 16) | 1u;
        }
    }
    uint32_t next() {
        const uint32_t r = s[0] + s[3], t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = (s[3] << 11) | (s[3] >> 21);
        return r;
    }
    // Approximately N(0, 1): sum of four uniforms, rescaled.
    float normal() {
        float a = 0;
        for (int i = 0; i < 4; ++i) a += float(next() >> 8) * (1.0f / 16777216.0f);
        return (a - 2.0f) * 1.7320508f;
    }
};

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args(
        "llm8-mkmodel", "llm8-mkmodel: random-weight GGUF models of real shapes (speed work only)");
    CLI::App& app = args.app();
    std::string preset = "llama3-8b", type = "q8_0", vocab, out;
    uint64_t seed = 1;
    int layers = 0;
    bool pure = false;
    app.add_option("--preset", preset,
                   "llama2-7b, llama3-8b, qwen2.5-7b, qwen3-30b-a3b, mixtral-8x7b, "
                   "deepseek-v2-lite, deepseek-v3, tiny, tiny-qwen3moe, tiny-mixtral, "
                   "tiny-deepseek2, tiny-deepseek2-q, tiny-deepseek3");
    app.add_option("--type", type, std::string("weight type: ") + llm8::quant_target_names());
    app.add_flag("--pure", pure, "no mix: every matrix gets the --type's base type");
    app.add_option(
           "--vocab", vocab,
           "GGUF whose tokenizer.* metadata to use (e.g. ../shared/data/vocab/llama3-vocab.gguf)")
        ->required();
    app.add_option("-o,--outfile", out, "output GGUF")->required();
    app.add_option("--seed", seed, "random seed");
    args.add_int("--layers", layers, 0, 4096, "override the layer count (smaller files for tests)");
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;
    try {
        const std::vector<Preset> table = presets();
        const Preset* p = nullptr;
        for (const Preset& q : table)
            if (preset == q.name) p = &q;
        if (!p) llm8::fail(llm8::ErrorKind::invalid_arg, "unknown --preset '" + preset + "'");
        llm8::QuantTarget qt;
        if (!llm8::parse_quant_target(type, pure, &qt))
            llm8::fail(llm8::ErrorKind::invalid_arg, "unknown or unsupported --type '" + type +
                                                         "' (" + llm8::quant_target_names() + ")");
        auto vf = llm8::GgufFile::open(vocab);
        llm8::GgufWriter w;
        const std::string a = p->arch;
        const int L = layers > 0 ? layers : p->n_layer;
        // Vocabulary: copy tokenizer.*; pad to the preset's size with unused tokens.
        int n_vocab = int(vf->get_array("tokenizer.ggml.tokens").strings.size());
        const int target = p->n_vocab > 0 ? p->n_vocab : n_vocab;
        if (target < n_vocab)
            llm8::fail(llm8::ErrorKind::invalid_arg, "vocab has more tokens than the preset");
        for (const auto& kv : vf->metadata()) {
            if (kv.first.rfind("tokenizer.", 0) != 0) continue;
            llm8::GgufValue v = kv.second;
            if (target > n_vocab) {
                if (kv.first == "tokenizer.ggml.tokens")
                    for (int i = n_vocab; i < target; ++i)
                        v.strings.push_back("<|pad_" + std::to_string(i) + "|>");
                if (kv.first == "tokenizer.ggml.token_type")
                    for (int i = n_vocab; i < target; ++i) v.ints.push_back(5);  // unused
                if (kv.first == "tokenizer.ggml.scores")
                    for (int i = n_vocab; i < target; ++i) v.floats.push_back(-1e9);
            }
            w.set(kv.first, v);
        }
        n_vocab = target;
        using llm8::GgufValue;
        w.set("general.architecture", GgufValue::make_str(a));
        w.set("general.name", GgufValue::make_str(std::string(p->name) + " random " + type));
        w.set(a + ".context_length", GgufValue::make_u32(uint32_t(p->n_ctx)));
        w.set(a + ".embedding_length", GgufValue::make_u32(uint32_t(p->n_embd)));
        w.set(a + ".block_count", GgufValue::make_u32(uint32_t(L)));
        w.set(a + ".feed_forward_length", GgufValue::make_u32(uint32_t(p->n_ff)));
        w.set(a + ".attention.head_count", GgufValue::make_u32(uint32_t(p->n_head)));
        const bool mla = p->kv_lora > 0;
        // Latent attention: one KV head (the latent shared by every query head), as llama.cpp's
        // converter writes deepseek2 files ("MLA converts into MQA"); its loader sizes the
        // cache by it.
        w.set(a + ".attention.head_count_kv",
              GgufValue::make_u32(uint32_t(mla ? 1 : p->n_head_kv)));
        w.set(a + ".rope.freq_base", GgufValue::make_f32(p->rope_base));
        w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::make_f32(1e-5f));
        const int64_t hd = p->head_dim > 0 ? p->head_dim : p->n_embd / p->n_head;
        if (p->head_dim > 0) w.set(a + ".attention.key_length", GgufValue::make_u32(uint32_t(hd)));
        if (p->n_expert > 0) {
            w.set(a + ".expert_count", GgufValue::make_u32(uint32_t(p->n_expert)));
            w.set(a + ".expert_used_count", GgufValue::make_u32(uint32_t(p->n_expert_used)));
            if (p->n_ff_exp > 0)
                w.set(a + ".expert_feed_forward_length",
                      GgufValue::make_u32(uint32_t(p->n_ff_exp)));
            if (p->n_shared > 0)
                w.set(a + ".expert_shared_count", GgufValue::make_u32(uint32_t(p->n_shared)));
            if (p->n_dense_lead > 0)
                w.set(a + ".leading_dense_block_count",
                      GgufValue::make_u32(uint32_t(p->n_dense_lead)));
            if (p->weights_scale > 0)
                w.set(a + ".expert_weights_scale", GgufValue::make_f32(p->weights_scale));
            if (p->v3_routing) {
                w.set(a + ".expert_gating_func", GgufValue::make_u32(2));  // sigmoid
                w.set(a + ".expert_weights_norm", GgufValue::make_bool(true));
                w.set(a + ".expert_group_count", GgufValue::make_u32(uint32_t(p->n_groups)));
                w.set(a + ".expert_group_used_count",
                      GgufValue::make_u32(uint32_t(p->n_groups_used)));
            }
        }
        if (mla) {  // the layout of files converted since llama.cpp's MLA support
            if (p->q_lora > 0)
                w.set(a + ".attention.q_lora_rank", GgufValue::make_u32(uint32_t(p->q_lora)));
            w.set(a + ".attention.kv_lora_rank", GgufValue::make_u32(uint32_t(p->kv_lora)));
            w.set(a + ".rope.dimension_count", GgufValue::make_u32(uint32_t(p->rope_dim)));
            w.set(a + ".attention.key_length",
                  GgufValue::make_u32(uint32_t(p->kv_lora + p->rope_dim)));
            w.set(a + ".attention.value_length", GgufValue::make_u32(uint32_t(p->kv_lora)));
            w.set(a + ".attention.key_length_mla",
                  GgufValue::make_u32(uint32_t(p->nope + p->rope_dim)));
            w.set(a + ".attention.value_length_mla", GgufValue::make_u32(uint32_t(p->v_head)));
        }
        if (p->yarn_factor > 0) {
            w.set(a + ".rope.scaling.type", GgufValue::make_str("yarn"));
            w.set(a + ".rope.scaling.factor", GgufValue::make_f32(p->yarn_factor));
            w.set(a + ".rope.scaling.original_context_length",
                  GgufValue::make_u32(uint32_t(p->yarn_orig_ctx)));
            if (p->yarn_log_mul > 0)
                w.set(a + ".rope.scaling.yarn_log_multiplier",
                      GgufValue::make_f32(p->yarn_log_mul));
        }
        w.set("general.file_type", GgufValue::make_u32(llm8::quant_target_ftype(qt)));
        llm8::MixModelInfo info;
        info.n_layer = L;
        info.n_gqa = p->n_head / (mla ? 1 : p->n_head_kv);  // as the file's head counts say
        // Each matrix's type: the mix's choice, then llama.cpp's fallback for rows that do not
        // fill its blocks (tiny: 256 and 512 fill every block).
        auto type_of = [&](const std::string& name, int64_t ne0) {
            bool fell_back;
            return llm8::fallback_type(llm8::mix_tensor_type(qt, info, name, ne0), ne0,
                                       llm8::GgmlType::F32, &fell_back);
        };

        uint64_t tensor_seed = seed * 1000003;
        // ne2 > 1: a 3-D tensor (experts, per-head projections), rows ne1 * ne2.
        auto matrix = [&](const std::string& name, int64_t ne0, int64_t ne1_, int64_t ne2 = 1) {
            const llm8::GgmlType t = type_of(name, ne0);
            const uint64_t ts = ++tensor_seed;
            const float scale = 1.0f / std::sqrt(float(ne0));
            const int64_t ne1 = ne1_ * ne2;
            std::vector<int64_t> shape = {ne0, ne1_};
            if (ne2 > 1) shape.push_back(ne2);
            w.add_tensor_lazy(name, t, shape, [=](uint8_t* dst) {
                const size_t rb = llm8::row_size(t, ne0);
#pragma omp parallel
                {
                    std::vector<float> row(static_cast<size_t>(ne0));
#pragma omp for schedule(static)
                    for (int64_t r = 0; r < ne1; ++r) {
                        Rng rng(ts * 0x100000001B3ull + uint64_t(r));
                        for (float& x : row) x = rng.normal() * scale;
                        llm8::quantize_row(t, row.data(), dst + size_t(r) * rb, ne0);
                    }
                }
            });
        };
        auto ones = [&](const std::string& name, int64_t n) {
            w.add_tensor_lazy(name, llm8::GgmlType::F32, {n}, [n](uint8_t* dst) {
                float* f = reinterpret_cast<float*>(dst);
                for (int64_t i = 0; i < n; ++i) f[i] = 1.0f;
            });
        };
        auto small = [&](const std::string& name, int64_t n) {
            const uint64_t ts = ++tensor_seed;
            w.add_tensor_lazy(name, llm8::GgmlType::F32, {n}, [n, ts](uint8_t* dst) {
                Rng rng(ts);
                float* f = reinterpret_cast<float*>(dst);
                for (int64_t i = 0; i < n; ++i) f[i] = 0.02f * rng.normal();
            });
        };
        const int64_t E = p->n_embd, H = p->n_head, Q = H * hd, KV = int64_t(p->n_head_kv) * hd,
                      F = p->n_ff;
        // As llama.cpp's quantizer does, the embedding uses the base type; the output matrix
        // too for a plain type, q6_K in a mix.
        matrix("token_embd.weight", E, n_vocab);
        for (int l = 0; l < L; ++l) {
            const std::string b = "blk." + std::to_string(l) + ".";
            ones(b + "attn_norm.weight", E);
            if (mla) {
                const int64_t R = p->kv_lora, khd = p->nope + p->rope_dim;
                if (p->q_lora > 0) {
                    matrix(b + "attn_q_a.weight", E, p->q_lora);
                    ones(b + "attn_q_a_norm.weight", p->q_lora);
                    matrix(b + "attn_q_b.weight", p->q_lora, H * khd);
                } else {
                    matrix(b + "attn_q.weight", E, H * khd);
                }
                matrix(b + "attn_kv_a_mqa.weight", E, R + p->rope_dim);
                ones(b + "attn_kv_a_norm.weight", R);
                matrix(b + "attn_k_b.weight", p->nope, R, H);
                matrix(b + "attn_v_b.weight", R, p->v_head, H);
                matrix(b + "attn_output.weight", H * p->v_head, E);
            } else {
                matrix(b + "attn_q.weight", E, Q);
                matrix(b + "attn_k.weight", E, KV);
                matrix(b + "attn_v.weight", E, KV);
                if (p->qkv_bias) {
                    small(b + "attn_q.bias", Q);
                    small(b + "attn_k.bias", KV);
                    small(b + "attn_v.bias", KV);
                }
                if (p->qk_norm) {
                    ones(b + "attn_q_norm.weight", hd);
                    ones(b + "attn_k_norm.weight", hd);
                }
                matrix(b + "attn_output.weight", Q, E);
            }
            ones(b + "ffn_norm.weight", E);
            if (p->n_expert > 0 && l >= p->n_dense_lead) {
                const int64_t X = p->n_expert, FX = p->n_ff_exp > 0 ? p->n_ff_exp : F;
                // The router stays F32, as llama.cpp's converter and quantizer keep it.
                const uint64_t ts = ++tensor_seed;
                w.add_tensor_lazy(b + "ffn_gate_inp.weight", llm8::GgmlType::F32, {E, X},
                                  [=](uint8_t* dst) {
                                      Rng rng(ts);
                                      float* f = reinterpret_cast<float*>(dst);
                                      for (int64_t i = 0; i < E * X; ++i)
                                          f[i] = rng.normal() / std::sqrt(float(E));
                                  });
                if (p->v3_routing) {  // the selection bias, F32 like the router
                    const uint64_t bs = ++tensor_seed;
                    w.add_tensor_lazy(b + "exp_probs_b.bias", llm8::GgmlType::F32, {X},
                                      [=](uint8_t* dst) {
                                          Rng rng(bs);
                                          float* f = reinterpret_cast<float*>(dst);
                                          for (int64_t i = 0; i < X; ++i) f[i] = 0.1f * rng.normal();
                                      });
                }
                matrix(b + "ffn_gate_exps.weight", E, FX, X);
                matrix(b + "ffn_up_exps.weight", E, FX, X);
                matrix(b + "ffn_down_exps.weight", FX, E, X);
                if (p->n_shared > 0) {
                    const int64_t S = FX * p->n_shared;
                    matrix(b + "ffn_gate_shexp.weight", E, S);
                    matrix(b + "ffn_up_shexp.weight", E, S);
                    matrix(b + "ffn_down_shexp.weight", S, E);
                }
            } else {
                matrix(b + "ffn_gate.weight", E, F);
                matrix(b + "ffn_up.weight", E, F);
                matrix(b + "ffn_down.weight", F, E);
            }
        }
        ones("output_norm.weight", E);
        matrix("output.weight", E, n_vocab);
        std::fprintf(stderr, "llm8-mkmodel: writing %s (%s, %d layers, vocab %d, %s)\n",
                     out.c_str(), p->name, L, n_vocab, type.c_str());
        w.write(out);
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
