// Context: many sequences over one paged KV cache (include/llm8/engine.h). It checks a batch,
// reserves cache blocks for it (copying shared blocks on write), cuts it into steps of at most
// n_batch tokens, turns each step into a ForwardBatch (positions, cache slots, block tables,
// per-sequence query and key counts) and runs it on the model's backend.
#include <algorithm>
#include <cstdio>
#include <functional>

#include "common/error.h"
#include "cpu/ops.h"
#include "cuda/backend.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "model/llama.h"
#include "model/llama_forward.h"
#include "runtime/attn_guard.h"
#include "runtime/kv_cache.h"

namespace llm8 {

struct Context::State {
    ContextParams params;
    KvBlockManager kv;
    // CPU backend
    CpuKvPools pools;
    KvStorage storage;
    ForwardScratch scratch;
    // CUDA backend
    std::unique_ptr<cuda::DeviceContext, void (*)(cuda::DeviceContext*)> gpu{nullptr, nullptr};
    std::vector<LayerPlan> cpu_plan;
    std::vector<AttnMode>
        cpu_attn;  // each layer's attention mode (the plan's, as the forward reads it)
    // The accuracy guard's monitor (CPU): per-layer statistics, thresholds, period, and the
    // FP16 output of a checked call.
    std::vector<AttnLayerStats> attn_stats;
    float cos_min = 0.999f, l1_max = 0.03f;
    int monitor_every = 0;
    std::vector<float> check_out;
    std::function<void(int, const AttnParams&)> hook;  // calibration (ContextHooks)
    size_t bytes_per_block = 0;

    std::vector<float> logits;    // [rows with logits, n_vocab]
    std::vector<int32_t> row_of;  // batch row -> logits row, -1 without
};

namespace {

// The plan of the CPU backend: one path for every layer (the choices are the GPU's).
LayerPlan cpu_layer_plan(AttnMode mode, KvType cache) {
    LayerPlan p;
    p.attn = attn_mode_name(mode);
    p.attn_prefill =
        mode == AttnMode::f16 ? std::string("cpu exact softmax (") + kv_type_name(cache) + " cache)"
        : mode == AttnMode::sage ? "cpu sage: smoothed K, int8 QK (64-row scales), fp16 PV"
                                 : "cpu int-flash: int8 QK (per token), int8 PV (P at 1/127)";
    p.attn_decode = p.attn_prefill;
    p.matmul_decode = "vec_dot_row (fused dequantize-dot)";
    p.matmul_batch = "dequantized tiles + OpenBLAS sgemm";
    return p;
}

}  // namespace

Context::Context(std::shared_ptr<const Model> model, const ContextParams& params)
    : model_(std::move(model)), st_(new State()) {
    if (!model_) fail(ErrorKind::invalid_arg, "Context needs a model");
    const HParams& hp = model_->impl().hp;
    State& st = *st_;
    st.params = params;
    if (params.n_ctx < 0) fail(ErrorKind::invalid_arg, "context size must be >= 0");
    if (params.n_batch <= 0) fail(ErrorKind::invalid_arg, "batch size must be > 0");
    if (params.n_threads < 0) fail(ErrorKind::invalid_arg, "thread count must be >= 0");
    if (params.n_seq_max <= 0 || params.n_seq_max > 4096)
        fail(ErrorKind::invalid_arg, "the number of sequences must be in 1..4096");
    const int n_ctx = params.n_ctx > 0 ? params.n_ctx : hp.n_ctx_train;
    st.params.n_ctx = n_ctx;
    const int bs = kKvBlockSize;
    // Enough blocks for n_ctx tokens, plus one per sequence for the partly filled last blocks.
    const int64_t n_blocks =
        (int64_t(n_ctx) + bs - 1) / bs + (params.n_seq_max > 1 ? params.n_seq_max : 0);
    const bool i8 = model_->kv_int8();
    // Bytes per cached element: F16 on the GPU, F32 on the CPU, or INT8 plus a 4-byte scale per
    // head_dim elements.
    const double elem = i8 ? 1.0 + 4.0 / hp.head_dim : (model_->on_gpu() ? 2.0 : 4.0);
    // MLA (deepseek2) caches one latent row per token that K and V share.
    const int kv_pools = hp.cache_v_is_k() ? 1 : 2;
    const double kv_bytes =
        kv_pools * double(hp.n_layer) * double(n_blocks) * bs * hp.cache_dim() * elem;
    if (kv_bytes > 64.0 * (1ull << 30))
        fail(ErrorKind::invalid_arg, "context of " + std::to_string(n_ctx) + " tokens needs a " +
                                         std::to_string(kv_bytes / (1 << 30)) +
                                         " GiB KV cache; choose a smaller -c");
    st.kv.init(int(n_blocks), bs);
    if (model_->on_gpu()) {
        st.gpu = cuda::create_context(model_->device_model(), int(n_blocks), bs, params.n_batch,
                                      params.n_seq_max, i8 ? model_->kv_k_mean().data() : nullptr);
        st.bytes_per_block = cuda::kv_bytes_per_block(*model_->device_model(), bs, i8);
        std::vector<int> modes;
        for (int il = 0; il < hp.n_layer; ++il) modes.push_back(model_->layer_attn_mode(il));
        cuda::set_attn_modes(*st.gpu, modes);
        cuda::set_attn_hook(*st.gpu,
                            [this](int il, const AttnParams& ap) { after_attention(il, ap); });
    } else {
        const size_t elems = size_t(hp.n_layer) * size_t(n_blocks) * bs * size_t(hp.cache_dim());
        const size_t scales = size_t(hp.n_layer) * size_t(n_blocks) * bs * size_t(hp.cache_heads());
        try {
            if (i8) {
                st.pools.k8.assign(elems, 0);
                st.pools.v8.assign(elems, 0);
                st.pools.k_scale.assign(scales, 0.0f);
                st.pools.v_scale.assign(scales, 0.0f);
            } else {
                st.pools.k.assign(elems, 0.0f);
                if (!hp.cache_v_is_k()) st.pools.v.assign(elems, 0.0f);
            }
        } catch (const std::bad_alloc&) {
            fail(ErrorKind::runtime, "cannot allocate the " + std::to_string(kv_bytes / (1 << 30)) +
                                         " GiB KV cache for a context of " + std::to_string(n_ctx) +
                                         " tokens: choose a smaller -c");
        }
        st.storage.type = i8 ? KvType::i8 : KvType::f32;
        st.storage.k = i8 ? static_cast<void*>(st.pools.k8.data()) : st.pools.k.data();
        st.storage.v = i8                  ? static_cast<void*>(st.pools.v8.data())
                       : hp.cache_v_is_k() ? st.pools.k.data()
                                           : st.pools.v.data();
        st.storage.layer_stride = int64_t(n_blocks) * bs * hp.cache_dim();
        st.storage.kv_dim = hp.cache_dim();
        st.storage.n_head_kv = hp.cache_heads();
        if (i8) {
            st.storage.k_scale = st.pools.k_scale.data();
            st.storage.v_scale = st.pools.v_scale.data();
            st.storage.scale_stride = int64_t(n_blocks) * bs * hp.n_head_kv;
            st.storage.k_mean = model_->kv_k_mean().data();
        }
        st.storage.block_size = bs;
        st.storage.block_shift = st.kv.block_shift();
        for (int il = 0; il < hp.n_layer; ++il) {
            const AttnMode mode = AttnMode(model_->layer_attn_mode(il));
            st.cpu_plan.push_back(cpu_layer_plan(mode, st.storage.type));
            st.cpu_attn.push_back(mode);
        }
        st.bytes_per_block =
            i8 ? size_t(2) * hp.n_layer * bs * (size_t(hp.kv_dim()) + size_t(hp.n_head_kv) * 4)
               : size_t(kv_pools) * hp.n_layer * bs * size_t(hp.cache_dim()) * sizeof(float);
    }
    if (params.n_threads > 0) cpu::set_threads(params.n_threads);
    const ModelParams& mp = model_->params();
    st.cos_min = mp.attn_cos_min;
    st.l1_max = mp.attn_l1_max;
    st.monitor_every = mp.attn_monitor;
    for (const std::string& mode : model_->layer_attn()) {
        AttnLayerStats s;
        s.mode = mode;
        st.attn_stats.push_back(s);
    }
}

Context::~Context() = default;

namespace {

// A run of adjacent batch rows of one sequence.
struct Run {
    int seq, begin, end;
};

}  // namespace

void Context::decode(const Batch& batch) {
    run(batch, true);
}

namespace {

// A sampler's state as one row of the GPU sampler.
cuda::SampleRequest gpu_request(const Sampler& sampler) {
    const SamplerParams& p = sampler.params();
    cuda::SampleRequest req;
    req.params = gpu_row_params(p, sampler.draws());
    req.penalty_window = sampler.penalty_window();
    for (const auto& kv : p.logit_bias) {
        req.bias_tokens.push_back(kv.first);
        req.bias_values.push_back(kv.second);
    }
    return req;
}

std::string gpu_status_text(int32_t status) {
    return status == 1 ? "sampler: every logit is NaN or -inf"
                       : "sampler: bad parameters (GPU status " + std::to_string(status) + ")";
}

}  // namespace

int32_t Context::decode_sample(const Batch& batch, Sampler& sampler) {
    State& st = *st_;
    if (batch.size() == 0 || batch.logits.size() != batch.size() || !batch.logits.back())
        fail(ErrorKind::invalid_arg, "decode_sample: the batch's last row must have logits set");
    if (!st.gpu) {
        run(batch, true);
        return sampler.sample(logits(int(batch.size()) - 1));
    }
    for (size_t i = 0; i + 1 < batch.size(); ++i)
        if (batch.logits[i])
            fail(ErrorKind::invalid_arg, "decode_sample: only the last row may have logits set");
    run(batch, false);
    int32_t tok = -1, status = 0;
    cuda::sample(*st.gpu, st.row_of.back(), {gpu_request(sampler)}, &tok, &status);
    st.logits.clear();
    std::fill(st.row_of.begin(), st.row_of.end(), -1);  // the logits stayed on the device
    if (tok < 0 || status != 0) fail(ErrorKind::runtime, gpu_status_text(status));
    sampler.count_external_draw();
    return tok;
}

std::vector<int32_t> Context::decode_sample_rows(const Batch& batch,
                                                 const std::vector<Sampler*>& samplers) {
    State& st = *st_;
    size_t rows = 0;
    for (size_t i = 0; i < batch.logits.size(); ++i) rows += batch.logits[i] ? 1 : 0;
    if (batch.logits.size() != batch.size() || rows == 0 || samplers.size() != rows)
        fail(ErrorKind::invalid_arg,
             "decode_sample_rows: one sampler for each row with logits set (" +
                 std::to_string(rows) + " rows, " + std::to_string(samplers.size()) + " samplers)");
    for (const Sampler* s : samplers)
        if (!s) fail(ErrorKind::invalid_arg, "decode_sample_rows: a null sampler");
    std::vector<int32_t> tokens(rows, -1);
    if (!st.gpu) {
        run(batch, true);
        for (size_t j = 0; j < rows; ++j) {
            try {
                tokens[j] = samplers[j]->sample(st.logits.data() + j * size_t(model_->n_vocab()));
            } catch (const Error& e) {
                if (e.kind() != ErrorKind::runtime) throw;
                tokens[j] = -1;  // no candidate: this row only
            }
        }
        return tokens;
    }
    // The device keeps the logits of the batch's last step of n_batch tokens only.
    const size_t last_step = (batch.size() - 1) / size_t(st.params.n_batch) * st.params.n_batch;
    for (size_t i = 0; i < last_step; ++i)
        if (batch.logits[i])
            fail(ErrorKind::invalid_arg,
                 "decode_sample_rows: on a GPU model the rows with logits must be among the "
                 "batch's last n_batch tokens (" +
                     std::to_string(st.params.n_batch) + ")");
    run(batch, false);
    std::vector<cuda::SampleRequest> reqs;
    reqs.reserve(rows);
    for (const Sampler* s : samplers) reqs.push_back(gpu_request(*s));
    std::vector<int32_t> status(rows, 0);
    // The logits rows are the batch rows with logits set, in order: 0 .. rows - 1.
    cuda::sample(*st.gpu, 0, reqs, tokens.data(), status.data());
    st.logits.clear();
    std::fill(st.row_of.begin(), st.row_of.end(), -1);  // the logits stayed on the device
    for (size_t j = 0; j < rows; ++j)
        if (status[j] == 2) fail(ErrorKind::invalid_arg, gpu_status_text(status[j]));
    for (size_t j = 0; j < rows; ++j) {
        if (status[j] != 0) {
            tokens[j] = -1;  // no candidate: this row only (no draw, as on the CPU)
            continue;
        }
        samplers[j]->count_external_draw();
    }
    return tokens;
}

void Context::run(const Batch& b, bool host_logits) {
    State& st = *st_;
    const LlamaModel& m = model_->impl();
    const int n = int(b.size());
    if (n == 0) fail(ErrorKind::invalid_arg, "decode: no tokens");
    if (b.pos.size() != b.token.size() || b.seq_id.size() != b.token.size() ||
        b.logits.size() != b.token.size())
        fail(ErrorKind::invalid_arg,
             "decode: the batch's token, pos, seq_id and logits arrays "
             "differ in length");
    // Validate everything before anything changes: ids, sequences, positions, room.
    std::vector<Run> runs;
    for (int i = 0; i < n; ++i) {
        const int32_t tok = b.token[size_t(i)], seq = b.seq_id[size_t(i)];
        if (tok < 0 || tok >= m.hp.n_vocab)
            fail(ErrorKind::invalid_arg, "token id " + std::to_string(tok) +
                                             " is out of range [0, " +
                                             std::to_string(m.hp.n_vocab) + ")");
        if (seq < 0 || seq >= st.params.n_seq_max)
            fail(ErrorKind::invalid_arg, "sequence id " + std::to_string(seq) +
                                             " is out of range [0, " +
                                             std::to_string(st.params.n_seq_max) + ")");
        if (runs.empty() || runs.back().seq != seq)
            runs.push_back({seq, i, i + 1});
        else
            runs.back().end = i + 1;
    }
    std::vector<int> seen;
    int blocks = 0;
    for (const Run& r : runs) {
        if (std::find(seen.begin(), seen.end(), r.seq) != seen.end())
            fail(ErrorKind::invalid_arg, "decode: the tokens of sequence " + std::to_string(r.seq) +
                                             " must be adjacent in the batch");
        seen.push_back(r.seq);
        const int len = st.kv.length(r.seq);
        for (int i = r.begin; i < r.end; ++i)
            if (b.pos[size_t(i)] != len + (i - r.begin))
                fail(ErrorKind::invalid_arg,
                     "decode: sequence " + std::to_string(r.seq) + " holds " + std::to_string(len) +
                         " tokens, so its next position is " + std::to_string(len + (i - r.begin)) +
                         ", not " + std::to_string(b.pos[size_t(i)]));
        blocks += st.kv.blocks_needed(r.seq, r.end - r.begin);
    }
    if (blocks > st.kv.n_free())
        fail(ErrorKind::invalid_arg, "KV cache full: the batch needs " + std::to_string(blocks) +
                                         " blocks of " + std::to_string(st.kv.block_size()) +
                                         " tokens, " + std::to_string(st.kv.n_free()) +
                                         " are free (context " + std::to_string(st.params.n_ctx) +
                                         " tokens; raise -c or free sequences)");

    std::vector<std::pair<int32_t, int32_t>> copies;
    for (const Run& r : runs) st.kv.reserve(r.seq, r.end - r.begin, &copies);
    if (!copies.empty()) {
        if (st.gpu) {
            cuda::copy_blocks(*st.gpu, copies);
        } else {
            // A block of every layer's K and V (and, INT8, their scales).
            const size_t bsz = size_t(st.kv.block_size());
            const size_t rows = bsz * size_t(st.storage.kv_dim);
            const size_t srows = bsz * size_t(st.storage.n_head_kv);
            auto copy = [&](auto* base, size_t stride, size_t per,
                            const std::pair<int32_t, int32_t>& c) {
                for (int il = 0; il < m.hp.n_layer; ++il) {
                    auto* b = base + size_t(il) * stride;
                    std::copy_n(b + size_t(c.first) * per, per, b + size_t(c.second) * per);
                }
            };
            for (auto& c : copies) {
                if (st.storage.type == KvType::i8) {
                    copy(st.pools.k8.data(), size_t(st.storage.layer_stride), rows, c);
                    copy(st.pools.v8.data(), size_t(st.storage.layer_stride), rows, c);
                    copy(st.pools.k_scale.data(), size_t(st.storage.scale_stride), srows, c);
                    copy(st.pools.v_scale.data(), size_t(st.storage.scale_stride), srows, c);
                } else {
                    copy(st.pools.k.data(), size_t(st.storage.layer_stride), rows, c);
                    if (!st.pools.v.empty())  // MLA: V is the K pool
                        copy(st.pools.v.data(), size_t(st.storage.layer_stride), rows, c);
                }
            }
        }
    }

    // Logits rows in batch order.
    const size_t V = size_t(m.hp.n_vocab);
    st.row_of.assign(size_t(n), -1);
    int n_rows = 0;
    for (int i = 0; i < n; ++i)
        if (b.logits[size_t(i)]) st.row_of[size_t(i)] = n_rows++;
    if (host_logits) st.logits.resize(size_t(n_rows) * V);

    // Steps of at most n_batch tokens; a sequence may continue into the next step.
    const int nb = st.params.n_batch;
    ForwardBatch fb;
    for (int a = 0; a < n; a += nb) {
        const int e = std::min(n, a + nb);
        fb = ForwardBatch();
        fb.tokens.assign(b.token.begin() + a, b.token.begin() + e);
        fb.pos.assign(b.pos.begin() + a, b.pos.begin() + e);
        std::vector<Run> step;
        for (const Run& r : runs) {
            const int rb = std::max(r.begin, a), re = std::min(r.end, e);
            if (rb < re) step.push_back({r.seq, rb, re});
        }
        for (const Run& r : step)
            fb.max_blocks = std::max(fb.max_blocks, int(st.kv.blocks(r.seq).size()));
        fb.q_start.push_back(0);
        for (const Run& r : step) {
            const int len = st.kv.length(r.seq);
            const int q = r.end - r.begin;
            fb.q_start.push_back(fb.q_start.back() + q);
            fb.kv_len.push_back(len + q);
            fb.max_q = std::max(fb.max_q, q);
            fb.max_kv = std::max(fb.max_kv, len + q);
            for (int i = 0; i < q; ++i) fb.slots.push_back(int32_t(st.kv.slot(r.seq, len + i)));
            std::vector<int32_t> t = st.kv.blocks(r.seq);
            t.resize(size_t(fb.max_blocks), 0);
            fb.block_tables.insert(fb.block_tables.end(), t.begin(), t.end());
        }
        int first_row = -1;
        for (int i = a; i < e; ++i)
            if (b.logits[size_t(i)]) {
                if (first_row < 0) first_row = st.row_of[size_t(i)];
                fb.out_rows.push_back(i - a);
            }
        float* out =
            host_logits && first_row >= 0 ? st.logits.data() + size_t(first_row) * V : nullptr;
        if (st.gpu) {
            cuda::forward(*st.gpu, fb, out);
        } else {
            llama_forward_cpu(m, st.storage, fb, st.cpu_attn, out, st.scratch,
                              [this](int il, const AttnParams& ap) { after_attention(il, ap); });
        }
        for (const Run& r : step) st.kv.commit(r.seq, r.end - r.begin);
    }
}

// After every attention call (CPU; GPU outside graphs): the calibration hook, then the
// monitor. Every Nth call of an 8-bit layer runs FP16 on the same inputs (on the device for a
// GPU context: only the five error sums come back); a failed check replaces this call's
// output with the FP16 one and switches the layer to FP16 for the rest of the context's life.
void Context::after_attention(int il, const AttnParams& ap) {
    State& st = *st_;
    if (st.hook) st.hook(il, ap);
    if (ap.mode == AttnMode::f16) return;
    AttnLayerStats& ls = st.attn_stats[size_t(il)];
    ++ls.calls;
    if (st.monitor_every <= 0 || (ls.calls - 1) % st.monitor_every != 0) return;
    const size_t n = size_t(ap.n_tokens) * size_t(ap.n_head) * size_t(ap.head_dim);
    AttnErrorAcc e;
    if (st.gpu) {
        double sums[5];
        cuda::attention_compare(*st.gpu, ap, AttnMode::f16, true, sums);
        e.add(sums);
    } else {
        st.check_out.resize(n);
        AttnParams f = ap;
        f.mode = AttnMode::f16;
        f.out = st.check_out.data();
        cpu::attention(f);
        e.add(ap.out, f.out, n);
    }
    ++ls.checks;
    ls.mean_l1 += (e.rel_l1() - ls.mean_l1) / double(ls.checks);
    ls.max_l1 = std::max(ls.max_l1, e.rel_l1());
    ls.min_cos = std::min(ls.min_cos, e.cos());
    if (e.ok(st.cos_min, st.l1_max)) return;
    if (st.gpu)
        cuda::attention_adopt_check(*st.gpu, ap);
    else
        std::copy_n(st.check_out.data(), n, ap.out);
    std::fprintf(stderr,
                 "llm8: attention guard: layer %d in %s: cosine %.6f, relative L1 %.5f against "
                 "FP16 (thresholds %.8g, %.8g); the layer runs FP16 from now on\n",
                 il, ls.mode.c_str(), e.cos(), e.rel_l1(), double(st.cos_min), double(st.l1_max));
    ls.fell_back = true;
    ls.mode = "f16";
    if (st.gpu) {
        cuda::set_layer_attn(*st.gpu, il, AttnMode::f16, "f16 (guard fallback)");
        return;
    }
    st.cpu_attn[size_t(il)] = AttnMode::f16;
    st.cpu_plan[size_t(il)] = cpu_layer_plan(AttnMode::f16, st.storage.type);
    st.cpu_plan[size_t(il)].attn = "f16 (guard fallback)";
}

std::vector<AttnLayerStats> Context::attn_stats() const {
    return st_->attn_stats;
}

void Context::set_attn_guard(float cos_min, float l1_max, int monitor_every) {
    if (!(cos_min > 0.0f && cos_min <= 1.0f) || !(l1_max >= 0.0f) || monitor_every < 0)
        fail(ErrorKind::invalid_arg, "attention guard: cosine in (0, 1], L1 >= 0, period >= 0");
    st_->cos_min = cos_min;
    st_->l1_max = l1_max;
    st_->monitor_every = monitor_every;
}

std::string Context::attn_report() const {
    return attn_guard_report(*model_, st_->attn_stats);
}

void ContextHooks::set_attn_hook(Context& c, std::function<void(int, const AttnParams&)> hook) {
    c.st_->hook = std::move(hook);
}

void ContextHooks::compare_attention(Context& c, const AttnParams& ap, AttnMode mode,
                                     AttnErrorAcc& acc) {
    if (c.st_->gpu) {
        double sums[5];
        cuda::attention_compare(*c.st_->gpu, ap, mode, false, sums);
        acc.add(sums);
        return;
    }
    std::vector<float>& out = c.st_->check_out;
    out.resize(size_t(ap.n_tokens) * size_t(ap.n_head) * size_t(ap.head_dim));
    AttnParams p = ap;
    p.out = out.data();
    p.mode = mode;
    cpu::attention(p);
    acc.add(out.data(), ap.out, out.size());
}

std::vector<float> ContextHooks::layer_keys(Context& c, const AttnParams& ap, int seq) {
    if (c.st_->gpu) return cuda::layer_keys(*c.st_->gpu, ap, seq);
    if (ap.kv.type != KvType::f32) fail(ErrorKind::invalid_arg, "layer_keys: needs the f32 cache");
    const int kv_dim = ap.kv.kv_dim, n = ap.kv_len[seq];
    std::vector<float> k(size_t(n) * size_t(kv_dim));
    for (int j = 0; j < n; ++j)
        std::copy_n(static_cast<const float*>(ap.kv.k) + ap.kv.row(seq, j) * kv_dim, kv_dim,
                    k.begin() + int64_t(j) * kv_dim);
    return k;
}

const float* Context::logits(int i) const {
    const State& st = *st_;
    if (i < 0 || size_t(i) >= st.row_of.size() || st.row_of[size_t(i)] < 0 || st.logits.empty())
        fail(ErrorKind::invalid_arg,
             "logits: batch row " + std::to_string(i) + " of the last decode has no logits");
    return st.logits.data() + size_t(st.row_of[size_t(i)]) * size_t(model_->n_vocab());
}

int Context::seq_len(int seq) const {
    return st_->kv.length(seq);
}
void Context::seq_fork(int src, int dst) {
    if (dst < 0 || dst >= st_->params.n_seq_max || src < 0 || src >= st_->params.n_seq_max)
        fail(ErrorKind::invalid_arg, "seq_fork: sequence id out of range");
    st_->kv.fork(src, dst);
}
void Context::seq_remove(int seq) {
    st_->kv.remove(seq);
}
void Context::seq_truncate(int seq, int n) {
    if (seq < 0 || seq >= st_->params.n_seq_max)
        fail(ErrorKind::invalid_arg, "seq_truncate: sequence id out of range");
    st_->kv.truncate(seq, n);
}
void Context::clear() {
    st_->kv.clear();
    st_->row_of.clear();
    st_->logits.clear();
}
KvMemory Context::kv_memory() const {
    KvMemory mem = st_->kv.memory(st_->bytes_per_block);
    mem.type = kv_type_name(st_->gpu ? KvType::f16 : st_->storage.type);
    return mem;
}
const std::vector<LayerPlan>& Context::plan() const {
    return st_->gpu ? cuda::plan(*st_->gpu) : st_->cpu_plan;
}
std::string Context::plan_report() const {
    std::string out = "layer plan (" + model_->backend() + "):\n";
    char line[512];
    std::snprintf(line, sizeof line, "  %-7s %-5s %-28s %-28s %-36s %s\n", "layers", "attn",
                  "attention (prefill)", "attention (decode)", "matmul (1 token)",
                  "matmul (batch)");
    out += line;
    const auto& p = plan();
    // Runs of identical layers on one line.
    for (size_t i = 0; i < p.size();) {
        size_t j = i + 1;
        auto same = [&](const LayerPlan& a, const LayerPlan& c) {
            return a.attn == c.attn && a.attn_prefill == c.attn_prefill &&
                   a.attn_decode == c.attn_decode && a.matmul_decode == c.matmul_decode &&
                   a.matmul_batch == c.matmul_batch;
        };
        while (j < p.size() && same(p[i], p[j])) ++j;
        const std::string range =
            j - i == 1 ? std::to_string(i) : std::to_string(i) + "-" + std::to_string(j - 1);
        std::snprintf(line, sizeof line, "  %-7s %-5s %-28s %-28s %-36s %s\n", range.c_str(),
                      p[i].attn.c_str(), p[i].attn_prefill.c_str(), p[i].attn_decode.c_str(),
                      p[i].matmul_decode.c_str(), p[i].matmul_batch.c_str());
        out += line;
        i = j;
    }
    return out;
}
int Context::n_ctx() const {
    return st_->params.n_ctx;
}
int Context::n_seq_max() const {
    return st_->params.n_seq_max;
}

}  // namespace llm8
