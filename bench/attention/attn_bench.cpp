// Times llm8's FP16-cache attention kernel on the shapes of BRIEF.md's anchors, with CUDA
// events (median of 20 after 3 warm-ups), and prints TFLOP/s (prefill) or GB/s (decode).
// bench/attention/sdpa_bench.py times torch SDPA (cuDNN, FA2) on the same shapes in the
// same call; run both through bench/attention/run_gpu.sh.
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
        int n_head, n_kv, hd, n_tok, n_keys, batch;  // batch: sequences run one after another
    };
    const Shape shapes[] = {
        {"prefill hd128 causal 4096 x B4 (32/32 heads)", 32, 32, 128, 4096, 4096, 4},
        {"prefill hd128 causal 1024 x B16 (32/32)", 32, 32, 128, 1024, 1024, 16},
        {"prefill hd64 causal 4096 x B4 (32/32)", 32, 32, 64, 4096, 4096, 4},
        {"decode GQA 32q/8kv hd128 L32768 x B16", 32, 8, 128, 1, 32768, 16},
        {"decode GQA 32q/8kv hd128 L4096 x B16", 32, 8, 128, 1, 4096, 16},
    };
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::printf("| shape | ms | rate |\n| --- | ---: | ---: |\n");
    for (const Shape& s : shapes) {
        const size_t qn = size_t(s.n_tok) * s.n_head * s.hd, kvn = size_t(s.n_keys) * s.n_kv * s.hd;
        std::vector<float> q(qn);
        std::vector<uint16_t> k(kvn), v(kvn);
        for (auto& x : q) x = nd(rng);
        for (auto& x : k) x = uint16_t(0x3c00 ^ (rng() & 0x83ff));  // random halves in (-2, 2)
        for (auto& x : v) x = uint16_t(0x3c00 ^ (rng() & 0x83ff));
        float *dq, *dout, *ws;
        uint16_t *dk, *dv;
        int32_t* dpos;
        const size_t wsn =
            llm8::cuda::attention_workspace_floats(s.n_tok, s.n_head, s.hd, s.n_keys);
        cudaMalloc(reinterpret_cast<void**>(&dq), qn * 4);
        cudaMalloc(reinterpret_cast<void**>(&dout), qn * 4);
        cudaMalloc(reinterpret_cast<void**>(&ws), wsn * 4);
        cudaMalloc(reinterpret_cast<void**>(&dk), kvn * 2);
        cudaMalloc(reinterpret_cast<void**>(&dv), kvn * 2);
        cudaMalloc(reinterpret_cast<void**>(&dpos), 4);
        cudaMemcpy(dq, q.data(), qn * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dk, k.data(), kvn * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dv, v.data(), kvn * 2, cudaMemcpyHostToDevice);
        const int32_t pos0 = s.n_keys - s.n_tok;
        cudaMemcpy(dpos, &pos0, 4, cudaMemcpyHostToDevice);
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        std::vector<float> times;
        for (int it = 0; it < 23; ++it) {
            cudaEventRecord(a);
            for (int bi = 0; bi < s.batch; ++bi)
                llm8::cuda::attention_f16(dq, dk, dv, s.n_tok, dpos, s.n_keys, s.n_head, s.n_kv,
                                          s.hd, dout, ws, nullptr);
            cudaEventRecord(b);
            cudaEventSynchronize(b);
            float ms;
            cudaEventElapsedTime(&ms, a, b);
            if (it >= 3) times.push_back(ms);
        }
        const double ms = llm8_bench::median(times);
        if (s.n_tok > 1) {
            // Causal: half of the QK^T and PV products.
            const double flops =
                4.0 * s.batch * double(s.n_head) * s.hd * double(s.n_tok) * s.n_keys / 2;
            std::printf("| %s | %.3f | %.1f TFLOP/s |\n", s.name, ms, flops / ms / 1e9);
        } else {
            const double bytes = double(s.batch) * 2.0 * kvn * 2;
            std::printf("| %s | %.3f | %.0f GB/s |\n", s.name, ms, bytes / ms / 1e6);
        }
        cudaFree(dq);
        cudaFree(dout);
        cudaFree(ws);
        cudaFree(dk);
        cudaFree(dv);
        cudaFree(dpos);
        if (cudaGetLastError() != cudaSuccess) {
            std::printf("CUDA error\n");
            return 1;
        }
    }
    return 0;
}
