// Times llm8's attention kernels (FP16; sage and int8 over the F16 cache, quantization
// included; decode over the INT8 cache) on the shapes of BRIEF.md's anchors, with CUDA
// events (median of 20 after 3 warm-ups), and prints TFLOP/s (prefill) or GB/s (decode).
// bench/attention/sdpa_bench.py times torch SDPA (cuDNN, FA2) on the same shapes in the
// same call (not the chunk shape: SDPA aligns its causal mask to the top left).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "../bench_util.h"
#include "cuda/ops.h"

int main() {
    struct Shape {
        const char* name;
        int n_head, n_kv, hd, n_tok, n_keys, batch;  // batch: sequences of one launch
    };
    const Shape shapes[] = {
        {"prefill hd128 causal 4096 x B4 (32/32 heads)", 32, 32, 128, 4096, 4096, 4},
        {"prefill hd128 causal 1024 x B16 (32/32)", 32, 32, 128, 1024, 1024, 16},
        {"prefill hd64 causal 4096 x B4 (32/32)", 32, 32, 64, 4096, 4096, 4},
        {"prefill chunk GQA 32q/8kv hd128 512 over 16384 keys x B1", 32, 8, 128, 512, 16384, 1},
        {"decode GQA 32q/8kv hd128 L32768 x B16", 32, 8, 128, 1, 32768, 16},
        {"decode GQA 32q/8kv hd128 L4096 x B16", 32, 8, 128, 1, 4096, 16},
        {"decode GQA 32q/8kv hd128 L32768 x B1", 32, 8, 128, 1, 32768, 1},
        {"decode GQA 32q/8kv hd128 L16384 x B1", 32, 8, 128, 1, 16384, 1},
        {"decode GQA 32q/8kv hd128 L4096 x B1", 32, 8, 128, 1, 4096, 1},
    };
    const int block = 64;  // the engine's KV block size (runtime/kv_cache.h)
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::printf("The batch's sequences over a paged cache whose blocks are shuffled: one launch "
                "for the batch, and one launch per sequence.\n\n");
    std::printf("| shape | batched ms | rate | per-sequence ms | rate |\n| --- | ---: | ---: | ---: "
                "| ---: |\n");
    for (const Shape& s : shapes) {
        const int blocks_per_seq = (s.n_keys + block - 1) / block;
        const int n_blocks = blocks_per_seq * s.batch;
        const size_t kv_dim = size_t(s.n_kv) * s.hd;
        const size_t qn = size_t(s.batch) * s.n_tok * s.n_head * s.hd;
        const size_t kvn = size_t(n_blocks) * block * kv_dim;
        std::vector<float> q(qn);
        std::vector<uint16_t> k(kvn), v(kvn);
        for (auto& x : q) x = nd(rng);
        for (auto& x : k) x = uint16_t(0x3c00 ^ (rng() & 0x83ff));  // random halves in (-2, 2)
        for (auto& x : v) x = uint16_t(0x3c00 ^ (rng() & 0x83ff));
        std::vector<int32_t> order(static_cast<size_t>(n_blocks));
        for (int i = 0; i < n_blocks; ++i) order[size_t(i)] = i;
        std::shuffle(order.begin(), order.end(), rng);
        std::vector<int32_t> q_start, kv_len(size_t(s.batch), s.n_keys);
        for (int b = 0; b <= s.batch; ++b) q_start.push_back(b * s.n_tok);
        float *dq, *dout, *ws;
        uint16_t *dk, *dv;
        int32_t *dqs, *dkvl, *dt;
        const size_t wsn =
            llm8::cuda::attention_workspace_floats(int64_t(s.batch) * s.n_tok, s.n_head, s.hd,
                                                   s.n_keys);
        cudaMalloc(reinterpret_cast<void**>(&dq), qn * 4);
        cudaMalloc(reinterpret_cast<void**>(&dout), qn * 4);
        cudaMalloc(reinterpret_cast<void**>(&ws), wsn * 4);
        cudaMalloc(reinterpret_cast<void**>(&dk), kvn * 2);
        cudaMalloc(reinterpret_cast<void**>(&dv), kvn * 2);
        cudaMalloc(reinterpret_cast<void**>(&dqs), q_start.size() * 4);
        cudaMalloc(reinterpret_cast<void**>(&dkvl), kv_len.size() * 4);
        cudaMalloc(reinterpret_cast<void**>(&dt), order.size() * 4);
        cudaMemcpy(dq, q.data(), qn * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dk, k.data(), kvn * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dv, v.data(), kvn * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dqs, q_start.data(), q_start.size() * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dkvl, kv_len.data(), kv_len.size() * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dt, order.data(), order.size() * 4, cudaMemcpyHostToDevice);
        llm8::AttnParams p;
        p.q = dq;
        p.out = dout;
        p.kv.type = llm8::KvType::f16;
        p.kv.k = dk;
        p.kv.v = dv;
        p.kv.kv_dim = int(kv_dim);
        p.kv.block_size = block;
        p.kv.block_shift = 6;
        p.kv.block_tables = dt;
        p.kv.max_blocks = blocks_per_seq;
        p.n_seqs = s.batch;
        p.n_tokens = s.batch * s.n_tok;
        p.q_start = dqs;
        p.kv_len = dkvl;
        p.max_q = s.n_tok;
        p.max_kv = s.n_keys;
        p.n_head = s.n_head;
        p.n_head_kv = s.n_kv;
        p.head_dim = s.hd;
        p.ws = ws;
        p.ws_floats = wsn;
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        // Median of 20 timed calls of fn after 3 warm-ups.
        auto time_fn = [&](auto fn) {
            std::vector<float> times;
            for (int it = 0; it < 23; ++it) {
                cudaEventRecord(a);
                fn();
                cudaEventRecord(b);
                cudaEventSynchronize(b);
                float ms;
                cudaEventElapsedTime(&ms, a, b);
                if (it >= 3) times.push_back(ms);
            }
            return llm8_bench::median(times);
        };
        const double ms_b = time_fn([&] { llm8::cuda::attention(p, nullptr); });
        const double ms_s = time_fn([&] {
            for (int bi = 0; bi < s.batch; ++bi) {
                llm8::AttnParams one = p;
                one.n_seqs = 1;
                one.n_tokens = s.n_tok;
                one.q = dq + size_t(bi) * s.n_tok * s.n_head * s.hd;
                one.out = dout + size_t(bi) * s.n_tok * s.n_head * s.hd;
                one.kv.block_tables = dt + size_t(bi) * blocks_per_seq;
                one.q_start = dqs;  // {0, n_tok}
                llm8::cuda::attention(one, nullptr);
            }
        });
        // Decode: the INT8 cache (bytes with one scale per token and head) in the same run.
        double ms_i8 = 0;
        if (s.n_tok == 1) {
            int8_t *k8, *v8;
            float *ks, *vs;
            const size_t rows = size_t(n_blocks) * block * size_t(s.n_kv);
            cudaMalloc(reinterpret_cast<void**>(&k8), kvn);
            cudaMalloc(reinterpret_cast<void**>(&v8), kvn);
            cudaMalloc(reinterpret_cast<void**>(&ks), rows * 4);
            cudaMalloc(reinterpret_cast<void**>(&vs), rows * 4);
            std::vector<int8_t> h8(kvn);
            for (auto& x : h8) x = int8_t(int(rng() % 255) - 127);
            cudaMemcpy(k8, h8.data(), kvn, cudaMemcpyHostToDevice);
            cudaMemcpy(v8, h8.data(), kvn, cudaMemcpyHostToDevice);
            std::vector<float> hs(rows, 0.01f);
            cudaMemcpy(ks, hs.data(), rows * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(vs, hs.data(), rows * 4, cudaMemcpyHostToDevice);
            llm8::AttnParams p8 = p;
            p8.kv.type = llm8::KvType::i8;
            p8.kv.k = k8;
            p8.kv.v = v8;
            p8.kv.k_scale = ks;
            p8.kv.v_scale = vs;
            ms_i8 = time_fn([&] { llm8::cuda::attention(p8, nullptr); });
            for (void* ptr : {static_cast<void*>(k8), static_cast<void*>(v8),
                              static_cast<void*>(ks), static_cast<void*>(vs)})
                cudaFree(ptr);
        }
        if (s.n_tok > 1) {
            // Causal, aligned to the end: query i sees n_keys - n_tok + i + 1 keys.
            const double flops = 4.0 * s.batch * double(s.n_head) * s.hd * double(s.n_tok) *
                                 (s.n_keys - s.n_tok / 2.0);
            std::printf("| %s | %.3f | %.1f TFLOP/s | %.3f | %.1f TFLOP/s |\n", s.name, ms_b,
                        flops / ms_b / 1e9, ms_s, flops / ms_s / 1e9);
            // The 8-bit modes over the same F16 cache, quantization launches included.
            llm8::AttnParams p8 = p;
            p8.kv_tiles = s.batch * blocks_per_seq;
            const size_t bytes8 = llm8::cuda::attention_8bit_workspace_bytes(
                p.n_tokens, s.n_head, s.n_kv, s.hd, s.batch, p8.kv_tiles);
            void* w8 = nullptr;
            cudaMalloc(&w8, bytes8);
            p8.ws8 = w8;
            p8.ws8_bytes = bytes8;
            for (llm8::AttnMode m : {llm8::AttnMode::sage, llm8::AttnMode::int8}) {
                p8.mode = m;
                const double ms8 = time_fn([&] { llm8::cuda::attention(p8, nullptr); });
                std::printf("| %s, --attn %s | %.3f | %.1f TFLOP/s (%.2fx f16) | | |\n", s.name,
                            llm8::attn_mode_name(m), ms8, flops / ms8 / 1e9, ms_b / ms8);
            }
            cudaFree(w8);
        } else {
            const double bytes = double(s.batch) * 2.0 * double(s.n_keys) * kv_dim * 2;
            const double bytes8 = double(s.batch) * 2.0 * double(s.n_keys) * (kv_dim + s.n_kv * 4);
            std::printf("| %s | %.3f | %.0f GB/s | %.3f | %.0f GB/s |\n", s.name, ms_b,
                        bytes / ms_b / 1e6, ms_s, bytes / ms_s / 1e6);
            std::printf("| %s, INT8 cache | %.3f | %.0f GB/s (%.0f GB/s F16-equivalent) | | |\n",
                        s.name, ms_i8, bytes8 / ms_i8 / 1e6, bytes / ms_i8 / 1e6);
        }
        for (void* ptr : {static_cast<void*>(dq), static_cast<void*>(dout), static_cast<void*>(ws),
                          static_cast<void*>(dk), static_cast<void*>(dv), static_cast<void*>(dqs),
                          static_cast<void*>(dkvl), static_cast<void*>(dt)})
            cudaFree(ptr);
        if (cudaGetLastError() != cudaSuccess) {
            std::printf("CUDA error\n");
            return 1;
        }
    }
    return 0;
}
