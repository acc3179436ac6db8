// Weight upload (cuda/device_model.h) and device queries.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "cuda/backend.h"
#include "cuda/device_model.h"
#include "cuda/ksplit.h"

namespace llm8 {
namespace cuda {

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
    // K-quant and i-quant matrices (not the embedding, which get_rows gathers from the file's
    // blocks) are repacked on the host into the K split layout (cuda/ksplit.h) on the way up.
    const bool no_split = !tuning().split;
    struct Item {
        const void* src;
        size_t bytes;
        size_t off;
        const WeightView* ksplit;  // repack this matrix into the K split layout
    };
    std::vector<Item> items;
    size_t total = 0;
    auto plan = [&](const void* src, size_t bytes, const WeightView* ks = nullptr) {
        items.push_back({src, bytes, total, ks});
        total += (bytes + 255) / 256 * 256;
        return items.size() - 1;
    };
    auto plan_w = [&](const WeightView& w) { return plan(w.data, w.row_bytes * size_t(w.ne1)); };
    auto plan_k = [&](const WeightView& w) {
        if (no_split || !can_ksplit(w.type, w.ne0)) return plan_w(w);
        return plan(w.data, ksplit_row(w.type, w.ne0).pitch * size_t(w.ne1), &w);
    };
    auto plan_v = [&](const std::vector<float>& v) {
        return v.empty() ? size_t(-1) : plan(v.data(), v.size() * sizeof(float));
    };
    struct LayerIdx {
        size_t wq, wk, wv, wo, g, u, d, an, fn, bq, bk, bv, qn, kn;
    };
    const size_t i_emb = plan_w(m.tok_embd);
    const size_t i_out = m.tied_output ? i_emb : plan_k(m.output);
    const size_t i_on = plan_v(m.output_norm);
    const size_t i_rf = plan_v(m.rope_freq_factors);
    std::vector<LayerIdx> li;
    for (const LayerWeights& L : m.layers)
        li.push_back({plan_k(L.wq), plan_k(L.wk), plan_k(L.wv), plan_k(L.wo), plan_k(L.w_gate),
                      plan_k(L.w_up), plan_k(L.w_down), plan_v(L.attn_norm), plan_v(L.ffn_norm),
                      plan_v(L.bq), plan_v(L.bk), plan_v(L.bv), plan_v(L.q_norm),
                      plan_v(L.k_norm)});
    dm->mem.resize(total);
    dm->bytes = total;
    std::vector<uint8_t> host;  // one repacked matrix
    const int n_thr = int(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
    for (const Item& it : items) {
        const void* src = it.src;
        if (it.ksplit) {
            const WeightView& w = *it.ksplit;
            host.resize(it.bytes);
            std::vector<std::thread> th;
            const int64_t per = (w.ne1 + n_thr - 1) / n_thr;
            for (int t = 0; t < n_thr; ++t) {
                const int64_t r0 = t * per, r1 = std::min(w.ne1, r0 + per);
                if (r0 >= r1) break;
                th.emplace_back([&, r0, r1] {
                    repack_ksplit_rows(w.type, w.ne0, static_cast<const uint8_t*>(w.data),
                                       w.row_bytes, host.data(), r0, r1);
                });
            }
            for (auto& t : th) t.join();
            src = host.data();
        }
        LLM8_CUDA_CHECK(cudaMemcpy(dm->mem.get() + it.off, src, it.bytes, cudaMemcpyHostToDevice));
    }

    uint8_t* base = dm->mem.get();
    // Q4_0/Q8_0 matrices (not the embedding, which get_rows gathers) are repacked into the
    // split layout through a scratch copy: the decode GEMV's integer kernels read it.
    // LLM8_SPLIT=0 keeps ggml's blocks (A/B switch; the decode path then takes gemv()), for the
    // K split types too.
    DeviceArray<uint8_t> scratch;
    auto mat = [&](const WeightView& w, size_t i) {
        DeviceMatrix d{w.type, w.ne0, w.ne1, w.row_bytes, base + items[i].off, false};
        return d;
    };
    auto mat_split = [&](const WeightView& w, size_t i) {
        DeviceMatrix d = mat(w, i);
        if (items[i].ksplit) {
            d.row_bytes = ksplit_row(w.type, w.ne0).pitch;
            d.split = true;
            return d;
        }
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

}  // namespace cuda
}  // namespace llm8
