// The Llama family as llm8 runs it: llama / llama-2 / llama-3 / mistral ("llama" in GGUF),
// qwen2 (Q/K/V biases) and qwen3 (per-head RMSNorm of Q and K). One description, read from
// the GGUF metadata and tensor names that llama.cpp uses:
//
//   token_embd.weight            [n_embd, n_vocab]
//   blk.N.attn_norm.weight       [n_embd]
//   blk.N.attn_{q,k,v}.weight    [n_embd, n_head*hd] / [n_embd, n_head_kv*hd]
//   blk.N.attn_{q,k,v}.bias      qwen2 only
//   blk.N.attn_{q,k}_norm.weight [hd]  qwen3 only
//   blk.N.attn_output.weight     [n_head*hd, n_embd]
//   blk.N.ffn_norm.weight        [n_embd]
//   blk.N.ffn_{gate,up}.weight   [n_embd, n_ff];  blk.N.ffn_down.weight [n_ff, n_embd]
//   output_norm.weight           [n_embd]
//   output.weight                [n_embd, n_vocab]  (absent: tied to token_embd)
//   rope_freqs.weight            [hd/2]  optional (llama-3.1 long-context factors)
//
// Mixture of experts (Mixtral: `llama` with `llama.expert_count`; `qwen3moe`; `deepseek2`
// after its leading dense layers), replacing ffn_{gate,up,down}:
//   blk.N.ffn_gate_inp.weight          [n_embd, n_expert]            the router
//   blk.N.ffn_{gate,up}_exps.weight    [n_embd, n_ff_exp, n_expert]  3-D: expert e's rows
//   blk.N.ffn_down_exps.weight         [n_ff_exp, n_embd, n_expert]    e*n_ff_exp.. of the 2-D view
//   blk.N.exp_probs_b.bias             [n_expert]  optional (DeepSeek-V3 selection bias)
//   blk.N.ffn_{gate,up}_shexp.weight   [n_embd, n_ff_exp*n_shared]   deepseek2 shared experts
//   blk.N.ffn_down_shexp.weight        [n_ff_exp*n_shared, n_embd]
//
// Multi-head latent attention (deepseek2), replacing attn_{q,k,v}; hd = nope + rope dims:
//   blk.N.attn_q.weight                [n_embd, n_head*hd]        when q_lora_rank is 0, else
//   blk.N.attn_q_a.weight              [n_embd, q_lora_rank]      with attn_q_a_norm [q_lora]
//   blk.N.attn_q_b.weight              [q_lora_rank, n_head*hd]
//   blk.N.attn_kv_a_mqa.weight         [n_embd, kv_lora_rank + rope]  latent, then K's rope part
//   blk.N.attn_kv_a_norm.weight        [kv_lora_rank]
//   blk.N.attn_kv_b.weight             [kv_lora_rank, n_head*(nope + v_hd)]  older files, or
//   blk.N.attn_k_b.weight              [nope, kv_lora_rank, n_head]  (files with key_length_mla)
//   blk.N.attn_v_b.weight              [kv_lora_rank, v_hd, n_head]
//   blk.N.attn_output.weight           [n_head*v_hd, n_embd]
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/tensor_types.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace llm8 {

enum class Arch { llama, qwen2, qwen3, qwen3moe, deepseek2 };

struct HParams {
    Arch arch = Arch::llama;
    std::string arch_name;  // general.architecture as in the file
    int n_vocab = 0;
    int n_ctx_train = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;  // key_length; n_embd / n_head when absent
    int n_ff = 0;
    int n_rot = 0;  // rotated dims per head (<= head_dim)
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // linear scaling: positions are multiplied by this
    RopeLayout rope = RopeLayout::norm;
    RopeYarn yarn;  // ext_factor 0 unless rope.scaling.type is yarn

    // Mixture of experts (n_expert 0: a dense model).
    int n_expert = 0;
    int n_expert_used = 0;              // experts per token (top-k)
    int n_ff_exp = 0;                   // FFN width of one routed expert
    int n_expert_shared = 0;            // deepseek2: shared experts, one FFN of n_ff_exp * count
    int n_layer_dense_lead = 0;         // deepseek2: the first layers keep a dense FFN
    float expert_weights_scale = 1.0f;  // multiplies the routing weights
    bool expert_weights_norm = false;   // routing weights divided by their sum over the top-k
    ExpertGating expert_gating = ExpertGating::softmax;
    int n_expert_groups = 0;  // DeepSeek-V3 group-limited routing (0: none)
    int n_group_used = 0;

    // Multi-head latent attention (deepseek2). head_dim = nope + n_rot (the query/key size the
    // softmax scale uses), v_head_dim the value size per head. The cache holds one row of
    // n_rot + kv_lora_rank per token: the roped key part, then the normed latent, which is
    // also every head's V before the up-projection.
    bool mla = false;
    int q_lora_rank = 0;  // 0: plain attn_q
    int kv_lora_rank = 0;
    int v_head_dim = 0;
    bool mla_kv_b_split = false;  // attn_k_b + attn_v_b (newer files) instead of attn_kv_b
    float attn_scale = 0.0f;      // softmax scale; 0: 1/sqrt(head_dim)

    int n_gqa() const { return n_head / n_head_kv; }
    int q_dim() const { return n_head * head_dim; }
    int kv_dim() const { return n_head_kv * head_dim; }
    int qk_nope_dim() const { return head_dim - n_rot; }
    bool is_moe_layer(int il) const { return n_expert > 0 && il >= n_layer_dense_lead; }
    // The KV cache: per token and layer, K and V rows of cache_heads() * cache_head_dim();
    // with MLA one shared row (V reads the K pool).
    int cache_head_dim() const { return mla ? n_rot + kv_lora_rank : head_dim; }
    int cache_heads() const { return mla ? 1 : n_head_kv; }
    int cache_dim() const { return cache_heads() * cache_head_dim(); }
    bool cache_v_is_k() const { return mla; }
};

struct LayerWeights {
    std::vector<float> attn_norm;  // [n_embd]
    WeightView wq, wk, wv, wo;
    std::vector<float> bq, bk, bv;      // qwen2: [q_dim] [kv_dim] [kv_dim]; else empty
    std::vector<float> q_norm, k_norm;  // qwen3: [head_dim]; else empty
    std::vector<float> ffn_norm;        // [n_embd]
    WeightView w_gate, w_up, w_down;    // dense FFN (empty in MoE layers)

    // MoE layers
    WeightView gate_inp;                          // [n_expert rows of n_embd] the router
    WeightView gate_exps, up_exps;                // [n_expert*n_ff_exp rows of n_embd]
    WeightView down_exps;                         // [n_expert*n_embd rows of n_ff_exp]
    std::vector<float> exp_probs_b;               // [n_expert] or empty
    WeightView gate_shexp, up_shexp, down_shexp;  // deepseek2 shared experts, or empty

    // MLA layers (deepseek2)
    WeightView wq_a, wq_b;         // q_lora_rank > 0 (wq empty then)
    std::vector<float> q_a_norm;   // [q_lora_rank]
    WeightView wkv_a;              // [kv_lora_rank + n_rot rows of n_embd]
    std::vector<float> kv_a_norm;  // [kv_lora_rank]
    WeightView wkv_b;              // [n_head*(nope + v_hd) rows of kv_lora_rank], or
    WeightView wk_b, wv_b;         // [n_head*kv_lora rows of nope], [n_head*v_hd of kv_lora]
};

struct LlamaModel {
    HParams hp;
    std::string name;  // general.name or the file name
    std::shared_ptr<const GgufFile> file;
    std::shared_ptr<const Vocab> vocab;
    WeightView tok_embd;
    std::vector<float> output_norm;  // [n_embd]
    WeightView output;               // tok_embd when tied
    bool tied_output = false;
    std::vector<float> rope_freq_factors;  // [n_rot/2] or empty
    std::vector<LayerWeights> layers;

    size_t n_params() const;
    size_t weight_bytes() const;       // bytes of all tensors in the file
    std::string type_summary() const;  // "Q8_0" style: the most common matrix type
};

// Reads hparams, vocab and tensor views. Errors name the missing key or tensor.
std::shared_ptr<LlamaModel> load_llama(std::shared_ptr<const GgufFile> file);
HParams read_hparams(const GgufFile& f);

}  // namespace llm8
