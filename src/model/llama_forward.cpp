#include "model/llama_forward.h"

#include <algorithm>
#include <cstring>

#include "cpu/attn_8bit.h"
#include "cpu/ops.h"

namespace llm8 {

namespace {

// The INT8 cache's write: every token's K minus the layer's mean (measured at load, the same for
// every sequence, so that neither chunking nor forks change what is stored) and its V, with one
// scale per head.
void store_kv_i8(const KvStorage& kv, const ForwardBatch& b, int il, const HParams& hp,
                 const float* k, const float* v) {
    const int KV = kv.kv_dim, hd = hp.head_dim, n_kv = kv.n_head_kv;
    int8_t* k8 = static_cast<int8_t*>(kv.k) + int64_t(il) * kv.layer_stride;
    int8_t* v8 = static_cast<int8_t*>(kv.v) + int64_t(il) * kv.layer_stride;
    float* ks = kv.k_scale + int64_t(il) * kv.scale_stride;
    float* vs = kv.v_scale + int64_t(il) * kv.scale_stride;
    const float* mean = kv.k_mean + int64_t(il) * KV;
    for (int t = 0; t < b.n_tokens(); ++t) {
        const int64_t row = b.slots[size_t(t)];
        cpu::quantize_kv_row_i8(k + int64_t(t) * KV, v + int64_t(t) * KV, mean, KV, hd,
                                k8 + row * KV, ks + row * n_kv, v8 + row * KV, vs + row * n_kv);
    }
}

}  // namespace

void llama_forward_cpu(const LlamaModel& m, const KvStorage& kv, const ForwardBatch& b,
                       const std::vector<AttnMode>& attn, float* logits, ForwardScratch& s,
                       const std::function<void(int, const AttnParams&)>& after_attention) {
    const HParams& hp = m.hp;
    const int64_t n = b.n_tokens();
    const int32_t* tokens = b.tokens.data();
    // Decode steps of several sequences stream the weight rows (cpu::matmul_rows); prompts take
    // the tiled sgemm path whatever else is in the batch.
    const bool rows_path = b.all_decode() && n <= 16;
    auto matmul = [&](const WeightView& w, const float* x, int64_t rows, float* y) {
        if (rows_path)
            cpu::matmul_rows(w, x, rows, y);
        else
            cpu::matmul(w, x, rows, y);
    };
    const int64_t E = hp.n_embd, Q = hp.q_dim(), KV = hp.kv_dim(), F = hp.n_ff;
    s.x.resize(size_t(n * E));
    s.xn.resize(size_t(n * E));
    s.q.resize(size_t(n * Q));
    s.k.resize(size_t(n * KV));
    s.v.resize(size_t(n * KV));
    s.att.resize(size_t(n * Q));
    s.o.resize(size_t(n * E));
    s.gate.resize(size_t(n * F));
    s.up.resize(size_t(n * F));
    AttnParams ap;
    ap.q = s.q.data();
    ap.out = s.att.data();
    ap.n_seqs = b.n_seqs();
    ap.n_tokens = int(n);
    ap.q_start = b.q_start.data();
    ap.kv_len = b.kv_len.data();
    ap.max_q = b.max_q;
    ap.max_kv = b.max_kv;
    ap.n_head = hp.n_head;
    ap.n_head_kv = hp.n_head_kv;
    ap.head_dim = hp.head_dim;

    // Embedding lookup: dequantize the token's row.
    for (int64_t t = 0; t < n; ++t)
        dequantize_row(m.tok_embd.type, m.tok_embd.row(tokens[t]), s.x.data() + t * E, E);

    const float* factors = m.rope_freq_factors.empty() ? nullptr : m.rope_freq_factors.data();
    for (int il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& L = m.layers[size_t(il)];

        // Attention block.
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.x.data() + t * E, L.attn_norm.data(), s.xn.data() + t * E, E,
                          hp.rms_eps);
        matmul(L.wq, s.xn.data(), n, s.q.data());
        matmul(L.wk, s.xn.data(), n, s.k.data());
        matmul(L.wv, s.xn.data(), n, s.v.data());
        if (!L.bq.empty()) cpu::add_bias(s.q.data(), L.bq.data(), n, Q);
        if (!L.bk.empty()) cpu::add_bias(s.k.data(), L.bk.data(), n, KV);
        if (!L.bv.empty()) cpu::add_bias(s.v.data(), L.bv.data(), n, KV);
        if (!L.q_norm.empty()) {  // qwen3: RMSNorm over each head's vector before RoPE
            for (int64_t r = 0; r < n * hp.n_head; ++r)
                cpu::rms_norm(s.q.data() + r * hp.head_dim, L.q_norm.data(),
                              s.q.data() + r * hp.head_dim, hp.head_dim, hp.rms_eps);
            for (int64_t r = 0; r < n * hp.n_head_kv; ++r)
                cpu::rms_norm(s.k.data() + r * hp.head_dim, L.k_norm.data(),
                              s.k.data() + r * hp.head_dim, hp.head_dim, hp.rms_eps);
        }
        cpu::rope(s.q.data(), n, hp.n_head, hp.head_dim, hp.n_rot, b.pos.data(), hp.rope,
                  hp.rope_freq_base, hp.rope_freq_scale, factors);
        cpu::rope(s.k.data(), n, hp.n_head_kv, hp.head_dim, hp.n_rot, b.pos.data(), hp.rope,
                  hp.rope_freq_base, hp.rope_freq_scale, factors);
        // K/V to their pool rows, then attention of every sequence over its blocks.
        ap.kv = kv.view(il, b.block_tables.data(), b.max_blocks);
        ap.mode = attn[size_t(il)];
        if (kv.type == KvType::i8) {
            store_kv_i8(kv, b, il, hp, s.k.data(), s.v.data());
        } else {
            float* kc = static_cast<float*>(ap.kv.k);
            float* vc = static_cast<float*>(ap.kv.v);
            for (int64_t t = 0; t < n; ++t) {
                std::memcpy(kc + int64_t(b.slots[size_t(t)]) * KV, s.k.data() + t * KV,
                            sizeof(float) * size_t(KV));
                std::memcpy(vc + int64_t(b.slots[size_t(t)]) * KV, s.v.data() + t * KV,
                            sizeof(float) * size_t(KV));
            }
        }
        cpu::attention(ap);
        if (after_attention) after_attention(il, ap);
        matmul(L.wo, s.att.data(), n, s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];

        // Feed-forward block (SwiGLU).
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.x.data() + t * E, L.ffn_norm.data(), s.xn.data() + t * E, E,
                          hp.rms_eps);
        matmul(L.w_gate, s.xn.data(), n, s.gate.data());
        matmul(L.w_up, s.xn.data(), n, s.up.data());
        cpu::swiglu(s.gate.data(), s.up.data(), n * F);
        matmul(L.w_down, s.gate.data(), n, s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];
    }

    // Final norm and the output projection, only for the rows whose logits are wanted.
    const int64_t n_out = int64_t(b.out_rows.size());
    for (int64_t i = 0; i < n_out; ++i)
        cpu::rms_norm(s.x.data() + int64_t(b.out_rows[size_t(i)]) * E, m.output_norm.data(),
                      s.xn.data() + i * E, E, hp.rms_eps);
    if (n_out > 0) matmul(m.output, s.xn.data(), n_out, logits);
}

}  // namespace llm8
