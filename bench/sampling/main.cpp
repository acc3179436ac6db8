// Latency per call of the GPU sampler (llm8_sample_cuda): softmax with temperature, top-k and
// top-p, one token per row, logits N(0, 2^2) fp32 on the device.
//   llm8-bench-sampling [-b 1,16,64,256] [-v 32000,128256,151936] [-k 50] [-p 0.9] [-t 0.8]
//                       [-r 300] [-c 0,8,16] [-s 0,1,4] [--json FILE] [--stage 0,1,2,4,3]
//                       [--no-hold]
// --stage N stops every row after a stage (1: max exchange, 2: histogram exchange, 4: as 2 without
// the histogram's atomics, 3: gather; 0: all) to see where the time goes; --no-hold enqueues
// without holding the stream (for profilers, which serialize launches).
// Timing (same method as bench_torch_flashinfer.py): the stream is held by a host callback
// while every call of a configuration is enqueued, so the GPU runs them back to back with no
// host gaps; a CUDA event before each call gives the per-call time; the median is reported.
// Inputs rotate over enough buffers (>= 3x the L2) that no call finds its logits in the cache.
#include <CLI/CLI.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/sampling/sample_cluster_sm90.cuh"  // set_stage_limit (stage timings)
#include "cuda/sampling/sample_topk_sm90.cuh"     // set_topk_split (sweeps)
#include "llm8/sampling.h"

namespace {

#define CHECK_CUDA(x)                                                      \
    do {                                                                   \
        const cudaError_t e_ = (x);                                        \
        if (e_ != cudaSuccess) {                                           \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, \
                         cudaGetErrorString(e_));                          \
            std::exit(1);                                                  \
        }                                                                  \
    } while (0)

std::atomic<int> g_release{0};
void CUDART_CB hold_stream(void*) {
    while (g_release.load(std::memory_order_acquire) == 0) std::this_thread::yield();
}

struct Stats {
    double median_us, p10_us, p90_us;
};

Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[size_t(q * double(v.size() - 1) + 0.5)]; };
    return Stats{at(0.5), at(0.1), at(0.9)};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"llm8-bench-sampling: GPU sampler latency per call"};
    std::vector<int> batches{1, 16, 64, 256};
    std::vector<int> vocabs{32000, 128256, 151936};
    std::vector<int> clusters{0};
    std::vector<int> stages{0};
    std::vector<int> splits{0};
    std::vector<int> tstages{0};
    bool topk_alone = false;
    bool no_hold = false;
    int top_k = 50, reps = 300;
    float top_p = 0.9f, temp = 0.8f;
    std::string json_path;
    app.add_option("-b,--batch", batches, "batch sizes")->delimiter(',');
    app.add_option("-v,--vocab", vocabs, "vocabulary sizes")->delimiter(',');
    app.add_option("-c,--cluster", clusters,
                   "cluster kernel alone with this many blocks per row (0: automatic, with the "
                   "top-k kernel first)")
        ->delimiter(',');
    app.add_option("-s,--split", splits, "top-k kernel: blocks per row (0: automatic)")
        ->delimiter(',');
    app.add_option("-k,--top-k", top_k, "top-k");
    app.add_option("-p,--top-p", top_p, "top-p");
    app.add_option("-t,--temp", temp, "temperature");
    app.add_option("-r,--repetitions", reps, "timed calls per configuration")
        ->check(CLI::PositiveNumber);
    app.add_option("--json", json_path, "write the results as JSON");
    app.add_option("--stage", stages, "stop after a stage (0: all)")->delimiter(',');
    app.add_flag("--no-hold", no_hold, "do not hold the stream while enqueuing");
    app.add_option("--topk-stage", tstages,
                   "top-k kernel: stop after a stage (1 local top-k, 2 exchange, 3 merge; 0 all)")
        ->delimiter(',');
    app.add_flag("--topk-alone", topk_alone, "time the top-k kernel without the cluster kernel");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    cudaDeviceProp prop{};
    CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    if (llm8_sample_cuda_prepare() != LLM8_SAMPLING_OK) {
        std::fprintf(stderr, "%s\n", llm8_sample_cuda_error_string(LLM8_SAMPLING_ECUDA));
        return 1;
    }
    cudaStream_t st;
    CHECK_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const size_t l2 = size_t(prop.l2CacheSize);

    nlohmann::json out;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    out["gpu"] = prop.name;
    out["date"] = date;
    out["method"] = "per-call CUDA events, calls enqueued behind a host hold, median";
    out["params"] = {
        {"top_k", top_k}, {"top_p", top_p}, {"temperature", temp}, {"logits", "N(0,4) fp32"}};
    out["results"] = nlohmann::json::array();

    std::printf(
        "| B | V | kernel | stage | median us | p10 us | p90 us | GB/s "
        "|\n|---|---|---|---|---|---|---|---|\n");
    for (int V : vocabs) {
        // a pool of random rows, copied around to fill the rotating buffers
        const int pool = 16;
        std::vector<float> host(size_t(pool) * size_t(V));
        std::mt19937 rng(1234u + unsigned(V));
        std::normal_distribution<float> nd(0.0f, 2.0f);
        for (float& x : host) x = nd(rng);
        float* dpool = nullptr;
        CHECK_CUDA(cudaMalloc(&dpool, host.size() * sizeof(float)));
        CHECK_CUDA(
            cudaMemcpy(dpool, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
        for (int B : batches) {
            const size_t set_bytes = size_t(B) * size_t(V) * sizeof(float);
            const int nsets = int(
                std::min<size_t>(8192, std::max<size_t>(2, (3 * l2 + set_bytes - 1) / set_bytes)));
            float* logits = nullptr;
            CHECK_CUDA(cudaMalloc(&logits, set_bytes * size_t(nsets)));
            for (int r = 0; r < B * nsets; ++r)
                CHECK_CUDA(cudaMemcpy(logits + size_t(r) * size_t(V),
                                      dpool + size_t(r % pool) * size_t(V),
                                      size_t(V) * sizeof(float), cudaMemcpyDeviceToDevice));
            std::vector<llm8_sampling_row_params> params(static_cast<size_t>(B));
            for (int r = 0; r < B; ++r) {
                llm8_sampling_row_params& p = params[size_t(r)];
                p = llm8_sampling_row_params{};
                p.temperature = temp;
                p.top_k = top_k;
                p.top_p = top_p;
                p.min_p = 0.0f;
                p.repeat_penalty = 1.0f;
                p.seed = uint64_t(r) * 7919u + 1;
                p.flags = LLM8_SAMPLE_ADVANCE_DRAW;
            }
            llm8_sampling_row_params* dparams = nullptr;
            int32_t* dtok = nullptr;
            CHECK_CUDA(cudaMalloc(&dparams, params.size() * sizeof(params[0])));
            CHECK_CUDA(cudaMalloc(&dtok, size_t(B) * sizeof(int32_t)));
            CHECK_CUDA(cudaMemcpy(dparams, params.data(), params.size() * sizeof(params[0]),
                                  cudaMemcpyHostToDevice));
            const size_t ws_bytes = llm8_sample_cuda_workspace_size(B, V);
            void* ws = nullptr;
            CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
            CHECK_CUDA(cudaMemset(ws, 0, ws_bytes));
            for (int stage : stages)
                for (int cl : clusters)
                    for (int sp : splits)
                        for (int ts : tstages) {
                            if (cl != 0 && (sp != splits[0] || ts != tstages[0]))
                                continue;  // top-k's
                            llm8::cuda_sampling::set_stage_limit(stage);
                            llm8::cuda_sampling::set_topk_split(sp);
                            llm8::cuda_sampling::set_topk_stage(ts, topk_alone);
                            llm8_sampling_args a{};
                            a.batch = B;
                            a.vocab = V;
                            a.ld = V;
                            a.params = dparams;
                            a.out_tokens = dtok;
                            a.cluster_size = cl;
                            const int used = cl ? cl : llm8_sample_cuda_cluster_size(B, V);
                            const int split = llm8::cuda_sampling::topk_split(B, V);
                            const std::string kernel =
                                cl ? "cluster C=" + std::to_string(cl)
                                   : "top-k S=" + std::to_string(split) +
                                         (ts ? " stage " + std::to_string(ts) : "") +
                                         (topk_alone
                                              ? " alone"
                                              : " (+cluster C=" + std::to_string(used) + ")");
                            auto call = [&](int i) {
                                a.logits = logits + size_t(i % nsets) * size_t(B) * size_t(V);
                                const int rc = llm8_sample_cuda(&a, ws, ws_bytes, st);
                                if (rc != LLM8_SAMPLING_OK) {
                                    std::fprintf(stderr, "llm8_sample_cuda: %s\n",
                                                 llm8_sample_cuda_error_string(rc));
                                    std::exit(1);
                                }
                            };
                            for (int i = 0; i < 20; ++i) call(i);
                            CHECK_CUDA(cudaStreamSynchronize(st));
                            std::vector<cudaEvent_t> ev(size_t(reps) + 1);
                            for (auto& e : ev) CHECK_CUDA(cudaEventCreate(&e));
                            g_release.store(0);
                            if (!no_hold) CHECK_CUDA(cudaLaunchHostFunc(st, hold_stream, nullptr));
                            for (int i = 0; i < reps; ++i) {
                                // A held stream queues about a thousand launches before the host
                                // blocks (a deadlock with the hold): release it after 200 calls (an
                                // event and up to two kernels each); the queue keeps the GPU busy
                                // from there on.
                                if (i == 200) g_release.store(1, std::memory_order_release);
                                CHECK_CUDA(cudaEventRecord(ev[size_t(i)], st));
                                call(i);
                            }
                            CHECK_CUDA(cudaEventRecord(ev[size_t(reps)], st));
                            g_release.store(1, std::memory_order_release);
                            CHECK_CUDA(cudaStreamSynchronize(st));
                            std::vector<double> us(static_cast<size_t>(reps));
                            for (int i = 0; i < reps; ++i) {
                                float ms = 0;
                                CHECK_CUDA(
                                    cudaEventElapsedTime(&ms, ev[size_t(i)], ev[size_t(i) + 1]));
                                us[size_t(i)] = double(ms) * 1000.0;
                            }
                            for (auto& e : ev) cudaEventDestroy(e);
                            const Stats s = stats(us);
                            const double gbs = double(set_bytes) / (s.median_us * 1e-6) / 1e9;
                            std::printf("| %d | %d | %s | %d | %.1f | %.1f | %.1f | %.0f |\n", B, V,
                                        kernel.c_str(), stage, s.median_us, s.p10_us, s.p90_us,
                                        gbs);
                            std::fflush(stdout);
                            if (stage != 0 || cl != 0 || sp != 0 || ts != 0 || topk_alone)
                                continue;  // JSON: the default path only
                            out["results"].push_back({{"impl", "llm8"},
                                                      {"B", B},
                                                      {"V", V},
                                                      {"cluster", used},
                                                      {"split", split},
                                                      {"median_us", s.median_us},
                                                      {"p10_us", s.p10_us},
                                                      {"p90_us", s.p90_us},
                                                      {"GBps", gbs},
                                                      {"rotating_sets", nsets}});
                        }
            llm8::cuda_sampling::set_stage_limit(0);
            llm8::cuda_sampling::set_topk_split(0);
            llm8::cuda_sampling::set_topk_stage(0, false);
            cudaFree(ws);
            cudaFree(dparams);
            cudaFree(dtok);
            cudaFree(logits);
        }
        cudaFree(dpool);
    }
    if (!json_path.empty()) {
        std::ofstream f(json_path);
        f << out.dump(2) << "\n";
    }
    cudaStreamDestroy(st);
    return 0;
}
