// Times the decode GEMV (gemv_decode, one token) on the matrices of llama-2-7B and llama-3-8B
// against the device-to-device copy rate measured in the same run (issue 4: the big matrices'
// GEMV should reach 85% of it). Weights are random bytes (timing does not depend on values),
// in enough copies to exceed the L2 cache; each figure is the median over 30 batches of 20
// back-to-back calls, rotating the copies. Rates count the weight bytes read once per call; the
// last column counts the file's bytes instead (the K split layout of the K-quants and i-quants
// reads up to 1.09x them). Arguments: the types to time (default q4_0 q8_0 f16), e.g.
// `llm8-bench-gemv q4_K q6_K iq4_xs`, and `-n 1,16,64`: tokens per call (a decode step of that
// many sequences: the weights are still read once per call; default 1).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../bench_util.h"
#include "cuda/ksplit.h"
#include "cuda/ops.h"
#include "gguf/quants.h"

namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "llm8-bench-gemv: %s: %s\n", what, cudaGetErrorString(e));
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    using llm8::GgmlType;
    std::vector<GgmlType> types;
    std::vector<int> ns;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "-n" && i + 1 < argc) {
            const std::string list = argv[++i];
            for (size_t p = 0; p < list.size();) {
                const size_t q = std::min(list.find(',', p), list.size());
                const int n = std::atoi(list.substr(p, q - p).c_str());
                if (n < 1 || n > 64) {
                    std::fprintf(stderr, "llm8-bench-gemv: -n takes token counts 1..64\n");
                    return 1;
                }
                ns.push_back(n);
                p = q + 1;
            }
            continue;
        }
        GgmlType t;
        if (!llm8::type_from_name(argv[i], &t)) {
            std::fprintf(stderr, "llm8-bench-gemv: unknown type '%s'\n", argv[i]);
            return 1;
        }
        types.push_back(t);
    }
    if (types.empty()) types = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16};
    if (ns.empty()) ns = {1};
    cudaEvent_t a, b;
    check(cudaEventCreate(&a), "event");
    check(cudaEventCreate(&b), "event");
    // The anchor: device-to-device copy of 1 GiB, (read + write) bytes per second.
    const size_t cb = size_t(1) << 30;
    void *src, *dst;
    check(cudaMalloc(&src, cb), "malloc");
    check(cudaMalloc(&dst, cb), "malloc");
    std::vector<float> ct;
    for (int i = 0; i < 12; ++i) {
        cudaEventRecord(a);
        cudaMemcpyAsync(dst, src, cb, cudaMemcpyDeviceToDevice);
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        if (i >= 2) ct.push_back(ms);
    }
    const double copy_gbs = 2.0 * double(cb) / (llm8_bench::median(ct) * 1e-3) / 1e9;
    cudaFree(src);
    cudaFree(dst);
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    std::printf("device %s; copy rate (read + write) %.0f GB/s\n\n", prop.name, copy_gbs);
    std::printf(
        "| type | matrix (rows x K) | tokens | us | GB/s | of copy rate | file bytes: of copy "
        "rate |\n|---|---|---:|---:|---:|---:|---:|\n");

    struct Shape {
        const char* name;
        int64_t rows, K;
        bool swiglu;  // gate + up: two matrices of `rows`, SwiGLU epilogue
    };
    const Shape shapes[] = {
        {"Wq 4096 x 4096", 4096, 4096, false},
        {"gate+up 2 x 11008 x 4096", 11008, 4096, true},
        {"down 4096 x 11008", 4096, 11008, false},
        {"output 32000 x 4096", 32000, 4096, false},
        {"gate+up 2 x 14336 x 4096 (llama-3)", 14336, 4096, true},
        {"down 4096 x 14336 (llama-3)", 4096, 14336, false},
        {"output 128256 x 4096 (llama-3)", 128256, 4096, false},
    };
    std::mt19937 rng(1);
    for (const int n : ns)
        for (GgmlType t : types) {
            const bool ks = llm8::cuda::can_ksplit(t, 256);
            for (const Shape& s : shapes) {
                const size_t file_row_bytes = llm8::row_size(t, s.K);
                const size_t row_bytes = ks ? llm8::cuda::ksplit_row(t, s.K).pitch : file_row_bytes;
                const size_t mat_bytes = row_bytes * size_t(s.rows);
                const int n_mats = s.swiglu ? 2 : 1;
                const size_t call_bytes = mat_bytes * size_t(n_mats);
                const int copies = int(std::max<size_t>(2, (size_t(320) << 20) / call_bytes + 1));
                std::vector<uint8_t*> w(size_t(copies * n_mats));
                std::vector<uint32_t> host(mat_bytes / 4 + 1);
                for (auto& v : host) v = uint32_t(rng());
                for (auto& p : w) {
                    check(cudaMalloc(reinterpret_cast<void**>(&p), mat_bytes), "malloc weights");
                    check(cudaMemcpy(p, host.data(), mat_bytes, cudaMemcpyHostToDevice), "upload");
                }
                float *x, *xf, *ds, *y0, *y1;
                int8_t* xq;
                const size_t nk = size_t(n) * size_t(s.K);
                cudaMalloc(reinterpret_cast<void**>(&x), nk * 4);
                cudaMalloc(reinterpret_cast<void**>(&xf), nk * 4);
                cudaMalloc(reinterpret_cast<void**>(&ds), nk / 16 * 4);
                cudaMalloc(reinterpret_cast<void**>(&xq), nk);
                cudaMalloc(reinterpret_cast<void**>(&y0), size_t(n) * size_t(s.rows) * 4);
                cudaMalloc(reinterpret_cast<void**>(&y1), size_t(n) * size_t(s.rows) * 4);
                std::vector<float> hx(nk);
                for (auto& v : hx) v = float(int(rng() % 2001) - 1000) / 1000.0f;
                cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice);
                llm8::cuda::DeviceMatrix dm{t, s.K, s.rows, row_bytes, w[0], t != GgmlType::F16};
                const llm8::cuda::ActKind kind = llm8::cuda::decode_act_kind(dm);
                llm8::cuda::decode_act(x, s.K, x, 1e-5f, kind, xf, xq, ds, nullptr, n);
                llm8::cuda::DecodeAct act;
                act.kind = kind;
                act.f = xf;
                act.q = xq;
                act.ds = ds;
                float* ys[2] = {y0, y1};
                auto call = [&](int c) {
                    llm8::cuda::DeviceMatrix m[2] = {dm, dm};
                    m[0].data = w[size_t(c * n_mats)];
                    if (n_mats == 2) m[1].data = w[size_t(c * n_mats + 1)];
                    if (!llm8::cuda::gemv_decode(
                            m, ys, n_mats, act,
                            s.swiglu ? llm8::cuda::GemvMode::swiglu : llm8::cuda::GemvMode::store,
                            nullptr, nullptr, n)) {
                        std::fprintf(stderr, "llm8-bench-gemv: no decode kernel\n");
                        std::exit(1);
                    }
                };
                for (int c = 0; c < copies; ++c) call(c);
                std::vector<float> times;
                const int per = 20;
                for (int rep = 0; rep < 30; ++rep) {
                    cudaEventRecord(a);
                    for (int i = 0; i < per; ++i) call((rep * per + i) % copies);
                    cudaEventRecord(b);
                    check(cudaEventSynchronize(b), "run");
                    float ms = 0;
                    cudaEventElapsedTime(&ms, a, b);
                    times.push_back(ms / per);
                }
                const double us = llm8_bench::median(times) * 1e3;
                const double gbs = double(call_bytes) / (us * 1e-6) / 1e9;
                const double file_gbs =
                    double(file_row_bytes * size_t(s.rows) * size_t(n_mats)) / (us * 1e-6) / 1e9;
                std::printf("| %s | %s | %d | %.2f | %.0f | %.0f%% | %.0f%% |\n",
                            llm8::type_name(t), s.name, n, us, gbs, 100.0 * gbs / copy_gbs,
                            100.0 * file_gbs / copy_gbs);
                for (auto p : w) cudaFree(p);
                for (void* p :
                     {static_cast<void*>(x), static_cast<void*>(xf), static_cast<void*>(ds),
                      static_cast<void*>(xq), static_cast<void*>(y0), static_cast<void*>(y1)})
                    cudaFree(p);
            }
        }
    return 0;
}
