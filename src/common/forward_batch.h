// One step of the batched forward pass as the backends see it: the tokens of several sequences
// (a prefill chunk or one decode token each), where their K/V rows go in the paged cache, and
// what each sequence's attention reads. The runtime (runtime/context.cpp) builds it from the
// public llm8::Batch and the KV block manager; the CPU and CUDA forwards consume it.
#pragma once
#include <cstdint>
#include <vector>

#include "common/attn_params.h"

namespace llm8 {

struct ForwardBatch {
    std::vector<int32_t> tokens;        // [n_tokens], grouped by sequence, positions ascending
    std::vector<int32_t> pos;           // [n_tokens] position of each token in its sequence
    std::vector<int32_t> slots;         // [n_tokens] pool row its K/V are written to
    std::vector<int32_t> q_start;       // [n_seqs + 1]
    std::vector<int32_t> kv_len;        // [n_seqs] keys after this step
    std::vector<int32_t> block_tables;  // [n_seqs, max_blocks]
    int max_blocks = 0;
    int max_q = 0, max_kv = 0;
    // Rows whose logits are wanted, ascending; logits come back in this order.
    std::vector<int32_t> out_rows;

    int n_tokens() const { return int(tokens.size()); }
    int n_seqs() const { return int(kv_len.size()); }
    // Every sequence decodes exactly one token (the shape the decode graphs capture).
    bool all_decode() const { return max_q == 1; }
};

// The paged K/V storage of a whole model: per layer a K pool and a V pool of
// n_blocks * block_size rows of kv_dim elements, layer il at element offset il * layer_stride.
struct KvStorage {
    KvType type = KvType::f32;
    void* k = nullptr;
    void* v = nullptr;
    int64_t layer_stride = 0;  // elements between layers
    int kv_dim = 0;
    // i8: the per-(row, KV head) scales of every layer ([n_layer][rows][n_head_kv], layer il at
    // il * scale_stride), and the model's K smoothing mean per layer ([n_layer][kv_dim],
    // measured at load: Model::kv_k_mean).
    float* k_scale = nullptr;
    float* v_scale = nullptr;
    int64_t scale_stride = 0;
    const float* k_mean = nullptr;
    int n_head_kv = 0;
    int block_size = 0;
    int block_shift = 0;

    // Layer il's view for a batch whose block tables are at `tables` (host or device memory).
    KvCacheView view(int il, const int32_t* tables, int max_blocks) const {
        KvCacheView v_;
        v_.type = type;
        const int64_t off = int64_t(il) * layer_stride * kv_type_bytes(type);
        v_.k = static_cast<char*>(k) + off;
        v_.v = static_cast<char*>(v) + off;
        v_.kv_dim = kv_dim;
        if (type == KvType::i8) {
            v_.k_scale = k_scale + int64_t(il) * scale_stride;
            v_.v_scale = v_scale + int64_t(il) * scale_stride;
        }
        v_.block_size = block_size;
        v_.block_shift = block_shift;
        v_.block_tables = tables;
        v_.max_blocks = max_blocks;
        return v_;
    }
};

}  // namespace llm8
