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
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/tensor_types.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace llm8 {

enum class Arch { llama, qwen2, qwen3 };

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

    int n_gqa() const { return n_head / n_head_kv; }
    int q_dim() const { return n_head * head_dim; }
    int kv_dim() const { return n_head_kv * head_dim; }
};

struct LayerWeights {
    std::vector<float> attn_norm;  // [n_embd]
    WeightView wq, wk, wv, wo;
    std::vector<float> bq, bk, bv;      // qwen2: [q_dim] [kv_dim] [kv_dim]; else empty
    std::vector<float> q_norm, k_norm;  // qwen3: [head_dim]; else empty
    std::vector<float> ffn_norm;        // [n_embd]
    WeightView w_gate, w_up, w_down;
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
