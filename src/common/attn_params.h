// The attention parameter struct shared by every backend (CPU reference, CUDA kernels): one
// struct per op family, as FlashAttention-3's Flash_fwd_params, so that adding a mode or a
// cache type adds fields, not positional arguments. Plain C++: no CUDA types. Pointers are host
// memory for the CPU backend and device memory for the CUDA one.
//
// A batch holds n_seqs sequences; sequence s owns the query rows [q_start[s], q_start[s+1]) of
// q/out (its new tokens of this step, concatenated) and sees kv_len[s] keys: its cached tokens
// plus the new ones, which the K/V store has already written. Causal masks are aligned to the
// end: query i of a sequence with q_len queries sits at position kv_len - q_len + i and sees
// keys [0, kv_len - q_len + i] (chunked prefill and decode alike).
//
// Keys live in the paged cache (KvCacheView): a pool of blocks of block_size token rows per
// layer; key j of sequence s is row block_tables[s * max_blocks + j / block_size] * block_size
// + j % block_size of the pool.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace llm8 {

// Element type of the KV cache: F16 on the GPU and F32 on the CPU by default; INT8 (-ctk int8
// -ctv int8) with one scale per token and KV head, K smoothed by its sequence's mean before it
// is quantized (src/common/attn_recipe.h). Every reader and writer switches on this field.
enum class KvType : int { f32 = 0, f16 = 1, i8 = 2 };
inline const char* kv_type_name(KvType t) {
    return t == KvType::f16 ? "f16" : t == KvType::i8 ? "int8" : "f32";
}
inline int kv_type_bytes(KvType t) {
    return t == KvType::f16 ? 2 : t == KvType::i8 ? 1 : 4;
}

// Attention modes of the per-layer plan (src/common/attn_recipe.h has the recipes):
//   f16  plain attention (FP16 cache and products on the GPU, f32 on the CPU);
//   sage SageAttention: K smoothed by its mean, Q and K INT8 with one scale per 64 rows, INT8
//        Q.K^T, FP32 online softmax in exp2, P and V in FP16 for P.V;
//   int8 INT-FlashAttention: Q and K INT8 per token (K smoothed), V INT8 per channel, P INT8
//        with the fixed scale 1/127, both products INT8, row sums from the unquantized P.
// The CPU runs every mode (the reference); the GPU runs the 8-bit modes for steps with 16 or
// more queries of a sequence (prefill) and decodes over the F16 or INT8 cache.
enum class AttnMode : int { f16 = 0, sage = 1, int8 = 2 };
inline const char* attn_mode_name(AttnMode m) {
    return m == AttnMode::f16 ? "f16" : m == AttnMode::sage ? "sage" : "int8";
}
// "f16", "sage", "int8" -> the mode; false for anything else.
inline bool parse_attn_mode(const char* s, AttnMode* m) {
    for (int k = 0; k < 3; ++k) {
        const AttnMode c = AttnMode(k);
        const char* n = attn_mode_name(c);
        int i = 0;
        while (n[i] && s[i] == n[i]) ++i;
        if (!n[i] && !s[i]) {
            *m = c;
            return true;
        }
    }
    return false;
}

// One layer's K and V pools and the block tables of the sequences of a batch.
struct KvCacheView {
    KvType type = KvType::f16;
    void* k = nullptr;  // [n_blocks * block_size, kv_dim] elements of `type`
    void* v = nullptr;  // same
    int kv_dim = 0;     // n_head_kv * head_dim
    // i8: one scale per pool row and KV head, [n_blocks * block_size, kv_dim / head_dim].
    float* k_scale = nullptr;
    float* v_scale = nullptr;
    int block_size = 0;                     // tokens per block, a power of two
    int block_shift = 0;                    // log2(block_size)
    const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks] block ids
    int max_blocks = 0;                     // row stride of block_tables

    // The pool row of key j of sequence s (host code and kernels alike).
#ifdef __CUDACC__
    __host__ __device__
#endif
        int64_t
        row(int s, int j) const {
        return int64_t(block_tables[int64_t(s) * max_blocks + (j >> block_shift)]) << block_shift |
               int64_t(j & (block_size - 1));
    }
};

struct AttnParams {
    const float* q = nullptr;  // [n_tokens, n_head * head_dim]
    float* out = nullptr;      // [n_tokens, n_head * head_dim]
    KvCacheView kv;
    int n_seqs = 0;
    int n_tokens = 0;                  // q_start[n_seqs]
    const int32_t* q_start = nullptr;  // [n_seqs + 1] first query row of each sequence
    const int32_t* kv_len = nullptr;   // [n_seqs] keys each sequence sees (cached + new)
    int max_q = 0;                     // bound on q_start[s+1] - q_start[s] (sizes the grid)
    int max_kv = 0;                    // bound on kv_len[s] (sizes the key splits)
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    bool causal = true;
    float softmax_scale = 0.f;  // 0: 1/sqrt(head_dim)
    AttnMode mode = AttnMode::f16;
    // CUDA only: split-KV partials (attention_workspace_floats) and, optionally, the output
    // also written as int8 per 32 dims with (scale, sum) pairs for the next decode GEMV.
    float* ws = nullptr;
    size_t ws_floats = 0;
    int8_t* q8 = nullptr;
    float* q8_ds = nullptr;
    // CUDA 8-bit modes: the quantized Q/K/V scratch (attention_8bit_workspace_bytes) and the
    // number of 64-key tiles of the batch, sum over s of ceil(kv_len[s] / 64), which sizes it.
    void* ws8 = nullptr;
    size_t ws8_bytes = 0;
    int kv_tiles = 0;
    // CUDA decode over the INT8 cache with the K/V write folded in: the step's new K and V rows
    // as floats ([n_tokens, kv_dim]; K after bias and RoPE, V after bias), which the decode
    // kernel quantizes into the pool (K minus k_mean [kv_dim], as cpu::quantize_kv_row_i8)
    // before it reads them, instead of a store launch of their own. Null: already in the pool.
    const float* new_k = nullptr;
    const float* new_v = nullptr;
    const float* k_mean = nullptr;

    float scale() const {
        return softmax_scale > 0.f ? softmax_scale : 1.0f / std::sqrt(float(head_dim));
    }
};

}  // namespace llm8
