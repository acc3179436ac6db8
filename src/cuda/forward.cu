// The Llama-family forward pass on the GPU: the same steps as src/model/llama_forward.cpp, over
// the device ops of cuda/ops.h. Weights are uploaded once in their file types (quantized
// blocks as they are) into one allocation; the KV cache is half precision; activations and the
// residual stream are float. Decode steps (one token) are captured once into a CUDA graph and
// replayed: the token, its position and the KV length are read from device memory, so nothing
// in a step waits on the host except the copy of the logits back.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/backend.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "llm8/sampling_cuda.h"
#include "model/llama.h"

namespace llm8 {
namespace cuda {

struct DeviceLayer {
    DeviceMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
    const float *attn_norm = nullptr, *ffn_norm = nullptr;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *q_norm = nullptr, *k_norm = nullptr;
};

class DeviceModel {
public:
    HParams hp;
    int device = 0;
    DeviceArray<uint8_t> mem;
    size_t bytes = 0;
    DeviceMatrix tok_embd, output;
    const float* output_norm = nullptr;
    const float* rope_factors = nullptr;
    std::vector<DeviceLayer> layers;
};

bool available(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why) *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device found";
        cudaGetLastError();
        return false;
    }
    return true;
}

std::string device_name(int device) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "unknown";
    return p.name;
}

size_t device_model_bytes(const DeviceModel& dm) {
    return dm.bytes;
}

std::shared_ptr<DeviceModel> upload_model(const LlamaModel& m, int device) {
    LLM8_CUDA_CHECK(cudaSetDevice(device));
    auto dm = std::make_shared<DeviceModel>();
    dm->hp = m.hp;
    dm->device = device;

    // Plan one allocation: every tensor at a 256-byte aligned offset.
    struct Item {
        const void* src;
        size_t bytes;
        size_t off;
    };
    std::vector<Item> items;
    size_t total = 0;
    auto plan = [&](const void* src, size_t bytes) {
        items.push_back({src, bytes, total});
        total += (bytes + 255) / 256 * 256;
        return items.size() - 1;
    };
    auto plan_w = [&](const WeightView& w) { return plan(w.data, w.row_bytes * size_t(w.ne1)); };
    auto plan_v = [&](const std::vector<float>& v) {
        return v.empty() ? size_t(-1) : plan(v.data(), v.size() * sizeof(float));
    };
    struct LayerIdx {
        size_t wq, wk, wv, wo, g, u, d, an, fn, bq, bk, bv, qn, kn;
    };
    const size_t i_emb = plan_w(m.tok_embd);
    const size_t i_out = m.tied_output ? i_emb : plan_w(m.output);
    const size_t i_on = plan_v(m.output_norm);
    const size_t i_rf = plan_v(m.rope_freq_factors);
    std::vector<LayerIdx> li;
    for (const LayerWeights& L : m.layers)
        li.push_back({plan_w(L.wq), plan_w(L.wk), plan_w(L.wv), plan_w(L.wo), plan_w(L.w_gate),
                      plan_w(L.w_up), plan_w(L.w_down), plan_v(L.attn_norm), plan_v(L.ffn_norm),
                      plan_v(L.bq), plan_v(L.bk), plan_v(L.bv), plan_v(L.q_norm),
                      plan_v(L.k_norm)});
    dm->mem.resize(total);
    dm->bytes = total;
    for (const Item& it : items)
        LLM8_CUDA_CHECK(
            cudaMemcpy(dm->mem.get() + it.off, it.src, it.bytes, cudaMemcpyHostToDevice));

    uint8_t* base = dm->mem.get();
    // Q4_0/Q8_0 matrices (not the embedding, which get_rows gathers) are repacked into the
    // split layout through a scratch copy: the decode GEMV's integer kernels read it.
    // LLM8_SPLIT=0 keeps ggml's blocks (A/B switch; the decode path then takes gemv()).
    static const bool no_split = switched_off("LLM8_SPLIT");
    DeviceArray<uint8_t> scratch;
    auto mat = [&](const WeightView& w, size_t i) {
        DeviceMatrix d{w.type, w.ne0, w.ne1, w.row_bytes, base + items[i].off, false};
        return d;
    };
    auto mat_split = [&](const WeightView& w, size_t i) {
        DeviceMatrix d = mat(w, i);
        if (no_split || !can_split(d)) return d;
        const size_t bytes = d.row_bytes * size_t(d.ne1);
        scratch.resize(bytes);
        LLM8_CUDA_CHECK(cudaMemcpy(scratch.get(), d.data, bytes, cudaMemcpyDeviceToDevice));
        repack_split(d, scratch.get(), base + items[i].off, nullptr);
        d.split = true;
        return d;
    };
    auto vec = [&](size_t i) {
        return i == size_t(-1) ? nullptr : reinterpret_cast<const float*>(base + items[i].off);
    };
    dm->tok_embd = mat(m.tok_embd, i_emb);
    dm->output = m.tied_output ? dm->tok_embd : mat_split(m.output, i_out);
    dm->output_norm = vec(i_on);
    dm->rope_factors = vec(i_rf);
    for (size_t l = 0; l < m.layers.size(); ++l) {
        const LayerWeights& L = m.layers[l];
        const LayerIdx& x = li[l];
        DeviceLayer d;
        d.wq = mat_split(L.wq, x.wq);
        d.wk = mat_split(L.wk, x.wk);
        d.wv = mat_split(L.wv, x.wv);
        d.wo = mat_split(L.wo, x.wo);
        d.w_gate = mat_split(L.w_gate, x.g);
        d.w_up = mat_split(L.w_up, x.u);
        d.w_down = mat_split(L.w_down, x.d);
        d.attn_norm = vec(x.an);
        d.ffn_norm = vec(x.fn);
        d.bq = vec(x.bq);
        d.bk = vec(x.bk);
        d.bv = vec(x.bv);
        d.q_norm = vec(x.qn);
        d.k_norm = vec(x.kn);
        dm->layers.push_back(d);
    }
    LLM8_CUDA_CHECK(cudaDeviceSynchronize());
    return dm;
}

class DeviceSession {
public:
    std::shared_ptr<DeviceModel> dm;
    int n_ctx = 0, n_batch = 0;
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    DeviceArray<uint16_t> kc, vc, mm_ws;
    DeviceArray<float> x, xn, q, k, v, att, o, gate, up, logits, attn_ws;
    DeviceArray<int32_t> tokens, pos, pos0;
    DeviceArray<float> norm_scale;  // [n_batch]: 1/rms per token for the fused GEMVs
    DeviceArray<int8_t> act_q;      // one token's int8 activations for the decode GEMV
    DeviceArray<float> act_ds;      // their (scale, sum) pairs per 32
    int32_t* h_ints = nullptr;      // pinned: tokens, positions, pos0
    float* h_logits = nullptr;      // pinned
    size_t h_logits_n = 0;
    uint8_t* h_sample = nullptr;  // pinned staging of the GPU sampler's parameters
    size_t h_sample_n = 0;
    DeviceArray<uint8_t> d_sample;
    DeviceArray<int32_t> sample_out;  // token, status
    DeviceArray<uint8_t> sample_ws;   // the sampler's workspace (zeroed once; it stays zeroed)
    cudaGraphExec_t graph = nullptr;

    ~DeviceSession() {
        if (graph) cudaGraphExecDestroy(graph);
        if (cublas) cublasDestroy(cublas);
        if (stream) cudaStreamDestroy(stream);
        if (h_ints) cudaFreeHost(h_ints);
        if (h_logits) cudaFreeHost(h_logits);
        if (h_sample) cudaFreeHost(h_sample);
    }
};

static void destroy_session(DeviceSession* s) {
    delete s;
}

std::unique_ptr<DeviceSession, void (*)(DeviceSession*)> create_session(
    std::shared_ptr<DeviceModel> dm, int n_ctx, int n_batch) {
    std::unique_ptr<DeviceSession, void (*)(DeviceSession*)> s(new DeviceSession(),
                                                               destroy_session);
    LLM8_CUDA_CHECK(cudaSetDevice(dm->device));
    const HParams& hp = dm->hp;
    s->dm = dm;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    LLM8_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    LLM8_CUBLAS_CHECK(cublasCreate(&s->cublas));
    LLM8_CUBLAS_CHECK(cublasSetStream(s->cublas, s->stream));
    const size_t B = size_t(n_batch), E = size_t(hp.n_embd), Q = size_t(hp.q_dim()),
                 KV = size_t(hp.kv_dim()), F = size_t(hp.n_ff);
    s->kc.resize(size_t(hp.n_layer) * size_t(n_ctx) * KV);
    s->vc.resize(s->kc.size());
    s->x.resize(B * E);
    s->xn.resize(B * E);
    s->q.resize(B * Q);
    s->k.resize(B * KV);
    s->v.resize(B * KV);
    s->att.resize(B * Q);
    s->o.resize(B * E);
    s->gate.resize(B * F);
    s->up.resize(B * F);
    s->logits.resize(B * size_t(hp.n_vocab));
    s->tokens.resize(B);
    s->pos.resize(B);
    s->pos0.resize(1);
    s->norm_scale.resize(B);
    const size_t widest = std::max({E, Q, F});
    s->act_q.resize(widest);
    s->act_ds.resize(widest / 32 * 2 + 2);
    s->sample_out.resize(2);
    s->sample_ws.resize(llm8_sample_cuda_workspace_size(1, int32_t(dm->hp.n_vocab)));
    LLM8_CUDA_CHECK(cudaMemset(s->sample_ws.get(), 0, s->sample_ws.size()));
    size_t ws = 0;
    const DeviceModel& m = *dm;
    auto need = [&](const DeviceMatrix& w) {
        ws = std::max(ws, matmul_workspace_elems(w, int64_t(B)));
    };
    need(m.output);
    for (const DeviceLayer& L : m.layers)
        for (const DeviceMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
            need(*w);
    s->mm_ws.resize(std::max<size_t>(ws, 1));
    // Attention scratch: the larger of a full batch at the longest prefix and one decode token.
    s->attn_ws.resize(
        std::max(attention_workspace_floats(int64_t(B), hp.n_head, hp.head_dim, n_ctx),
                 attention_workspace_floats(1, hp.n_head, hp.head_dim, n_ctx)));
    LLM8_CUDA_CHECK(cudaMallocHost(&s->h_ints, sizeof(int32_t) * (2 * B + 1)));
    return s;
}

namespace {

// LLM8_PROFILE=1: time every op of the forward pass with CUDA events (graphs off) and print a
// table per op kind at exit. For finding where a step's time goes; costs a sync per step.
struct Profiler {
    bool on = false;
    cudaStream_t stream = nullptr;
    std::vector<std::pair<std::string, cudaEvent_t>> marks;  // (op that ends here, event)
    std::vector<std::pair<std::string, std::pair<double, long>>> totals;
    long steps = 0;

    Profiler() { on = std::getenv("LLM8_PROFILE") != nullptr; }
    ~Profiler() {
        if (!on || totals.empty()) return;
        double all = 0;
        for (auto& t : totals) all += t.second.first;
        std::fprintf(stderr, "\nllm8 profile (%ld forward calls, %.3f ms per call)\n", steps,
                     all / std::max(1L, steps));
        for (auto& t : totals)
            std::fprintf(stderr, "  %-12s %9.3f ms/call %6.1f%%  (%ld launches)\n", t.first.c_str(),
                         t.second.first / std::max(1L, steps), 100.0 * t.second.first / all,
                         t.second.second);
    }
    void mark(const char* what) {
        if (!on) return;
        cudaEvent_t e;
        cudaEventCreate(&e);
        cudaEventRecord(e, stream);
        marks.emplace_back(what, e);
    }
    void collect() {
        if (!on || marks.empty()) return;
        cudaEventSynchronize(marks.back().second);
        for (size_t i = 1; i < marks.size(); ++i) {
            float ms = 0;
            cudaEventElapsedTime(&ms, marks[i - 1].second, marks[i].second);
            auto it = std::find_if(totals.begin(), totals.end(),
                                   [&](auto& t) { return t.first == marks[i].first; });
            if (it == totals.end())
                totals.push_back({marks[i].first, {ms, 1}});
            else
                it->second.first += ms, it->second.second += 1;
        }
        for (auto& m : marks) cudaEventDestroy(m.second);
        marks.clear();
        ++steps;
    }
};
Profiler g_prof;
#define LLM8_PROF(what) g_prof.mark(what)

// Everything between the token upload and the logits download. max_keys bounds pos0 + n.
// With LLM8_FUSE=1, up to 8 tokens (decode) take the fused GEMVs: 7 launches per layer
// (norm+QKV, bias+RoPE+KV store, attention x2, Wo+residual, norm+gate+up+SwiGLU,
// down+residual). Otherwise (the default, faster today) separate norm, GEMV/cuBLAS and add
// launches. The fused path falls back to separate ops where a launch does not fit (mixed
// weight types, odd row lengths).
void forward_body(DeviceSession& s, int64_t n, int64_t n_out, int max_keys) {
    const DeviceModel& m = *s.dm;
    const HParams& hp = m.hp;
    const int64_t E = hp.n_embd, KV = hp.kv_dim();
    cudaStream_t st = s.stream;
    const size_t layer_kv = size_t(s.n_ctx) * size_t(KV);
    // The fused decode GEMVs (gemv_fused.cu) are opt-in: measured on an H200 (2026-11-21),
    // llama-2-7B Q4_0 tg128 ran at 188 t/s fused against 199 t/s with separate launches. Both
    // are limited by the GEMV's small loads (~17% of DRAM bandwidth per ncu), not by launches;
    // see docs/benchmarks.md.
    static const bool fuse = std::getenv("LLM8_FUSE") != nullptr;
    const bool small = n <= 8 && fuse;
    auto mm = [&](const DeviceMatrix& w, const float* in, int64_t rows, float* out) {
        matmul(w, in, rows, out, s.mm_ws.get(), s.cublas, st);
    };
    // One token: the decode kernels (gemv_decode.cu) serve a group of matrices when all of
    // them have one for the same activation kind (same type and row length).
    auto decode_kind = [&](const DeviceMatrix* w, int count) {
        const ActKind k = decode_act_kind(w[0]);
        for (int i = 1; i < count; ++i)
            if (decode_act_kind(w[i]) != k || w[i].type != w[0].type || w[i].ne0 != w[0].ne0)
                return ActKind::none;
        return k;
    };
    // The int8 activations in act_q / act_ds, as decode_act (or the attention) leaves them.
    auto q8_input = [&] {
        DecodeAct a;
        a.kind = ActKind::q8;
        a.q = s.act_q.get();
        a.ds = s.act_ds.get();
        return a;
    };
    auto decode_input = [&](const float* in, int64_t K, const float* norm_w, ActKind k) {
        if (k == ActKind::q8) {
            decode_act(in, K, norm_w, hp.rms_eps, k, nullptr, s.act_q.get(), s.act_ds.get(), st);
            return q8_input();
        }
        DecodeAct a;
        a.kind = k;
        if (norm_w) {
            decode_act(in, K, norm_w, hp.rms_eps, k, s.xn.get(), nullptr, nullptr, st);
            a.f = s.xn.get();
        } else {
            a.f = in;
        }
        return a;
    };
    auto decode_gemv = [&](const DeviceMatrix* w, float* const* y, int count, const float* in,
                           int64_t rows, const float* norm_w, GemvMode mode) {
        if (rows != 1) return false;
        const ActKind k = decode_kind(w, count);
        if (k == ActKind::none) return false;
        const DecodeAct a = decode_input(in, w[0].ne0, norm_w, k);
        if (!gemv_decode(w, y, count, a, mode, st))
            fail(ErrorKind::runtime, "CUDA decode GEMV: a matrix group it was given was refused");
        return true;
    };
    // Q/K/V with bias + RoPE + K/V append in the epilogue (GemvMode::qkv_rope); false when
    // the shapes do not allow it (nothing launched but the activations).
    auto decode_gemv_rope = [&](const DeviceMatrix* w, float* const* y, const float* norm_w,
                                const RopeFuse* rf) {
        const DecodeAct a = decode_input(s.x.get(), w[0].ne0, norm_w, decode_kind(w, 3));
        return gemv_decode(w, y, 3, a, GemvMode::qkv_rope, st, rf);
    };
    // LLM8_FUSE_ROPE=0 keeps rope_store separate (A/B switch).
    static const bool fuse_rope_ok = !switched_off("LLM8_FUSE_ROPE");
    // y = W * rmsnorm(x) for the given matrices (fused when possible); mode swiglu writes
    // silu(W_0 xn) * (W_1 xn) to y[0].
    auto scale_of = [&](const float* xin, int64_t rows) {
        rms_scale(xin, rows, E, hp.rms_eps, s.norm_scale.get(), st);
        return s.norm_scale.get();
    };
    auto norm_matmul = [&](const DeviceMatrix* w, float* const* y, int count, const float* norm_w,
                           GemvMode mode) {
        if (decode_gemv(w, y, count, s.x.get(), n, norm_w, mode)) return;
        if (small &&
            gemv_fused(w, y, count, s.x.get(), int(n), norm_w, scale_of(s.x.get(), n), mode, st))
            return;
        rms_norm(s.x.get(), norm_w, s.xn.get(), n, int(E), hp.rms_eps, st);
        for (int i = 0; i < count; ++i) mm(w[i], s.xn.get(), n, y[i]);
        if (mode == GemvMode::swiglu) swiglu(y[0], y[1], n * w[0].ne1, st);
    };
    // x += W * in. in_q8: the attention already left `in` quantized in act_q / act_ds.
    auto residual_matmul = [&](const DeviceMatrix& w, const float* in, bool in_q8) {
        float* y = s.x.get();
        if (in_q8) {
            if (!gemv_decode(&w, &y, 1, q8_input(), GemvMode::accumulate, st))
                fail(ErrorKind::runtime, "CUDA decode GEMV: Wo refused its int8 input");
            return;
        }
        if (decode_gemv(&w, &y, 1, in, n, nullptr, GemvMode::accumulate)) return;
        if (small && gemv_fused(&w, &y, 1, in, int(n), nullptr, nullptr, GemvMode::accumulate, st))
            return;
        mm(w, in, n, s.o.get());
        add(s.x.get(), s.o.get(), n * E, st);
    };

    LLM8_PROF("start");
    get_rows(m.tok_embd, s.tokens.get(), int(n), s.x.get(), st);
    LLM8_PROF("embed");
    for (int il = 0; il < hp.n_layer; ++il) {
        const DeviceLayer& L = m.layers[size_t(il)];
        const DeviceMatrix qkv[3] = {L.wq, L.wk, L.wv};
        float* const qkv_out[3] = {s.q.get(), s.k.get(), s.v.get()};
        uint16_t* kc = s.kc.get() + size_t(il) * layer_kv;
        uint16_t* vc = s.vc.get() + size_t(il) * layer_kv;
        // One token, adjacent-pair RoPE, no Q/K norm: bias, RoPE and the K/V append happen in
        // the Q/K/V GEMV's epilogue (one launch fewer per layer).
        RopeFuse rf;
        rf.pos = s.pos.get();
        rf.pos0 = s.pos0.get();
        rf.kc = kc;
        rf.vc = vc;
        rf.bq = L.bq;
        rf.bk = L.bk;
        rf.bv = L.bv;
        rf.factors = m.rope_factors;
        rf.head_dim = hp.head_dim;
        rf.n_rot = hp.n_rot;
        rf.base = hp.rope_freq_base;
        rf.freq_scale = hp.rope_freq_scale;
        const bool fused_rope = n == 1 && hp.rope == RopeLayout::norm && !L.q_norm &&
                                decode_kind(qkv, 3) != ActKind::none && fuse_rope_ok &&
                                decode_gemv_rope(qkv, qkv_out, L.attn_norm, &rf);
        if (fused_rope) LLM8_PROF("norm+qkv");  // RoPE and the K/V append included
        if (!fused_rope) {
            norm_matmul(qkv, qkv_out, 3, L.attn_norm, GemvMode::store);
            LLM8_PROF("norm+qkv");
            if (L.q_norm) {  // qwen3: per-head RMSNorm of Q and K before RoPE
                rms_norm(s.q.get(), L.q_norm, s.q.get(), n * hp.n_head, hp.head_dim, hp.rms_eps,
                         st);
                rms_norm(s.k.get(), L.k_norm, s.k.get(), n * hp.n_head_kv, hp.head_dim, hp.rms_eps,
                         st);
            }
            rope_store(s.q.get(), s.k.get(), s.v.get(), L.bq, L.bk, L.bv, kc, vc, n, s.pos.get(),
                       s.pos0.get(), hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_rot, hp.rope,
                       hp.rope_freq_base, hp.rope_freq_scale, m.rope_factors, st);
        }
        LLM8_PROF("rope+kv");
        // One token whose Wo reads int8: the attention writes its output quantized too.
        const bool want_q8 = n == 1 && decode_kind(&L.wo, 1) == ActKind::q8;
        const bool att_q8 = attention_f16(s.q.get(), kc, vc, n, s.pos0.get(), max_keys, hp.n_head,
                                          hp.n_head_kv, hp.head_dim, s.att.get(), s.attn_ws.get(),
                                          st, want_q8 ? s.act_q.get() : nullptr, s.act_ds.get());
        LLM8_PROF("attention");
        residual_matmul(L.wo, s.att.get(), att_q8);
        LLM8_PROF("wo+add");
        const DeviceMatrix gu[2] = {L.w_gate, L.w_up};
        float* const gu_out[2] = {s.gate.get(), s.up.get()};
        norm_matmul(gu, gu_out, 2, L.ffn_norm, GemvMode::swiglu);
        LLM8_PROF("norm+ffn_in");
        residual_matmul(L.w_down, s.gate.get(), false);
        LLM8_PROF("down+add");
    }
    if (n_out > 0) {
        const float* last = s.x.get() + (n - n_out) * E;
        float* out = s.logits.get();
        if (!decode_gemv(&m.output, &out, 1, last, n_out, m.output_norm, GemvMode::store) &&
            !(n_out <= 8 && gemv_fused(&m.output, &out, 1, last, int(n_out), m.output_norm,
                                       scale_of(last, n_out), GemvMode::store, st))) {
            rms_norm(last, m.output_norm, s.xn.get(), n_out, int(E), hp.rms_eps, st);
            mm(m.output, s.xn.get(), n_out, out);
        }
        LLM8_PROF("output");
    }
}

}  // namespace

namespace {

// Uploads the tokens and positions and runs the forward (the decode graph for one token);
// the logits of the last n_out tokens are left in s.logits.
void launch_forward(DeviceSession& s, const int32_t* tokens, int64_t n, int64_t pos0,
                    int64_t n_out) {
    if (n < 1 || n > s.n_batch) fail(ErrorKind::invalid_arg, "CUDA forward: bad token count");
    if (pos0 + n > s.n_ctx) fail(ErrorKind::invalid_arg, "CUDA forward: context overflow");
    LLM8_CUDA_CHECK(cudaSetDevice(s.dm->device));
    // Tokens, positions and pos0 go up in one copy from pinned memory.
    std::memcpy(s.h_ints, tokens, sizeof(int32_t) * size_t(n));
    for (int64_t t = 0; t < n; ++t) s.h_ints[n + t] = int32_t(pos0 + t);
    s.h_ints[2 * n] = int32_t(pos0);
    LLM8_CUDA_CHECK(cudaMemcpyAsync(s.tokens.get(), s.h_ints, sizeof(int32_t) * size_t(n),
                                    cudaMemcpyHostToDevice, s.stream));
    LLM8_CUDA_CHECK(cudaMemcpyAsync(s.pos.get(), s.h_ints + n, sizeof(int32_t) * size_t(n),
                                    cudaMemcpyHostToDevice, s.stream));
    LLM8_CUDA_CHECK(cudaMemcpyAsync(s.pos0.get(), s.h_ints + 2 * n, sizeof(int32_t),
                                    cudaMemcpyHostToDevice, s.stream));
    static const bool no_graph = std::getenv("LLM8_NO_GRAPH") != nullptr;
    g_prof.stream = s.stream;
    if (n == 1 && n_out == 1 && !no_graph && !g_prof.on) {
        if (!s.graph) {
            cudaGraph_t g;
            LLM8_CUDA_CHECK(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal));
            try {
                forward_body(s, 1, 1, s.n_ctx);
            } catch (...) {
                cudaStreamEndCapture(s.stream, &g);
                throw;
            }
            LLM8_CUDA_CHECK(cudaStreamEndCapture(s.stream, &g));
            LLM8_CUDA_CHECK(cudaGraphInstantiate(&s.graph, g, 0));
            LLM8_CUDA_CHECK(cudaGraphDestroy(g));
        }
        LLM8_CUDA_CHECK(cudaGraphLaunch(s.graph, s.stream));
    } else {
        forward_body(s, n, n_out, n == 1 ? s.n_ctx : int(pos0 + n));
        g_prof.collect();
    }
}

}  // namespace

void forward(DeviceSession& s, const int32_t* tokens, int64_t n, int64_t pos0, int64_t n_out,
             float* logits) {
    launch_forward(s, tokens, n, pos0, n_out);
    const int64_t V = s.dm->hp.n_vocab;
    const size_t count = size_t(n_out) * size_t(V);
    if (count > 0) {
        if (s.h_logits_n < count) {
            if (s.h_logits) cudaFreeHost(s.h_logits);
            s.h_logits = nullptr;
            LLM8_CUDA_CHECK(cudaMallocHost(&s.h_logits, count * sizeof(float)));
            s.h_logits_n = count;
        }
        LLM8_CUDA_CHECK(cudaMemcpyAsync(s.h_logits, s.logits.get(), count * sizeof(float),
                                        cudaMemcpyDeviceToHost, s.stream));
    }
    LLM8_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    if (count > 0) std::memcpy(logits, s.h_logits, count * sizeof(float));
}

int32_t forward_sample(DeviceSession& s, const int32_t* tokens, int64_t n, int64_t pos0,
                       const SampleRequest& req, int32_t* status) {
    static const bool prepared = [] {
        if (llm8_sample_cuda_prepare() != LLM8_SAMPLING_OK)
            fail(ErrorKind::runtime,
                 std::string("GPU sampler: ") + llm8_sample_cuda_error_string(LLM8_SAMPLING_ECUDA));
        return true;
    }();
    (void)prepared;
    launch_forward(s, tokens, n, pos0, 1);
    // Parameters, penalty window and bias go up through one pinned staging buffer.
    llm8_sampling_row_params p = req.params;
    p.penalty_begin = 0;
    p.penalty_count = int32_t(req.penalty_window.size());
    p.bias_begin = 0;
    p.bias_count = int32_t(req.bias_tokens.size());
    p.flags = 0;
    const size_t n_pen = req.penalty_window.size(), n_bias = req.bias_tokens.size();
    const size_t bytes = sizeof(p) + 4 * (n_pen + 2 * n_bias) + 64;
    if (s.h_sample_n < bytes) {
        if (s.h_sample) cudaFreeHost(s.h_sample);
        s.h_sample = nullptr;
        LLM8_CUDA_CHECK(cudaMallocHost(&s.h_sample, bytes));
        s.h_sample_n = bytes;
        s.d_sample.resize(bytes);
    }
    uint8_t* h = s.h_sample;
    std::memcpy(h, &p, sizeof(p));
    const size_t pen_off = (sizeof(p) + 15) / 16 * 16;
    const size_t bt_off = pen_off + 4 * n_pen;
    const size_t bv_off = bt_off + 4 * n_bias;
    if (n_pen) std::memcpy(h + pen_off, req.penalty_window.data(), 4 * n_pen);
    if (n_bias) {
        std::memcpy(h + bt_off, req.bias_tokens.data(), 4 * n_bias);
        std::memcpy(h + bv_off, req.bias_values.data(), 4 * n_bias);
    }
    const size_t used = bv_off + 4 * n_bias;
    LLM8_CUDA_CHECK(cudaMemcpyAsync(s.d_sample.get(), h, used, cudaMemcpyHostToDevice, s.stream));
    uint8_t* d = s.d_sample.get();
    llm8_sampling_args a{};
    a.logits = s.logits.get();
    a.batch = 1;
    a.vocab = int32_t(s.dm->hp.n_vocab);
    a.ld = s.dm->hp.n_vocab;
    a.params = reinterpret_cast<llm8_sampling_row_params*>(d);
    a.penalty_tokens = n_pen ? reinterpret_cast<const int32_t*>(d + pen_off) : nullptr;
    a.penalty_counts = nullptr;
    a.bias_tokens = n_bias ? reinterpret_cast<const int32_t*>(d + bt_off) : nullptr;
    a.bias_values = n_bias ? reinterpret_cast<const float*>(d + bv_off) : nullptr;
    a.out_tokens = s.sample_out.get();
    a.out_status = s.sample_out.get() + 1;
    const int rc = llm8_sample_cuda(&a, s.sample_ws.get(), s.sample_ws.size(),
                                    reinterpret_cast<llm8_cuda_stream>(s.stream));
    if (rc != LLM8_SAMPLING_OK)
        fail(ErrorKind::runtime, std::string("GPU sampler: ") + llm8_sample_cuda_error_string(rc));
    LLM8_CUDA_CHECK(cudaMemcpyAsync(s.h_ints, s.sample_out.get(), 2 * sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, s.stream));
    LLM8_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    if (status) *status = s.h_ints[1];
    return s.h_ints[0];
}

}  // namespace cuda
}  // namespace llm8
