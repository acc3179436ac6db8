#include "model/llama_forward.h"

#include <algorithm>
#include <cstring>

#include "cpu/attn_8bit.h"
#include "cpu/moe.h"
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

// Everything one step's layers share: the matmul path, the scratch and the attention
// parameters that do not change per layer.
struct Step {
    const LlamaModel& m;
    const KvStorage& kv;
    const ForwardBatch& b;
    ForwardScratch& s;
    AttnParams ap;
    int64_t n;
    bool rows_path;
    const float* factors;

    void matmul(const WeightView& w, const float* x, int64_t rows, float* y) const {
        if (rows_path)
            cpu::matmul_rows(w, x, rows, y);
        else
            cpu::matmul(w, x, rows, y);
    }
    void rope(float* x, int n_heads, int head_dim) const {
        const HParams& hp = m.hp;
        cpu::rope(x, n, n_heads, head_dim, hp.n_rot, b.pos.data(), hp.rope, hp.rope_freq_base,
                  hp.rope_freq_scale, factors, &hp.yarn);
    }
};

// Q/K/V projections (+bias, + qwen3's per-head norms), RoPE, the K/V store and attention:
// s.att = [n, q_dim].
void attention_block(Step& st, int il, const LayerWeights& L, AttnMode mode) {
    const HParams& hp = st.m.hp;
    ForwardScratch& s = st.s;
    const ForwardBatch& b = st.b;
    const int64_t n = st.n, Q = hp.q_dim(), KV = hp.kv_dim();
    st.matmul(L.wq, s.xn.data(), n, s.q.data());
    st.matmul(L.wk, s.xn.data(), n, s.k.data());
    st.matmul(L.wv, s.xn.data(), n, s.v.data());
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
    st.rope(s.q.data(), hp.n_head, hp.head_dim);
    st.rope(s.k.data(), hp.n_head_kv, hp.head_dim);
    // K/V to their pool rows, then attention of every sequence over its blocks.
    AttnParams& ap = st.ap;
    ap.q = s.q.data();
    ap.kv = st.kv.view(il, b.block_tables.data(), b.max_blocks);
    ap.mode = mode;
    if (st.kv.type == KvType::i8) {
        store_kv_i8(st.kv, b, il, hp, s.k.data(), s.v.data());
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
}

// Multi-head latent attention (deepseek2) over the latent cache, in the absorbed form: with
// D = n_rot + kv_lora_rank, each token caches one row [RoPE(k_pe) | norm(c)] and each head's
// query becomes [RoPE(q_pe) | W_kb_h^T q_nope], so that q . k of the decompressed keys is a
// dot product with the cached row; attention then runs as MQA (one KV head, head size D)
// whose value is the same row, and each head's latent output goes through W_vb_h. The last
// kv_lora_rank dims of the output are the latent; the first n_rot (p . k_pe) are dropped.
// s.att = [n, n_head * v_head_dim].
void mla_block(Step& st, int il, const LayerWeights& L) {
    const HParams& hp = st.m.hp;
    ForwardScratch& s = st.s;
    const ForwardBatch& b = st.b;
    const int64_t n = st.n, H = hp.n_head, hd = hp.head_dim, R = hp.kv_lora_rank, rot = hp.n_rot,
                  nope = hp.qk_nope_dim(), vd = hp.v_head_dim, D = rot + R;
    if (L.wq_a.empty()) {
        st.matmul(L.wq, s.xn.data(), n, s.q.data());
    } else {
        s.qa.resize(size_t(n * hp.q_lora_rank));
        st.matmul(L.wq_a, s.xn.data(), n, s.qa.data());
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.qa.data() + t * hp.q_lora_rank, L.q_a_norm.data(),
                          s.qa.data() + t * hp.q_lora_rank, hp.q_lora_rank, hp.rms_eps);
        st.matmul(L.wq_b, s.qa.data(), n, s.q.data());
    }
    // The cache row of each token: k_pe first (so one rope call covers it), then the latent.
    st.matmul(L.wkv_a, s.xn.data(), n, s.v.data());  // [n, R + rot]: latent, then k_pe
    for (int64_t t = 0; t < n; ++t) {
        const float* in = s.v.data() + t * (R + rot);
        float* kr = s.k.data() + t * D;
        std::copy_n(in + R, rot, kr);
        cpu::rms_norm(in, L.kv_a_norm.data(), kr + rot, R, hp.rms_eps);
    }
    st.rope(s.k.data(), 1, int(D));
    // Queries: [q_pe | q_nope absorbed into the latent space], per head.
    s.lat.resize(size_t(n * H * D));
    s.qh.resize(size_t(n * std::max(nope, R)));
    s.vh.resize(size_t(n * std::max(R, vd)));
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < n; ++t)
            std::copy_n(s.q.data() + t * H * hd + h * hd, nope, s.qh.data() + t * nope);
        if (hp.mla_kv_b_split)
            st.matmul(L.wk_b.rows(h * R, R), s.qh.data(), n, s.vh.data());
        else
            cpu::matmul_t(L.wkv_b.rows(h * (nope + vd), nope), s.qh.data(), n, s.vh.data());
        for (int64_t t = 0; t < n; ++t) {
            float* qt = s.lat.data() + (t * H + h) * D;
            std::copy_n(s.q.data() + t * H * hd + h * hd + nope, rot, qt);
            std::copy_n(s.vh.data() + t * R, R, qt + rot);
        }
    }
    st.rope(s.lat.data(), int(H), int(D));
    const KvStorage& kv = st.kv;
    AttnParams& ap = st.ap;
    ap.q = s.lat.data();
    ap.out = s.o.data();  // [n, H * D] (sized by llama_forward_cpu)
    ap.kv = kv.view(il, b.block_tables.data(), b.max_blocks);
    ap.mode = AttnMode::f16;
    float* kc = static_cast<float*>(ap.kv.k);
    for (int64_t t = 0; t < n; ++t)
        std::memcpy(kc + int64_t(b.slots[size_t(t)]) * D, s.k.data() + t * D,
                    sizeof(float) * size_t(D));
    cpu::attention(ap);
    // Each head's latent output up-projected to its value.
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < n; ++t)
            std::copy_n(s.o.data() + (t * H + h) * D + rot, R, s.qh.data() + t * R);
        const WeightView wv =
            hp.mla_kv_b_split ? L.wv_b.rows(h * vd, vd) : L.wkv_b.rows(h * (nope + vd) + nope, vd);
        st.matmul(wv, s.qh.data(), n, s.vh.data());
        for (int64_t t = 0; t < n; ++t)
            std::copy_n(s.vh.data() + t * vd, vd, s.att.data() + t * H * vd + h * vd);
    }
    ap.out = s.att.data();
}

// A SwiGLU FFN: down(silu(gate x) * up x) into y.
void swiglu_ffn(const Step& st, const WeightView& gate, const WeightView& up,
                const WeightView& down, const float* x, float* y) {
    ForwardScratch& s = st.s;
    const int64_t F = gate.ne1;
    s.gate.resize(size_t(st.n * F));
    s.up.resize(size_t(st.n * F));
    st.matmul(gate, x, st.n, s.gate.data());
    st.matmul(up, x, st.n, s.up.data());
    cpu::swiglu(s.gate.data(), s.up.data(), st.n * F);
    st.matmul(down, s.gate.data(), st.n, y);
}

// The routed experts (and deepseek2's shared ones) of a MoE layer: s.o = [n, n_embd].
void moe_block(Step& st, const LayerWeights& L) {
    const HParams& hp = st.m.hp;
    ForwardScratch& s = st.s;
    const int64_t n = st.n, E = hp.n_embd;
    s.router.resize(size_t(n * hp.n_expert));
    s.expert_ids.resize(size_t(n * hp.n_expert_used));
    s.expert_w.resize(size_t(n * hp.n_expert_used));
    st.matmul(L.gate_inp, s.xn.data(), n, s.router.data());
    cpu::MoeRouteParams r;
    r.logits = s.router.data();
    r.bias = L.exp_probs_b.empty() ? nullptr : L.exp_probs_b.data();
    r.n_tokens = int(n);
    r.n_expert = hp.n_expert;
    r.n_used = hp.n_expert_used;
    r.gating = hp.expert_gating;
    r.norm = hp.expert_weights_norm;
    r.scale = hp.expert_weights_scale;
    r.n_groups = hp.n_expert_groups;
    r.n_groups_used = hp.n_group_used;
    r.ids = s.expert_ids.data();
    r.weights = s.expert_w.data();
    cpu::moe_route(r);
    cpu::MoeFfnParams f;
    f.x = s.xn.data();
    f.y = s.o.data();
    f.n_tokens = int(n);
    f.n_used = hp.n_expert_used;
    f.ids = s.expert_ids.data();
    f.weights = s.expert_w.data();
    f.gate = L.gate_exps;
    f.up = L.up_exps;
    f.down = L.down_exps;
    f.n_ff = hp.n_ff_exp;
    f.rows_path = st.rows_path;
    cpu::moe_ffn(f);
    if (!L.gate_shexp.empty()) {
        s.moe.resize(size_t(n * E));
        swiglu_ffn(st, L.gate_shexp, L.up_shexp, L.down_shexp, s.xn.data(), s.moe.data());
        for (int64_t i = 0; i < n * E; ++i) s.o[size_t(i)] += s.moe[size_t(i)];
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
    Step st{m,
            kv,
            b,
            s,
            AttnParams(),
            n,
            b.all_decode() && n <= 16,
            m.rope_freq_factors.empty() ? nullptr : m.rope_freq_factors.data()};
    const int64_t E = hp.n_embd;
    // Widths: attention input/output (MLA: the absorbed queries and latent outputs are
    // [n_head, n_rot + kv_lora_rank]; its values [n_head * v_head_dim]).
    const int64_t D = hp.cache_head_dim();
    const int64_t Q = hp.q_dim(), KV = hp.mla ? D : hp.kv_dim();
    const int64_t att = hp.mla ? int64_t(hp.n_head) * hp.v_head_dim : Q;
    const int64_t V = hp.mla ? hp.kv_lora_rank + hp.n_rot : KV;
    s.x.resize(size_t(n * E));
    s.xn.resize(size_t(n * E));
    s.q.resize(size_t(n * Q));
    s.k.resize(size_t(n * KV));
    s.v.resize(size_t(n * V));
    s.att.resize(size_t(n * att));
    s.o.resize(size_t(n * std::max(E, hp.mla ? hp.n_head * D : E)));
    AttnParams& ap = st.ap;
    ap.out = s.att.data();
    ap.n_seqs = b.n_seqs();
    ap.n_tokens = int(n);
    ap.q_start = b.q_start.data();
    ap.kv_len = b.kv_len.data();
    ap.max_q = b.max_q;
    ap.max_kv = b.max_kv;
    ap.n_head = hp.n_head;
    ap.n_head_kv = hp.cache_heads();
    ap.head_dim = int(hp.cache_head_dim());
    ap.softmax_scale = hp.attn_scale;

    // Embedding lookup: dequantize the token's row.
    for (int64_t t = 0; t < n; ++t)
        dequantize_row(m.tok_embd.type, m.tok_embd.row(tokens[t]), s.x.data() + t * E, E);

    for (int il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& L = m.layers[size_t(il)];

        // Attention block.
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.x.data() + t * E, L.attn_norm.data(), s.xn.data() + t * E, E,
                          hp.rms_eps);
        // The accuracy guard's hook sees ordinary attention only (MLA runs f16, Model::load).
        if (hp.mla) {
            mla_block(st, il, L);
        } else {
            attention_block(st, il, L, attn[size_t(il)]);
            if (after_attention) after_attention(il, ap);
        }
        st.matmul(L.wo, s.att.data(), n, s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];

        // Feed-forward block: SwiGLU, or the experts.
        for (int64_t t = 0; t < n; ++t)
            cpu::rms_norm(s.x.data() + t * E, L.ffn_norm.data(), s.xn.data() + t * E, E,
                          hp.rms_eps);
        if (hp.is_moe_layer(il))
            moe_block(st, L);
        else
            swiglu_ffn(st, L.w_gate, L.w_up, L.w_down, s.xn.data(), s.o.data());
        for (int64_t i = 0; i < n * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];
    }

    // Final norm and the output projection, only for the rows whose logits are wanted.
    const int64_t n_out = int64_t(b.out_rows.size());
    for (int64_t i = 0; i < n_out; ++i)
        cpu::rms_norm(s.x.data() + int64_t(b.out_rows[size_t(i)]) * E, m.output_norm.data(),
                      s.xn.data() + i * E, E, hp.rms_eps);
    if (n_out > 0) st.matmul(m.output, s.xn.data(), n_out, logits);
}

}  // namespace llm8
