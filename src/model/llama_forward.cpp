#include "model/llama_forward.h"

#include <algorithm>
#include <cstring>

#include "cpu/ops.h"

namespace llm8 {

void llama_forward_cpu(const LlamaModel& m, KvCache& cache, const int32_t* tokens, int64_t n,
                       int64_t pos0, int64_t n_out, float* logits, ForwardScratch& s) {
    const HParams& hp = m.hp;
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
    s.pos.resize(size_t(n));
    for (int64_t t = 0; t < n; ++t) s.pos[size_t(t)] = int32_t(pos0 + t);

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
        cpu::matmul(L.wq, s.xn.data(), n, s.q.data());
        cpu::matmul(L.wk, s.xn.data(), n, s.k.data());
        cpu::matmul(L.wv, s.xn.data(), n, s.v.data());
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
        cpu::rope(s.q.data(), n, hp.n_head, hp.head_dim, hp.n_rot, s.pos.data(), hp.rope,
                  hp.rope_freq_base, hp.rope_freq_scale, factors);
        cpu::rope(s.k.data(), n, hp.n_head_kv, hp.head_dim, hp.n_rot, s.pos.data(), hp.rope,
                  hp.rope_freq_base, hp.rope_freq_scale, factors);
        float* kc = cache.k_layer(il);
        float* vc = cache.v_layer(il);
        std::memcpy(kc + pos0 * KV, s.k.data(), sizeof(float) * size_t(n * KV));
        std::memcpy(vc + pos0 * KV, s.v.data(), sizeof(float) * size_t(n * KV));
        cpu::attention(s.q.data(), kc, vc, n, pos0, hp.n_head, hp.n_head_kv, hp.head_dim,
                       s.att.data());
        cpu::matmul(L.wo, s.att.data(), n, s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];

        // Feed-forward block (SwiGLU).
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.x.data() + t * E, L.ffn_norm.data(), s.xn.data() + t * E, E,
                          hp.rms_eps);
        cpu::matmul(L.w_gate, s.xn.data(), n, s.gate.data());
        cpu::matmul(L.w_up, s.xn.data(), n, s.up.data());
        cpu::swiglu(s.gate.data(), s.up.data(), n * F);
        cpu::matmul(L.w_down, s.gate.data(), n, s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];
    }

    // Final norm and the output projection, only for the tokens whose logits are wanted.
    const int64_t first = n - n_out;
    for (int64_t t = first; t < n; ++t)
        cpu::rms_norm(s.x.data() + t * E, m.output_norm.data(), s.xn.data() + (t - first) * E, E,
                      hp.rms_eps);
    if (n_out > 0) cpu::matmul(m.output, s.xn.data(), n_out, logits);
}

}  // namespace llm8
