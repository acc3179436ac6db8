// Device contexts (cuda/context.h): allocation, the per-layer plan, the step metadata upload,
// decode graphs, copy on write of KV blocks, and the GPU sampler on the last step's logits.
#include <algorithm>
#include <cstring>

#include "cuda/backend.h"
#include "cuda/context.h"
#include "cuda/ksplit.h"
#include "gguf/quants.h"
#include "llm8/sampling_cuda.h"

namespace llm8 {
namespace cuda {

DeviceContext::~DeviceContext() {
    for (auto& g : graphs) cudaGraphExecDestroy(g.second);
    if (cublas) cublasDestroy(cublas);
    if (stream) cudaStreamDestroy(stream);
    if (h_meta) cudaFreeHost(h_meta);
    if (h_logits) cudaFreeHost(h_logits);
    if (h_sample) cudaFreeHost(h_sample);
}

namespace {

void destroy_context(DeviceContext* c) {
    delete c;
}

// ---- the per-layer plan -------------------------------------------------------------------

// The one-token GEMV a group of matrices can share: one kind for all (same row length, and
// the same type unless mixed_ok: int8 activations quantized once serve matrices of several
// types in store mode, one launch per matrix, as Q4_K_M's q6_K V next to q4_K Q and K).
ActKind group_kind(const DeviceMatrix* w, int count, bool mixed_ok = false) {
    const ActKind k = decode_act_kind(w[0]);
    for (int i = 1; i < count; ++i) {
        const bool type_ok = w[i].type == w[0].type || (mixed_ok && k == ActKind::q8);
        if (decode_act_kind(w[i]) != k || !type_ok || w[i].ne0 != w[0].ne0) return ActKind::none;
    }
    return k;
}

std::string describe(ActKind k, const DeviceMatrix& w) {
    const std::string t = type_name(w.type);
    switch (k) {
        case ActKind::q8:
            return "int8 dp4a GEMV (" + t + (ksplit_type(w.type) ? " K split)" : " split)");
        case ActKind::f32:
            return "GEMV, float act (" + t + ")";
        default:
            return "gemv (" + t + ")";
    }
}

// The plan's name for a layer's prefill attention kernel in `mode`, with the cache type.
std::string prefill_attn_label(const DeviceContext& c, AttnMode mode) {
    const HParams& hp = c.dm->hp;
    const std::string kernel =
        mode == AttnMode::sage   ? "sage_mma_sm80"
        : mode == AttnMode::int8 ? "int8_mma_sm80"
                                 : attention_kernel_name(hp.head_dim, hp.n_head / hp.n_head_kv, 16);
    return kernel + " (" + kv_type_name(c.kv_type) + " cache)";
}

// The chooser: one place where weight types, shapes and the head dim decide each layer's
// kernels. The 8-bit attention modes and the accuracy guard will fill in `attn` here.
void build_plan(DeviceContext& c) {
    const DeviceModel& m = *c.dm;
    const HParams& hp = m.hp;
    const Tuning& tu = tuning();
    for (const DeviceLayer& L : m.layers) {
        LayerPath P;
        const DeviceMatrix qkv[3] = {L.wq, L.wk, L.wv};
        const DeviceMatrix gu[2] = {L.w_gate, L.w_up};
        P.qkv = group_kind(qkv, 3, true);
        const bool qkv_one_type = L.wq.type == L.wk.type && L.wq.type == L.wv.type;
        P.wo = group_kind(&L.wo, 1);
        P.gate_up = group_kind(gu, 2);
        P.down = group_kind(&L.w_down, 1);
        // Bias + RoPE in the Q/K/V GEMV's epilogue, which also writes the F16 cache; the INT8
        // cache's write needs whole rows (their scales): the decode attention kernel quantizes
        // the new K/V rows (AttnParams::new_k), where it takes the step (head dim 64/128).
        const int G = hp.n_head / hp.n_head_kv;
        const std::string decode_kernel = attention_kernel_name(hp.head_dim, G, 1);
        const bool cache_ok =
            c.kv_type == KvType::f16 || (c.kv_type == KvType::i8 && decode_kernel == "decode_mma");
        P.fuse_rope = tu.fuse_rope && cache_ok && P.qkv != ActKind::none && qkv_one_type &&
                      hp.rope == RopeLayout::norm && !L.q_norm && hp.head_dim % 2 == 0 &&
                      hp.n_rot % 2 == 0 && hp.n_rot <= hp.head_dim && L.wk.ne1 == L.wv.ne1 &&
                      L.wq.ne1 % hp.head_dim == 0 && L.wk.ne1 % hp.head_dim == 0;
        c.paths.push_back(P);

        LayerPlan lp;
        const AttnMode mode = c.attn_modes.empty() ? AttnMode::f16 : c.attn_modes[c.plan.size()];
        lp.attn = attn_mode_name(mode);
        const std::string cache = std::string(" (") + kv_type_name(c.kv_type) + " cache)";
        lp.attn_prefill = prefill_attn_label(c, mode);
        lp.attn_decode = decode_kernel + cache;
        lp.matmul_decode = describe(P.qkv, L.wq);
        if (P.fuse_rope)
            lp.matmul_decode +=
                c.kv_type == KvType::f16 ? " +RoPE/KV" : " +RoPE (K/V quantized by the attention)";
        lp.matmul_batch = P.qkv != ActKind::none
                              ? "same <=64 tokens (16 a pass), else f16 tiles + cuBLAS"
                              : "gemv <=8 tokens, else f16 tiles + cuBLAS";
        c.plan.push_back(lp);
    }
}

// ---- step metadata --------------------------------------------------------------------------

// Lays the step's integers out in h_meta and points st at their device copies. Graph steps
// (all decode, every row's logits) use the full table stride, so a graph captured for n
// sequences replays with any block tables.
size_t pack_step(DeviceContext& c, const ForwardBatch& b, bool graph, Step* st) {
    const int n = b.n_tokens(), ns = b.n_seqs(), n_out = int(b.out_rows.size());
    const int stride = graph ? c.n_blocks : std::max(1, b.max_blocks);
    size_t off = 0;
    int32_t* h = c.h_meta;
    const int32_t* d = c.meta.get();
    auto put = [&](const int32_t* src, size_t count, const int32_t** dst) {
        std::memcpy(h + off, src, count * sizeof(int32_t));
        *dst = d + off;
        off += count;
    };
    put(b.tokens.data(), size_t(n), &st->tokens);
    put(b.pos.data(), size_t(n), &st->pos);
    put(b.slots.data(), size_t(n), &st->slots);
    put(b.q_start.data(), size_t(ns) + 1, &st->q_start);
    put(b.kv_len.data(), size_t(ns), &st->kv_len);
    put(b.out_rows.data(), size_t(n_out), &st->out_rows);
    st->tables = d + off;
    for (int sq = 0; sq < ns; ++sq) {
        const int32_t* row = b.block_tables.data() + size_t(sq) * size_t(b.max_blocks);
        std::memcpy(h + off, row, size_t(b.max_blocks) * sizeof(int32_t));
        std::fill(h + off + b.max_blocks, h + off + stride, 0);
        off += size_t(stride);
    }
    st->table_stride = stride;
    st->n = n;
    st->n_seqs = ns;
    st->max_q = b.max_q;
    st->max_kv = graph ? int(c.pool_rows) : b.max_kv;
    st->kv_tiles = attention_kv_tiles(b.kv_len.data(), ns);
    st->capture = graph;
    st->n_out = n_out;
    // Contiguous out rows need no gather.
    st->out_first = n_out > 0 && b.out_rows.back() - b.out_rows.front() == n_out - 1
                        ? b.out_rows.front()
                        : -1;
    return off;
}

}  // namespace

size_t kv_bytes_per_block(const DeviceModel& dm, int block_size, bool int8) {
    const size_t rows = size_t(2) * dm.hp.n_layer * size_t(block_size);
    return int8 ? rows * (size_t(dm.hp.kv_dim()) + size_t(dm.hp.n_head_kv) * 4)
                : rows * size_t(dm.hp.kv_dim()) * 2;
}

const std::vector<LayerPlan>& plan(const DeviceContext& c) {
    return c.plan;
}

std::unique_ptr<DeviceContext, void (*)(DeviceContext*)> create_context(
    std::shared_ptr<DeviceModel> dm, int n_blocks, int block_size, int n_batch, int n_seq_max,
    const float* k_mean) {
    std::unique_ptr<DeviceContext, void (*)(DeviceContext*)> c(new DeviceContext(),
                                                               destroy_context);
    LLM8_CUDA_CHECK(cudaSetDevice(dm->device));
    const HParams& hp = dm->hp;
    c->dm = dm;
    c->n_blocks = n_blocks;
    c->block_size = block_size;
    while ((1 << c->block_shift) < block_size) ++c->block_shift;
    c->n_batch = n_batch;
    c->n_seq_max = n_seq_max;
    c->pool_rows = int64_t(n_blocks) * block_size;
    LLM8_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    LLM8_CUBLAS_CHECK(cublasCreate(&c->cublas));
    LLM8_CUBLAS_CHECK(cublasSetStream(c->cublas, c->stream));
    c->prof.set_stream(c->stream);
    const size_t B = size_t(n_batch), E = size_t(hp.n_embd), Q = size_t(hp.q_dim()),
                 KV = size_t(hp.kv_dim()), F = size_t(hp.n_ff);
    // Copy on write copies whole blocks, rows past the sequence's end included (never read as
    // keys): zeroed, those rows are defined, as in the CPU backend's pools (initcheck flagged the
    // copy of a fresh pool's rows).
    const size_t pool = size_t(hp.n_layer) * size_t(c->pool_rows) * KV;
    if (k_mean) {
        c->kv_type = KvType::i8;
        const size_t scales = size_t(hp.n_layer) * size_t(c->pool_rows) * size_t(hp.n_head_kv);
        c->k8.resize(pool);
        c->v8.resize(pool);
        c->ks.resize(scales);
        c->vs.resize(scales);
        c->k_mean.resize(size_t(hp.n_layer) * KV);
        LLM8_CUDA_CHECK(cudaMemcpy(c->k_mean.get(), k_mean, c->k_mean.size() * sizeof(float),
                                   cudaMemcpyHostToDevice));
        LLM8_CUDA_CHECK(cudaMemset(c->k8.get(), 0, pool));
        LLM8_CUDA_CHECK(cudaMemset(c->v8.get(), 0, pool));
        LLM8_CUDA_CHECK(cudaMemset(c->ks.get(), 0, scales * sizeof(float)));
        LLM8_CUDA_CHECK(cudaMemset(c->vs.get(), 0, scales * sizeof(float)));
    } else {
        c->kc.resize(pool);
        c->vc.resize(pool);
        LLM8_CUDA_CHECK(cudaMemset(c->kc.get(), 0, c->kc.size() * sizeof(uint16_t)));
        LLM8_CUDA_CHECK(cudaMemset(c->vc.get(), 0, c->vc.size() * sizeof(uint16_t)));
    }
    c->x.resize(B * E);
    c->xn.resize(B * E);
    c->xg.resize(B * E);
    c->q.resize(B * Q);
    c->k.resize(B * KV);
    c->v.resize(B * KV);
    c->att.resize(B * Q);
    c->att_check.resize(B * Q);
    c->err_sums.resize(5);
    c->attn_modes.assign(size_t(hp.n_layer), AttnMode::f16);
    c->o.resize(B * E);
    c->gate.resize(B * F);
    c->up.resize(B * F);
    c->logits.resize(B * size_t(hp.n_vocab));
    // The buffers that cuBLAS writes (prefill matmuls) start zeroed. compute-sanitizer's
    // initcheck does not see cuBLAS's writes (scripts/initcheck-cublas-probe.cu: one
    // cublasGemmEx and a kernel reading its output report every element uninitialized), so
    // without this every read of a prefill projection would be reported; the rest of the
    // activations stay under its watch. One memset per context.
    for (DeviceArray<float>* b : {&c->q, &c->k, &c->v, &c->o, &c->gate, &c->up, &c->logits})
        LLM8_CUDA_CHECK(cudaMemset(b->get(), 0, b->size() * sizeof(float)));
    const size_t widest = std::max({E, Q, F});
    const size_t act_rows = std::min<size_t>(B, DeviceContext::kDecodeTokens);
    c->act_q.resize(widest * act_rows);
    c->act_ds.resize((widest / 32 * 2 + 2) * act_rows);
    c->sample_out.resize(2);
    c->sample_ws.resize(llm8_sample_cuda_workspace_size(1, int32_t(hp.n_vocab)));
    LLM8_CUDA_CHECK(cudaMemset(c->sample_ws.get(), 0, c->sample_ws.size()));
    size_t ws = 0;
    const DeviceModel& m = *dm;
    auto need = [&](const DeviceMatrix& w) {
        ws = std::max(ws, matmul_workspace_elems(w, int64_t(B)));
    };
    need(m.output);
    for (const DeviceLayer& L : m.layers)
        for (const DeviceMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
            need(*w);
    c->mm_ws.resize(std::max<size_t>(ws, 1));
    // Attention partials: every split one decode token may take, and for batches as many as
    // fit in 128 MiB (the kernels take fewer splits when the workspace is smaller).
    const int max_keys = int(std::min<int64_t>(c->pool_rows, 1 << 30));
    const size_t one = attention_workspace_floats(1, hp.n_head, hp.head_dim, max_keys);
    const size_t many = std::min<size_t>(
        attention_workspace_floats(int64_t(B), hp.n_head, hp.head_dim, max_keys), 32u << 20);
    c->attn_ws.resize(std::max(one, many));
    // Step metadata: 6 arrays of at most n_batch (+1) entries and the block tables.
    const size_t seqs = size_t(std::min(n_batch, n_seq_max));
    c->meta_cap = 6 * (B + 1) + seqs * size_t(n_blocks);
    c->meta.resize(c->meta_cap);
    LLM8_CUDA_CHECK(cudaMallocHost(&c->h_meta, c->meta_cap * sizeof(int32_t)));
    build_plan(*c);
    return c;
}

void set_attn_modes(DeviceContext& c, const std::vector<int>& modes) {
    const HParams& hp = c.dm->hp;
    if (modes.size() != size_t(hp.n_layer))
        fail(ErrorKind::invalid_arg, "attention modes: one per layer");
    const bool kernels = hp.head_dim == 64 || hp.head_dim == 128;
    for (size_t il = 0; il < modes.size(); ++il) {
        const AttnMode m = AttnMode(modes[il]);
        if (m != AttnMode::f16 && !kernels)
            fail(ErrorKind::unsupported, "the GPU's 8-bit attention takes head dim 64 or 128, "
                                         "this model has " + std::to_string(hp.head_dim));
        c.attn_modes[il] = m;
    }
    c.paths.clear();
    c.plan.clear();
    build_plan(c);
}

void set_layer_attn(DeviceContext& c, int il, AttnMode mode, const std::string& note) {
    c.attn_modes[size_t(il)] = mode;
    c.plan[size_t(il)].attn = note;
    c.plan[size_t(il)].attn_prefill = prefill_attn_label(c, mode);
}

void set_attn_hook(DeviceContext& c, std::function<void(int, const AttnParams&)> hook) {
    c.attn_hook = std::move(hook);
}

void ensure_ws8(DeviceContext& c, AttnParams& p) {
    const size_t need = attention_8bit_workspace_bytes(p.n_tokens, p.n_head, p.n_head_kv,
                                                       p.head_dim, p.n_seqs, p.kv_tiles);
    if (c.ws8.size() < need) {
        LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));  // the old scratch may be in use
        c.ws8.release();
        c.ws8.resize(need + need / 4);  // room for a few more tiles
    }
    p.ws8 = c.ws8.get();
    p.ws8_bytes = c.ws8.size();
}

namespace {

// sums += (got . ref, got . got, ref . ref, |got - ref|, |ref|) in double.
__global__ void error_sums_kernel(const float* __restrict__ got, const float* __restrict__ ref,
                                  int64_t n, double* __restrict__ sums) {
    double s[5] = {0, 0, 0, 0, 0};
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const double a = got[i], b = ref[i];
        s[0] += a * b;
        s[1] += a * a;
        s[2] += b * b;
        s[3] += fabs(a - b);
        s[4] += fabs(b);
    }
    for (int k = 0; k < 5; ++k) {
        double v = s[k];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if ((threadIdx.x & 31) == 0) atomicAdd(sums + k, v);
    }
}

}  // namespace

void attention_compare(DeviceContext& c, const AttnParams& p, AttnMode mode, bool check_is_ref,
                       double sums[5]) {
    AttnParams q = p;
    q.mode = mode;
    q.out = c.att_check.get();
    q.q8 = nullptr;
    q.q8_ds = nullptr;
    if (mode != AttnMode::f16) ensure_ws8(c, q);
    attention(q, c.stream);
    const int64_t n = int64_t(p.n_tokens) * p.n_head * p.head_dim;
    LLM8_CUDA_CHECK(cudaMemsetAsync(c.err_sums.get(), 0, 5 * sizeof(double), c.stream));
    const float* got = check_is_ref ? p.out : q.out;
    const float* ref = check_is_ref ? q.out : p.out;
    error_sums_kernel<<<std::min<int64_t>(264, (n + 255) / 256), 256, 0, c.stream>>>(
        got, ref, n, c.err_sums.get());
    LLM8_CUDA_CHECK_LAUNCH();
    LLM8_CUDA_CHECK(cudaMemcpyAsync(sums, c.err_sums.get(), 5 * sizeof(double),
                                    cudaMemcpyDeviceToHost, c.stream));
    LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
}

void attention_adopt_check(DeviceContext& c, const AttnParams& p) {
    LLM8_CUDA_CHECK(cudaMemcpyAsync(p.out, c.att_check.get(),
                                    size_t(p.n_tokens) * p.n_head * p.head_dim * sizeof(float),
                                    cudaMemcpyDeviceToDevice, c.stream));
}

std::vector<float> layer_keys(DeviceContext& c, const AttnParams& p, int seq) {
    if (p.kv.type != KvType::f16) fail(ErrorKind::invalid_arg, "layer_keys: needs the F16 cache");
    int32_t kv_len = 0;
    LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    LLM8_CUDA_CHECK(cudaMemcpy(&kv_len, p.kv_len + seq, sizeof(int32_t), cudaMemcpyDeviceToHost));
    const int bs = p.kv.block_size, nb = (kv_len + bs - 1) / bs;
    std::vector<int32_t> table(static_cast<size_t>(nb));
    LLM8_CUDA_CHECK(cudaMemcpy(table.data(), p.kv.block_tables + int64_t(seq) * p.kv.max_blocks,
                               size_t(nb) * sizeof(int32_t), cudaMemcpyDeviceToHost));
    const size_t row = size_t(p.kv.kv_dim);
    std::vector<uint16_t> h(size_t(nb) * bs * row);
    for (int b = 0; b < nb; ++b)
        LLM8_CUDA_CHECK(cudaMemcpy(h.data() + size_t(b) * bs * row,
                                   static_cast<const uint16_t*>(p.kv.k) +
                                       int64_t(table[size_t(b)]) * bs * int64_t(row),
                                   size_t(bs) * row * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    std::vector<float> k(size_t(kv_len) * row);
    for (size_t i = 0; i < k.size(); ++i) k[i] = fp16_to_fp32(h[i]);
    return k;
}

void copy_blocks(DeviceContext& c, const std::vector<std::pair<int32_t, int32_t>>& copies) {
    if (copies.empty()) return;
    LLM8_CUDA_CHECK(cudaSetDevice(c.dm->device));
    std::vector<int32_t> flat;
    for (auto& p : copies) {
        flat.push_back(p.first);
        flat.push_back(p.second);
    }
    c.pairs.resize(std::max(c.pairs.size(), flat.size()));
    LLM8_CUDA_CHECK(cudaMemcpyAsync(c.pairs.get(), flat.data(), flat.size() * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, c.stream));
    const HParams& hp = c.dm->hp;
    // Every layer's pools are one array: block b of layer il is block il * n_blocks + b, so one
    // launch per pool with the pairs offset per layer would do; the layers stay separate calls.
    const size_t rows = size_t(c.pool_rows), kv = size_t(hp.kv_dim()), nk = size_t(hp.n_head_kv);
    for (int il = 0; il < hp.n_layer; ++il) {
        const size_t l = size_t(il);
        if (c.kv_type == KvType::i8) {
            for (int8_t* p : {c.k8.get(), c.v8.get()})
                copy_kv_blocks(p + l * rows * kv, c.pairs.get(), int(copies.size()),
                               int64_t(c.block_size) * int64_t(kv), c.stream);
            for (float* p : {c.ks.get(), c.vs.get()})
                copy_kv_blocks(p + l * rows * nk, c.pairs.get(), int(copies.size()),
                               int64_t(c.block_size) * int64_t(nk) * 4, c.stream);
        } else {
            for (uint16_t* p : {c.kc.get(), c.vc.get()})
                copy_kv_blocks(p + l * rows * kv, c.pairs.get(), int(copies.size()),
                               int64_t(c.block_size) * int64_t(kv) * 2, c.stream);
        }
    }
    LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));  // `flat` goes out of scope
}

void forward(DeviceContext& c, const ForwardBatch& b, float* logits) {
    const int n = b.n_tokens();
    if (n < 1 || n > c.n_batch) fail(ErrorKind::invalid_arg, "CUDA forward: bad token count");
    LLM8_CUDA_CHECK(cudaSetDevice(c.dm->device));
    const int n_out = int(b.out_rows.size());
    // All-decode steps whose every row wants logits replay a graph captured for that count.
    const bool graph = tuning().graphs && !c.prof.on() && b.all_decode() && n_out == n;
    Step st;
    const size_t used = pack_step(c, b, graph, &st);
    LLM8_CUDA_CHECK(cudaMemcpyAsync(c.meta.get(), c.h_meta, used * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, c.stream));
    if (graph) {
        auto it = c.graphs.find(n);
        if (it == c.graphs.end()) {
            cudaGraph_t g;
            LLM8_CUDA_CHECK(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal));
            try {
                forward_step(c, st);
            } catch (...) {
                cudaStreamEndCapture(c.stream, &g);
                throw;
            }
            LLM8_CUDA_CHECK(cudaStreamEndCapture(c.stream, &g));
            cudaGraphExec_t exec;
            LLM8_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
            LLM8_CUDA_CHECK(cudaGraphDestroy(g));
            it = c.graphs.emplace(n, exec).first;
        }
        LLM8_CUDA_CHECK(cudaGraphLaunch(it->second, c.stream));
    } else {
        forward_step(c, st);
        c.prof.collect();
    }
    c.last_n_out = n_out;
    const size_t count = size_t(n_out) * size_t(c.dm->hp.n_vocab);
    if (logits && count > 0) {
        if (c.h_logits_n < count) {
            if (c.h_logits) cudaFreeHost(c.h_logits);
            c.h_logits = nullptr;
            LLM8_CUDA_CHECK(cudaMallocHost(&c.h_logits, count * sizeof(float)));
            c.h_logits_n = count;
        }
        LLM8_CUDA_CHECK(cudaMemcpyAsync(c.h_logits, c.logits.get(), count * sizeof(float),
                                        cudaMemcpyDeviceToHost, c.stream));
        LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
        std::memcpy(logits, c.h_logits, count * sizeof(float));
    } else if (logits || count == 0) {
        LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    }
    // Without logits the step stays queued: sample() follows on the same stream.
}

void sample(DeviceContext& c, int row0, const std::vector<SampleRequest>& reqs, int32_t* tokens,
            int32_t* status) {
    static const bool prepared = [] {
        if (llm8_sample_cuda_prepare() != LLM8_SAMPLING_OK)
            fail(ErrorKind::runtime,
                 std::string("GPU sampler: ") + llm8_sample_cuda_error_string(LLM8_SAMPLING_ECUDA));
        return true;
    }();
    (void)prepared;
    const int n = int(reqs.size());
    if (n == 0) return;
    if (row0 < 0 || row0 + n > c.last_n_out)
        fail(ErrorKind::invalid_arg, "GPU sampler: no logits rows " + std::to_string(row0) + ".." +
                                         std::to_string(row0 + n - 1));
    // Parameters, penalty windows and biases go up through one pinned staging buffer:
    // [n params][penalty tokens of every row][bias tokens][bias values].
    size_t n_pen = 0, n_bias = 0;
    for (const SampleRequest& r : reqs) {
        n_pen += r.penalty_window.size();
        n_bias += r.bias_tokens.size();
    }
    const size_t pen_off = (n * sizeof(llm8_sampling_row_params) + 15) / 16 * 16;
    const size_t bt_off = pen_off + 4 * n_pen;
    const size_t bv_off = bt_off + 4 * n_bias;
    const size_t used = bv_off + 4 * n_bias;
    if (c.h_sample_n < used) {
        // The stream may still read the old staging buffer.
        LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
        if (c.h_sample) cudaFreeHost(c.h_sample);
        c.h_sample = nullptr;
        c.h_sample_n = 0;
        LLM8_CUDA_CHECK(cudaMallocHost(&c.h_sample, used));
        c.h_sample_n = used;
        c.d_sample.resize(used);
    }
    const int64_t V = c.dm->hp.n_vocab;
    const size_t ws_need = llm8_sample_cuda_workspace_size(n, int32_t(V));
    if (c.sample_ws.size() < ws_need || c.sample_out.size() < size_t(2 * n)) {
        // The workspace starts zeroed (the sampler leaves it so); the stream may still use the
        // old one.
        LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
        c.sample_ws.resize(ws_need);
        LLM8_CUDA_CHECK(cudaMemset(c.sample_ws.get(), 0, c.sample_ws.size()));
        c.sample_out.resize(size_t(2 * n));
    }
    uint8_t* h = c.h_sample;
    size_t pen = 0, bias = 0;
    for (int i = 0; i < n; ++i) {
        const SampleRequest& r = reqs[size_t(i)];
        llm8_sampling_row_params p = r.params;
        p.penalty_begin = int32_t(pen);
        p.penalty_count = int32_t(r.penalty_window.size());
        p.bias_begin = int32_t(bias);
        p.bias_count = int32_t(r.bias_tokens.size());
        p.flags = 0;
        std::memcpy(h + size_t(i) * sizeof(p), &p, sizeof(p));
        if (!r.penalty_window.empty())
            std::memcpy(h + pen_off + 4 * pen, r.penalty_window.data(),
                        4 * r.penalty_window.size());
        if (!r.bias_tokens.empty()) {
            std::memcpy(h + bt_off + 4 * bias, r.bias_tokens.data(), 4 * r.bias_tokens.size());
            std::memcpy(h + bv_off + 4 * bias, r.bias_values.data(), 4 * r.bias_values.size());
        }
        pen += r.penalty_window.size();
        bias += r.bias_tokens.size();
    }
    LLM8_CUDA_CHECK(cudaMemcpyAsync(c.d_sample.get(), h, used, cudaMemcpyHostToDevice, c.stream));
    uint8_t* d = c.d_sample.get();
    llm8_sampling_args a{};
    a.logits = c.logits.get() + int64_t(row0) * V;
    a.batch = n;
    a.vocab = int32_t(V);
    a.ld = V;
    a.params = reinterpret_cast<llm8_sampling_row_params*>(d);
    a.penalty_tokens = n_pen ? reinterpret_cast<const int32_t*>(d + pen_off) : nullptr;
    a.penalty_counts = nullptr;
    a.bias_tokens = n_bias ? reinterpret_cast<const int32_t*>(d + bt_off) : nullptr;
    a.bias_values = n_bias ? reinterpret_cast<const float*>(d + bv_off) : nullptr;
    a.out_tokens = c.sample_out.get();
    a.out_status = c.sample_out.get() + n;
    const int rc = llm8_sample_cuda(&a, c.sample_ws.get(), c.sample_ws.size(),
                                    reinterpret_cast<llm8_cuda_stream>(c.stream));
    if (rc != LLM8_SAMPLING_OK)
        fail(ErrorKind::runtime, std::string("GPU sampler: ") + llm8_sample_cuda_error_string(rc));
    // h_meta holds 6 * (n_batch + 1) ints at least, and n <= n_batch.
    LLM8_CUDA_CHECK(cudaMemcpyAsync(c.h_meta, c.sample_out.get(), size_t(2 * n) * sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, c.stream));
    LLM8_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    std::memcpy(tokens, c.h_meta, size_t(n) * sizeof(int32_t));
    std::memcpy(status, c.h_meta + n, size_t(n) * sizeof(int32_t));
}

}  // namespace cuda
}  // namespace llm8
