// The Llama-family layer schedule on the GPU: the same steps as src/model/llama_forward.cpp,
// over the device ops of cuda/ops.h, for one Step (cuda/context.h) of a batch of sequences.
// The kernel choices come from the per-layer plan (DeviceContext::paths, made once in
// cuda/context.cu); this file only sequences them.
//
// Decode steps (one token of each of up to 64 sequences): the decode kernels (gemv_decode.cu) with int8 activations (float for F16 weights), weights read
// once per 16 tokens, the attention writing int8 for W_o; one token also folds bias + RoPE +
// K/V store into the Q/K/V GEMV's epilogue (9 launches per layer). Weight types without a
// decode kernel, and more tokens: RMSNorm, gemv() (<= 8 tokens) or dequantize + cuBLAS,
// bias + RoPE + K/V store, attention over the paged cache, and so on.
#include "cuda/context.h"

namespace llm8 {
namespace cuda {

void forward_step(DeviceContext& c, const Step& st) {
    // Decode steps (every sequence one token, at most kDecodeTokens of them) take the decode
    // GEMVs; prefill chunks keep the float path, so a sequence's prompt gives the same logits
    // whatever else is in the batch.
    const bool decode_step = st.max_q == 1 && st.n <= DeviceContext::kDecodeTokens;
    const DeviceModel& m = *c.dm;
    const HParams& hp = m.hp;
    const int64_t n = st.n;
    const int64_t E = hp.n_embd;
    cudaStream_t s = c.stream;
    const int64_t layer_kv = c.pool_rows * int64_t(hp.kv_dim());
    Profiler& prof = c.prof;

    auto mm = [&](const DeviceMatrix& w, const float* in, int64_t rows, float* out) {
        matmul(w, in, rows, out, c.mm_ws.get(), c.cublas, s);
    };
    // The int8 activations in act_q / act_ds, as decode_act (or the attention) leaves them.
    auto q8_input = [&] {
        DecodeAct a;
        a.kind = ActKind::q8;
        a.q = c.act_q.get();
        a.ds = c.act_ds.get();
        return a;
    };
    auto decode_input = [&](const float* in, int64_t K, const float* norm_w, ActKind k,
                            int64_t rows) {
        if (k == ActKind::q8) {
            decode_act(in, K, norm_w, hp.rms_eps, k, nullptr, c.act_q.get(), c.act_ds.get(), s,
                       int(rows));
            return q8_input();
        }
        DecodeAct a;
        a.kind = k;
        if (norm_w) {
            decode_act(in, K, norm_w, hp.rms_eps, k, c.xn.get(), nullptr, nullptr, s, int(rows));
            a.f = c.xn.get();
        } else {
            a.f = in;
        }
        return a;
    };
    // Rows through the decode GEMV of the plan's kind (weights read once per 16 rows): one row,
    // or the rows of a decode step; false when the plan has none.
    auto decode_gemv = [&](const DeviceMatrix* w, float* const* y, int count, const float* in,
                           int64_t rows, const float* norm_w, GemvMode mode, ActKind k) {
        if ((rows != 1 && !decode_step) || k == ActKind::none) return false;
        const DecodeAct a = decode_input(in, w[0].ne0, norm_w, k, rows);
        if (!gemv_decode(w, y, count, a, mode, s, nullptr, int(rows)))
            fail(ErrorKind::runtime, "CUDA decode GEMV: a matrix group of the plan was refused");
        return true;
    };
    // y = W * rmsnorm(x) for the given matrices; mode swiglu writes silu(W_0 xn) * (W_1 xn).
    auto norm_matmul = [&](const DeviceMatrix* w, float* const* y, int count, const float* norm_w,
                           GemvMode mode, ActKind k) {
        if (decode_gemv(w, y, count, c.x.get(), n, norm_w, mode, k)) return;
        rms_norm(c.x.get(), norm_w, c.xn.get(), n, int(E), hp.rms_eps, s);
        for (int i = 0; i < count; ++i) mm(w[i], c.xn.get(), n, y[i]);
        if (mode == GemvMode::swiglu) swiglu(y[0], y[1], n * w[0].ne1, s);
    };
    // x += W * in. in_q8: the attention already left `in` quantized in act_q / act_ds.
    auto residual_matmul = [&](const DeviceMatrix& w, const float* in, bool in_q8, ActKind k) {
        float* y = c.x.get();
        if (in_q8) {
            if (!gemv_decode(&w, &y, 1, q8_input(), GemvMode::accumulate, s, nullptr, int(n)))
                fail(ErrorKind::runtime, "CUDA decode GEMV: Wo refused its int8 input");
            return;
        }
        if (decode_gemv(&w, &y, 1, in, n, nullptr, GemvMode::accumulate, k)) return;
        mm(w, in, n, c.o.get());
        add(c.x.get(), c.o.get(), n * E, s);
    };

    AttnParams ap;
    ap.q = c.q.get();
    ap.out = c.att.get();
    ap.n_seqs = st.n_seqs;
    ap.n_tokens = int(n);
    ap.q_start = st.q_start;
    ap.kv_len = st.kv_len;
    ap.max_q = st.max_q;
    ap.max_kv = st.max_kv;
    ap.n_head = hp.n_head;
    ap.n_head_kv = hp.n_head_kv;
    ap.head_dim = hp.head_dim;
    ap.ws = c.attn_ws.get();
    ap.ws_floats = c.attn_ws.size();
    const bool i8 = c.kv_type == KvType::i8;
    const int64_t layer_scales = c.pool_rows * int64_t(hp.n_head_kv);
    ap.kv.type = c.kv_type;
    ap.kv.kv_dim = hp.kv_dim();
    ap.kv.block_size = c.block_size;
    ap.kv.block_shift = c.block_shift;
    ap.kv.block_tables = st.tables;
    ap.kv.max_blocks = st.table_stride;
    ap.kv_tiles = st.kv_tiles;
    // Prefill steps of a plan with 8-bit layers: their scratch (sized for this step).
    const bool prefill = st.max_q >= 16;
    bool any8 = false;
    for (AttnMode md : c.attn_modes) any8 |= md != AttnMode::f16;
    if (any8 && prefill && !st.capture) ensure_ws8(c, ap);

    prof.phase(decode_step ? "decode" : "prefill");
    prof.mark("start");
    get_rows(m.tok_embd, st.tokens, int(n), c.x.get(), s);
    prof.mark("embed");
    for (int il = 0; il < hp.n_layer; ++il) {
        const DeviceLayer& L = m.layers[size_t(il)];
        const LayerPath& P = c.paths[size_t(il)];
        const DeviceMatrix qkv[3] = {L.wq, L.wk, L.wv};
        float* const qkv_out[3] = {c.q.get(), c.k.get(), c.v.get()};
        // This layer's pools: halves, or bytes with their scales (c.kc/vc are empty then).
        uint16_t* kc = i8 ? nullptr : c.kc.get() + size_t(il) * size_t(layer_kv);
        uint16_t* vc = i8 ? nullptr : c.vc.get() + size_t(il) * size_t(layer_kv);
        int8_t* k8 = i8 ? c.k8.get() + size_t(il) * size_t(layer_kv) : nullptr;
        int8_t* v8 = i8 ? c.v8.get() + size_t(il) * size_t(layer_kv) : nullptr;
        float* ks = i8 ? c.ks.get() + size_t(il) * size_t(layer_scales) : nullptr;
        float* vs = i8 ? c.vs.get() + size_t(il) * size_t(layer_scales) : nullptr;
        bool fused_rope = false;
        if (n == 1 && P.fuse_rope) {
            RopeFuse rf;
            rf.pos = st.pos;
            rf.slot = st.slots;
            rf.kc = kc;  // null for the INT8 cache: K and V floats to c.k, c.v (new_k below)
            rf.vc = vc;
            rf.bq = L.bq;
            rf.bk = L.bk;
            rf.bv = L.bv;
            rf.factors = m.rope_factors;
            rf.head_dim = hp.head_dim;
            rf.n_rot = hp.n_rot;
            rf.base = hp.rope_freq_base;
            rf.freq_scale = hp.rope_freq_scale;
            const DecodeAct a = decode_input(c.x.get(), L.wq.ne0, L.attn_norm, P.qkv, 1);
            fused_rope = gemv_decode(qkv, qkv_out, 3, a, GemvMode::qkv_rope, s, &rf);
            if (!fused_rope)
                fail(ErrorKind::runtime, "CUDA decode GEMV: the plan's fused Q/K/V was refused");
            prof.mark("norm+qkv");  // RoPE and the F16 cache's K/V store included
        } else {
            norm_matmul(qkv, qkv_out, 3, L.attn_norm, GemvMode::store, P.qkv);
            prof.mark("norm+qkv");
            if (L.q_norm) {  // qwen3: per-head RMSNorm of Q and K before RoPE
                rms_norm(c.q.get(), L.q_norm, c.q.get(), n * hp.n_head, hp.head_dim, hp.rms_eps,
                         s);
                rms_norm(c.k.get(), L.k_norm, c.k.get(), n * hp.n_head_kv, hp.head_dim,
                         hp.rms_eps, s);
            }
            if (i8)
                rope_store_i8(c.q.get(), c.k.get(), c.v.get(), L.bq, L.bk, L.bv,
                              c.k_mean.get() + int64_t(il) * hp.kv_dim(), k8, v8, ks, vs, n,
                              st.pos, st.slots, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_rot,
                              hp.rope, hp.rope_freq_base, hp.rope_freq_scale, m.rope_factors, s);
            else
                rope_store(c.q.get(), c.k.get(), c.v.get(), L.bq, L.bk, L.bv, kc, vc, n, st.pos,
                           st.slots, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_rot, hp.rope,
                           hp.rope_freq_base, hp.rope_freq_scale, m.rope_factors, s);
        }
        prof.mark("rope+kv");
        // Decode steps whose Wo reads int8: the attention writes its output quantized too.
        const bool want_q8 = (n == 1 || decode_step) && P.wo == ActKind::q8;
        ap.kv.k = i8 ? static_cast<void*>(k8) : kc;
        ap.kv.v = i8 ? static_cast<void*>(v8) : vc;
        ap.kv.k_scale = ks;
        ap.kv.v_scale = vs;
        // The INT8 cache's rows of a fused step: the decode attention quantizes them (plan).
        const bool attn_stores = fused_rope && i8;
        ap.new_k = attn_stores ? c.k.get() : nullptr;
        ap.new_v = attn_stores ? c.v.get() : nullptr;
        ap.k_mean = attn_stores ? c.k_mean.get() + int64_t(il) * hp.kv_dim() : nullptr;
        ap.q8 = want_q8 ? c.act_q.get() : nullptr;
        ap.q8_ds = want_q8 ? c.act_ds.get() : nullptr;
        ap.mode = prefill && ap.ws8 ? c.attn_modes[size_t(il)] : AttnMode::f16;
        const bool att_q8 = attention(ap, s);
        if (c.attn_hook && !st.capture) c.attn_hook(il, ap);  // the guard (may replace out)
        prof.mark("attention");
        residual_matmul(L.wo, c.att.get(), att_q8, P.wo);
        prof.mark("wo+add");
        const DeviceMatrix gu[2] = {L.w_gate, L.w_up};
        float* const gu_out[2] = {c.gate.get(), c.up.get()};
        norm_matmul(gu, gu_out, 2, L.ffn_norm, GemvMode::swiglu, P.gate_up);
        prof.mark("norm+ffn_in");
        residual_matmul(L.w_down, c.gate.get(), false, P.down);
        prof.mark("down+add");
    }
    if (st.n_out > 0) {
        // The rows whose logits are wanted: in place when they are a range, else gathered.
        const float* rows = c.x.get() + int64_t(std::max(st.out_first, 0)) * E;
        if (st.out_first < 0) {
            const DeviceMatrix xm{GgmlType::F32, E, n, size_t(E) * sizeof(float),
                                  reinterpret_cast<const uint8_t*>(c.x.get()), false};
            get_rows(xm, st.out_rows, st.n_out, c.xg.get(), s);
            rows = c.xg.get();
        }
        float* out = c.logits.get();
        const ActKind k = decode_act_kind(m.output);
        if (!decode_gemv(&m.output, &out, 1, rows, st.n_out, m.output_norm, GemvMode::store, k)) {
            rms_norm(rows, m.output_norm, c.xn.get(), st.n_out, int(E), hp.rms_eps, s);
            mm(m.output, c.xn.get(), st.n_out, out);
        }
        prof.mark("output");
    }
}

}  // namespace cuda
}  // namespace llm8
