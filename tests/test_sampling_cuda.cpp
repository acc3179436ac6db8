// The GPU sampler (llm8/sampling_cuda.h) against the CPU chain (llm8::Sampler), by counting:
// over >= 10^6 draws per configuration the GPU's frequencies match Sampler::distribution()
// (chi-square at the 1e-4 level and cosine > 0.999), filtered tokens never appear, and since
// both sides invert the CDF in id order with the same Philox uniform, the GPU token for each
// (seed, draw index) is the CPU token. Greedy is bit-exact, a row's tokens do not depend on the
// batch around it or on the cluster size, and NaN / inf / masked rows / k > V are defined.
// Without CUDA or without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "llm8/error.h"
#include "llm8/sampling.h"
#include "sampling/philox.h"

#ifdef LLM8_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/sampling/sample_topk_sm90.cuh"  // set_topk_split, topk_pending
#endif

using llm8::Sampler;
using llm8::SamplerParams;

namespace {

bool gpu_available(std::string* why) {
#ifndef LLM8_HAVE_CUDA
    *why = "built without CUDA (LLM8_HAVE_CUDA is not defined): GPU sampler tests skipped";
    return false;
#else
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        *why = std::string("no CUDA device (") +
               (e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount returned 0") +
               "): GPU sampler tests skipped";
        return false;
    }
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    if (prop.major != 9) {
        *why = std::string("the GPU sampler is built for sm_90a; device 0 is ") + prop.name +
               ": GPU sampler tests skipped";
        return false;
    }
    return true;
#endif
}

#define REQUIRE_GPU()                                    \
    do {                                                 \
        std::string why_;                                \
        if (!gpu_available(&why_)) GTEST_SKIP() << why_; \
    } while (0)

#ifdef LLM8_HAVE_CUDA

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> gaussian(int n, uint32_t seed, float sd) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng);
    return v;
}

SamplerParams plain(float t) {
    SamplerParams sp;
    sp.temperature = t;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    return sp;
}

// The CPU Sampler's token for draw `index`: Sampler::sample's inverse CDF (the running sum in
// id order, the first token whose running sum exceeds u) on the same uniform, by binary search.
struct CpuDraw {
    std::vector<double> cum;
    int32_t last = -1;
    explicit CpuDraw(const std::vector<double>& probs) : cum(probs.size()) {
        double c = 0;
        for (size_t i = 0; i < probs.size(); ++i) {
            if (probs[i] > 0) {
                c += probs[i];
                last = int32_t(i);
            }
            cum[i] = c;
        }
    }
    int32_t token(uint64_t seed, uint64_t index) const {
        const double u = double(llm8::philox_draw(seed, index));
        const auto it = std::upper_bound(cum.begin(), cum.end(), u);
        return it == cum.end() ? last : int32_t(it - cum.begin());
    }
};

#define CUDA_OK(x)                                                          \
    do {                                                                    \
        const cudaError_t e_ = (x);                                         \
        ASSERT_EQ(e_, cudaSuccess) << #x << ": " << cudaGetErrorString(e_); \
    } while (0)

template <class T>
struct Dev {
    T* p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) {
        if (count && cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) p = nullptr;
    }
    ~Dev() {
        if (p) cudaFree(p);
    }
    Dev(const Dev&) = delete;
    Dev& operator=(const Dev&) = delete;
    void put(const std::vector<T>& v) {
        cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    }
    std::vector<T> get() const {
        std::vector<T> v(n);
        cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
        return v;
    }
};

// A batch as the host sees it.
struct Batch {
    int vocab = 0;
    int64_t ld = 0;
    std::vector<float> logits;                     // [rows][ld]
    std::vector<llm8_sampling_row_params> params;  // [rows]
    std::vector<int32_t> pen_tokens, pen_counts;   // pen_counts empty: raw windows
    std::vector<int32_t> bias_tokens;
    std::vector<float> bias_values;
    int top_n = 0;
    int cluster = 0;
    bool logprobs = true;
    bool workspace = true;  // false: no workspace, every row on the cluster kernel
    int rows() const { return int(params.size()); }

    // Appends a row: its logits, the chain's parameters, the penalty window and the bias.
    void add(const std::vector<float>& l, const SamplerParams& sp, uint64_t draw_index,
             const std::vector<int32_t>& window = {}) {
        if (vocab == 0) {
            vocab = int(l.size());
            if (ld == 0) ld = vocab;
        }
        const size_t off = logits.size();
        logits.resize(off + size_t(ld), 0.0f);
        std::copy(l.begin(), l.end(), logits.begin() + long(off));
        llm8_sampling_row_params p = llm8::gpu_row_params(sp, draw_index);
        p.penalty_begin = int32_t(pen_tokens.size());
        p.penalty_count = int32_t(window.size());
        pen_tokens.insert(pen_tokens.end(), window.begin(), window.end());
        p.bias_begin = int32_t(bias_tokens.size());
        p.bias_count = int32_t(sp.logit_bias.size());
        for (const auto& kv : sp.logit_bias) {
            bias_tokens.push_back(kv.first);
            bias_values.push_back(kv.second);
        }
        params.push_back(p);
    }
};

struct Out {
    std::vector<int32_t> tokens, status, top_tokens;
    std::vector<float> logprobs, top_logprobs;
};

// Device copy of a batch that can be launched repeatedly with new draw indices.
struct DeviceBatch {
    const Batch& b;
    Dev<float> logits;
    Dev<llm8_sampling_row_params> params;
    Dev<int32_t> pen, cnt, bias_t;
    Dev<float> bias_v;
    Dev<int32_t> tokens, status, top_tokens;
    Dev<float> logprobs, top_logprobs;
    Dev<unsigned char> ws;
    explicit DeviceBatch(const Batch& batch)
        : b(batch),
          logits(batch.logits.size()),
          params(batch.params.size()),
          pen(std::max<size_t>(1, batch.pen_tokens.size())),
          cnt(std::max<size_t>(1, batch.pen_counts.size())),
          bias_t(std::max<size_t>(1, batch.bias_tokens.size())),
          bias_v(std::max<size_t>(1, batch.bias_values.size())),
          tokens(batch.params.size()),
          status(batch.params.size()),
          top_tokens(std::max<size_t>(1, batch.params.size() * size_t(batch.top_n))),
          logprobs(batch.params.size()),
          top_logprobs(std::max<size_t>(1, batch.params.size() * size_t(batch.top_n))),
          ws(batch.workspace ? llm8_sample_cuda_workspace_size(batch.rows(), batch.vocab) : 0) {
        if (ws.p) cudaMemset(ws.p, 0, ws.n);
        logits.put(b.logits);
        params.put(b.params);
        if (!b.pen_tokens.empty()) pen.put(b.pen_tokens);
        if (!b.pen_counts.empty()) cnt.put(b.pen_counts);
        if (!b.bias_tokens.empty()) bias_t.put(b.bias_tokens);
        if (!b.bias_values.empty()) bias_v.put(b.bias_values);
    }
    llm8_sampling_args args() const {
        llm8_sampling_args a{};
        a.logits = logits.p;
        a.batch = b.rows();
        a.vocab = b.vocab;
        a.ld = b.ld;
        a.params = params.p;
        a.penalty_tokens = pen.p;
        a.penalty_counts = b.pen_counts.empty() ? nullptr : cnt.p;
        a.bias_tokens = bias_t.p;
        a.bias_values = bias_v.p;
        a.out_tokens = tokens.p;
        a.out_status = status.p;
        a.out_logprobs = b.logprobs ? logprobs.p : nullptr;
        a.top_n = b.top_n;
        a.out_top_tokens = top_tokens.p;
        a.out_top_logprobs = top_logprobs.p;
        a.cluster_size = b.cluster;
        return a;
    }
    // Poisons the outputs, samples, returns the outputs.
    Out run(const std::vector<llm8_sampling_row_params>* new_params = nullptr) {
        if (new_params) params.put(*new_params);
        cudaMemset(tokens.p, 0x7f, tokens.n * sizeof(int32_t));
        cudaMemset(status.p, 0x7f, status.n * sizeof(int32_t));
        cudaMemset(top_tokens.p, 0x7f, top_tokens.n * sizeof(int32_t));
        const llm8_sampling_args a = args();
        const int rc = llm8_sample_cuda(&a, ws.p, ws.n, nullptr);
        EXPECT_EQ(rc, LLM8_SAMPLING_OK) << llm8_sample_cuda_error_string(rc);
        const cudaError_t e = cudaDeviceSynchronize();
        EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
        Out o;
        o.tokens = tokens.get();
        o.status = status.get();
        if (b.logprobs) o.logprobs = logprobs.get();
        if (b.top_n > 0) {
            o.top_tokens = top_tokens.get();
            o.top_logprobs = top_logprobs.get();
        }
        return o;
    }
};

Out run_once(const Batch& b) {
    DeviceBatch d(b);
    return d.run();
}

// Chi-square statistic over bins with expectation >= 5, and its 1e-4 critical value
// (Wilson-Hilferty).
void chi_square(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t n,
                double* stat, double* limit) {
    double chi = 0;
    int dof = -1;
    for (size_t i = 0; i < p.size(); ++i) {
        const double e = p[i] * double(n);
        if (e < 5) continue;
        chi += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
        ++dof;
    }
    const double k = std::max(dof, 1);
    *stat = chi;
    *limit = std::pow(1 - 2 / (9 * k) + 3.72 * std::sqrt(2 / (9 * k)), 3) * k;
}

struct FreqCase {
    std::string name;
    std::vector<float> logits;
    SamplerParams sp;
    std::vector<int32_t> history;  // accepted tokens (penalties)
    int64_t draws = 1000000;
    int batch = 1024;
    int cluster = 0;
    double min_exact = 0.999;  // share of draws where the GPU token == the CPU token
};

// LLM8_SAMPLING_TEST_QUICK=1 (for compute-sanitizer runs): one launch per configuration and no
// statistics, only validity.
bool quick() {
    const char* q = std::getenv("LLM8_SAMPLING_TEST_QUICK");
    return q != nullptr && q[0] == '1';
}

void check_frequencies(FreqCase fc) {
    SCOPED_TRACE(fc.name);
    if (quick()) fc.draws = fc.batch = std::min(fc.batch, 64);
    const int V = int(fc.logits.size());
    Sampler cpu(fc.sp, V);
    for (int32_t t : fc.history) cpu.accept(t);
    const std::vector<double> prob = cpu.distribution(fc.logits.data());
    std::vector<int32_t> window = fc.history;
    if (fc.sp.penalty_last_n >= 0 && window.size() > size_t(fc.sp.penalty_last_n))
        window.erase(window.begin(), window.end() - fc.sp.penalty_last_n);

    Batch b;
    b.cluster = fc.cluster;
    b.logprobs = false;
    for (int r = 0; r < fc.batch; ++r) b.add(fc.logits, fc.sp, uint64_t(r), window);
    DeviceBatch d(b);
    const CpuDraw ref(prob);
    std::vector<int64_t> counts(size_t(V), 0);
    int64_t exact = 0, done = 0, filtered = 0, bad = 0;
    std::vector<llm8_sampling_row_params> params = b.params;
    for (int64_t launch = 0; done < fc.draws; ++launch) {
        for (int r = 0; r < fc.batch; ++r)
            params[size_t(r)].draw_index = uint64_t(launch * fc.batch + r);
        const Out o = d.run(&params);
        for (int r = 0; r < fc.batch; ++r) {
            const int32_t t = o.tokens[size_t(r)];
            if (t < 0 || t >= V || o.status[size_t(r)] != LLM8_SAMPLE_ROW_OK) {
                ++bad;
                continue;
            }
            ++counts[size_t(t)];
            filtered += prob[size_t(t)] <= 0;
            exact += t == ref.token(fc.sp.seed, params[size_t(r)].draw_index);
        }
        done += fc.batch;
        if (bad > 0) break;
    }
    ASSERT_EQ(bad, 0) << "rows without a valid token";
    EXPECT_EQ(filtered, 0) << "tokens outside the filtered set were drawn";
    if (quick()) return;
    double stat = 0, limit = 0;
    chi_square(counts, prob, done, &stat, &limit);
    EXPECT_LT(stat, limit) << "chi-square " << stat << " over the 1e-4 critical value " << limit;
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < V; ++i) {
        dot += double(counts[size_t(i)]) * prob[size_t(i)];
        na += double(counts[size_t(i)]) * double(counts[size_t(i)]);
        nb += prob[size_t(i)] * prob[size_t(i)];
    }
    // Sampling noise alone gives cos ~ 1 / sqrt(1 + N_eff / n), N_eff = 1 / sum p^2: over ~3000
    // equally likely tokens 10^6 draws cannot reach 0.999. Require 0.999 where noise allows it,
    // and otherwise no more than 5e-4 below what noise explains.
    const double cosine = dot / std::sqrt(na * nb);
    const double noise_cos = 1.0 / std::sqrt(1.0 + (1.0 / nb) / double(done));
    EXPECT_GT(cosine, std::min(0.999, noise_cos - 5e-4)) << "noise alone: " << noise_cos;
    EXPECT_GE(double(exact) / double(done), fc.min_exact)
        << exact << " of " << done << " draws equal the CPU Sampler's token";
    std::printf("[ %s ] %lld draws, chi2 %.1f (limit %.1f), same token as CPU %.6f\n",
                fc.name.c_str(), (long long)done, stat, limit, double(exact) / double(done));
}

#endif  // LLM8_HAVE_CUDA

}  // namespace

TEST(SamplingCuda, ApiRejectsBadArguments) {
    REQUIRE_GPU();
#ifdef LLM8_HAVE_CUDA
    llm8_sampling_args a{};
    a.batch = 1;
    a.vocab = 0;
    EXPECT_EQ(llm8_sample_cuda(&a, nullptr, 0, nullptr), LLM8_SAMPLING_EINVAL);
    EXPECT_EQ(llm8_sample_cuda(nullptr, nullptr, 0, nullptr), LLM8_SAMPLING_EINVAL);
    a.vocab = 10;
    a.ld = 10;
    EXPECT_EQ(llm8_sample_cuda(&a, nullptr, 0, nullptr), LLM8_SAMPLING_EINVAL);  // null buffers
    EXPECT_GT(llm8_sample_cuda_workspace_size(1, 128256), 0u);
    EXPECT_EQ(llm8_sample_cuda_workspace_size(0, 128256), 0u);
    EXPECT_EQ(llm8_sample_cuda_prepare(), LLM8_SAMPLING_OK);
    EXPECT_GE(llm8_sample_cuda_cluster_size(1, 128256), 8);
#endif
}

#ifdef LLM8_HAVE_CUDA
#define GPU_ONLY(...) __VA_ARGS__
#else
#define GPU_ONLY(...)
#endif

TEST(SamplingCuda, FrequenciesMatchCpuChain) {
    REQUIRE_GPU();
    GPU_ONLY({
        std::vector<FreqCase> cases;
        const std::vector<float> l4k = gaussian(4096, 11, 2.0f);
        auto add = [&](const std::string& name, SamplerParams sp, const std::vector<float>& l,
                       int cluster = 0) {
            FreqCase fc;
            fc.name = name;
            sp.seed = 1000 + cases.size();
            fc.sp = sp;
            fc.logits = l;
            fc.cluster = cluster;
            cases.push_back(fc);
            return &cases.back();
        };
        add("plain T=0.8", plain(0.8f), l4k);
        add("plain T=0.8, 4 blocks per row", plain(0.8f), l4k, 4);
        SamplerParams sp = plain(0.8f);
        sp.top_k = 50;
        add("top-k 50", sp, l4k, 3);
        sp = plain(0.8f);
        sp.top_p = 0.9f;
        add("top-p 0.9", sp, l4k);
        sp.top_k = 50;
        add("top-k 50 + top-p 0.9", sp, l4k, 16);
        sp = plain(0.8f);
        sp.min_p = 0.05f;
        add("min-p 0.05", sp, l4k, 2);
        sp = SamplerParams();  // llama.cpp defaults: k 40, p 0.95, min-p 0.05, T 0.8
        add("defaults k40 p0.95 minp0.05", sp, l4k);
        sp = plain(1.5f);
        sp.top_k = 3000;
        sp.top_p = 0.99f;
        add("top-k 3000 + top-p 0.99 (general path)", sp, l4k, 4);
        sp = plain(5.0f);
        sp.top_p = 0.9f;
        add("flat: T=5, top-p 0.9 (general path)", sp, l4k, 5);
        // ties: few distinct values, boundaries inside runs of equal logits
        std::vector<float> ties = gaussian(4096, 12, 2.0f);
        for (float& x : ties) x = std::round(x * 2.0f) / 2.0f;
        sp = plain(0.7f);
        sp.top_k = 100;
        add("ties: top-k 100", sp, ties, 4);
        sp = plain(0.7f);
        sp.top_p = 0.5f;
        add("ties: top-p 0.5", sp, ties, 4);
        // penalties (raw window with repeats) and logit bias, then filters
        sp = plain(0.9f);
        sp.top_k = 200;
        sp.top_p = 0.95f;
        sp.repeat_penalty = 1.3f;
        sp.frequency_penalty = 0.5f;
        sp.presence_penalty = 0.25f;
        sp.penalty_last_n = 64;
        sp.logit_bias = {{5, 2.0f}, {77, -kInf}, {1234, 1.5f}, {4095, 3.0f}};
        FreqCase* pc = add("penalties + bias + k200 p0.95", sp, l4k, 4);
        std::mt19937 rng(5);
        for (int i = 0; i < 100; ++i) pc->history.push_back(int32_t(rng() % 300));  // repeats
        // peaked: one dominant token, the top-50 boundary ~9 nats below it (beyond the first
        // histogram window of 8 nats: the second, full histogram finds it)
        std::vector<float> peaked = gaussian(4096, 14, 1.0f);
        peaked[123] = 12.0f;
        sp = plain(1.0f);
        sp.top_k = 50;
        sp.top_p = 0.999f;
        add("peaked: top-k 50 beyond 8 nats", sp, peaked, 2);
        // the benchmark's shape: V = 128256, top-k 50, top-p 0.9, T = 0.8
        const std::vector<float> l128 = gaussian(128256, 13, 2.0f);
        sp = plain(0.8f);
        sp.top_k = 50;
        sp.top_p = 0.9f;
        FreqCase* big = add("V=128256 k50 p0.9 (automatic cluster)", sp, l128);
        big->batch = 256;
        FreqCase* big16 = add("V=128256 k50 p0.9 (16 blocks per row)", sp, l128, 16);
        big16->batch = 256;
        for (const FreqCase& fc : cases) check_frequencies(fc);
    });
}

TEST(SamplingCuda, GreedyIsBitExactArgmax) {
    REQUIRE_GPU();
    GPU_ONLY({
        for (int V : {1, 3, 1000, 32000, 128256}) {
            for (int cluster : {0, 1, 7, 16}) {
                if (cluster > 1 && V < 64) continue;
                if (cluster > 0 && V / cluster > 40000) continue;  // slice beyond shared memory
                Batch b;
                b.cluster = cluster;
                std::vector<std::vector<float>> rows;
                std::vector<SamplerParams> sps;
                for (int r = 0; r < 37; ++r) {
                    std::vector<float> l = gaussian(V, uint32_t(100 + r), 3.0f);
                    for (float& x : l) x = std::round(x);                 // many ties
                    if (r % 5 == 1) l[size_t(V - 1)] = 1e30f;             // max at the last id
                    if (r % 5 == 2) std::fill(l.begin(), l.end(), 0.0f);  // all tied: id 0
                    if (r % 5 == 3)
                        for (int i = 0; i < V; i += 2) l[size_t(i)] = kNaN;
                    SamplerParams sp = plain(0.0f);
                    if (r % 7 == 4) {
                        sp.logit_bias = {{0, 100.0f}};
                        sp.repeat_penalty = 2.0f;
                    }
                    if (r % 3 == 0) sp.temperature = -1.0f;
                    std::vector<int32_t> window;
                    if (sp.repeat_penalty != 1.0f)
                        window = std::vector<int32_t>{0, 0, int32_t(V / 2)};
                    b.add(l, sp, 0, window);
                    rows.push_back(l);
                    sps.push_back(sp);
                }
                const Out o = run_once(b);
                for (int r = 0; r < b.rows(); ++r) {
                    Sampler cpu(sps[size_t(r)], V);
                    std::vector<int32_t> window;
                    if (sps[size_t(r)].repeat_penalty != 1.0f)
                        window = std::vector<int32_t>{0, 0, int32_t(V / 2)};
                    for (int32_t t : window) cpu.accept(t);
                    std::vector<double> pr;
                    try {
                        pr = cpu.distribution(rows[size_t(r)].data());
                    } catch (const llm8::Error&) {  // no finite logit: the GPU flags the row
                        EXPECT_EQ(o.status[size_t(r)], LLM8_SAMPLE_ROW_NO_CANDIDATES)
                            << "V " << V << " row " << r;
                        EXPECT_EQ(o.tokens[size_t(r)], -1);
                        continue;
                    }
                    const int32_t want =
                        int32_t(std::max_element(pr.begin(), pr.end()) - pr.begin());
                    EXPECT_EQ(o.tokens[size_t(r)], want)
                        << "V " << V << " cluster " << cluster << " row " << r;
                    EXPECT_EQ(o.status[size_t(r)], LLM8_SAMPLE_ROW_OK);
                }
            }
        }
    });
}

TEST(SamplingCuda, SameSeedSameTokensWhateverTheBatch) {
    REQUIRE_GPU();
    GPU_ONLY({
        const int V = 32000;
        std::vector<std::vector<float>> ls;
        std::vector<SamplerParams> sps;
        for (int i = 0; i < 6; ++i) {
            ls.push_back(gaussian(V, uint32_t(300 + i), 2.0f));
            SamplerParams sp = plain(0.6f + 0.2f * float(i));
            sp.top_k = i % 2 ? 40 : 0;
            sp.top_p = i % 3 ? 0.9f : 1.0f;
            sp.min_p = i == 4 ? 0.05f : 0.0f;
            sp.seed = 77 + uint64_t(i);
            sps.push_back(sp);
        }
        const std::vector<float> filler = gaussian(V, 999, 1.0f);
        for (uint64_t draw = 0; draw < (quick() ? 2u : 64u); ++draw) {
            std::vector<std::vector<int32_t>> seen;  // per configuration, per request
            for (int layout = 0; layout < 4; ++layout) {
                Batch b;
                b.cluster = layout == 0 ? 0 : (layout == 1 ? 1 : (layout == 2 ? 5 : 16));
                std::vector<int> pos(6);
                if (layout == 3) {  // reversed, with filler rows between
                    for (int i = 5; i >= 0; --i) {
                        b.add(filler, plain(1.0f), draw);
                        pos[size_t(i)] = b.rows();
                        b.add(ls[size_t(i)], sps[size_t(i)], draw);
                    }
                } else {
                    for (int i = 0; i < 6; ++i) {
                        pos[size_t(i)] = b.rows();
                        b.add(ls[size_t(i)], sps[size_t(i)], draw);
                    }
                }
                const Out o = run_once(b);
                std::vector<int32_t> t(6);
                for (int i = 0; i < 6; ++i) t[size_t(i)] = o.tokens[size_t(pos[size_t(i)])];
                seen.push_back(t);
            }
            for (size_t k = 1; k < seen.size(); ++k)
                EXPECT_EQ(seen[k], seen[0]) << "draw " << draw << " layout " << k;
        }
    });
}

TEST(SamplingCuda, EdgeCasesGiveValidTokensOrFlags) {
    REQUIRE_GPU();
    GPU_ONLY(for (int cluster
                  : {3, 0}) {
        // cluster 3: the cluster kernel alone; 0: the top-k kernel first, the rest handed back
        SCOPED_TRACE("cluster " + std::to_string(cluster));
        const int V = 5000;
        Batch b;
        b.ld = V + 3;  // rows not 16-byte aligned: the scalar load path
        b.cluster = cluster;
        std::vector<float> l = gaussian(V, 1, 2.0f);
        auto nan_row = std::vector<float>(size_t(V), kNaN);
        auto ninf_row = std::vector<float>(size_t(V), -kInf);
        SamplerParams sp = plain(0.8f);
        b.add(nan_row, sp, 0);   // 0: all NaN
        b.add(ninf_row, sp, 0);  // 1: all -inf
        SamplerParams ban = sp;
        for (int i = 0; i < V; ++i) ban.logit_bias[i] = -kInf;  // 2: every token banned
        b.add(l, ban, 0);
        SamplerParams badt = sp;
        badt.temperature = kNaN;  // 3: NaN temperature
        b.add(l, badt, 0);
        SamplerParams badp = sp;
        badp.top_p = -0.5f;  // 4: top_p < 0
        b.add(l, badp, 0);
        SamplerParams badb = sp;
        badb.logit_bias = {{V + 10, 1.0f}};  // 5: bias id out of range
        b.add(l, badb, 0);
        std::vector<float> pinf = l;
        pinf[10] = pinf[20] = pinf[4000] = kInf;
        SamplerParams k2 = sp;
        k2.top_k = 2;
        b.add(pinf, k2, 0);  // 6: +inf, top-k 2 -> 10 or 20
        SamplerParams kbig = sp;
        kbig.top_k = 10 * V;
        b.add(l, kbig, 0);  // 7: k > V
        SamplerParams p0 = sp;
        p0.top_p = 0.0f;
        b.add(l, p0, 0);  // 8: p = 0 -> argmax
        SamplerParams mp1 = sp;
        mp1.min_p = 1.0f;
        b.add(l, mp1, 0);  // 9: min-p 1 -> argmax
        SamplerParams tinf = sp;
        tinf.temperature = kInf;
        b.add(l, tinf, 0);  // 10: T = +inf
        std::vector<float> halfnan = l;
        for (int i = 0; i < V; i += 2) halfnan[size_t(i)] = kNaN;
        b.add(halfnan, sp, 0);  // 11: NaN ignored
        std::vector<float> one(size_t(V), -kInf);
        one[size_t(V - 1)] = 0.0f;
        b.add(one, sp, 0);  // 12: one candidate, last id
        SamplerParams k50 = sp;
        k50.top_k = 50;
        b.add(nan_row, k50, 0);  // 13: all NaN, top-k
        b.add(one, k50, 0);      // 14: one candidate, top-k
        b.add(halfnan, k50, 0);  // 15: NaN ignored, top-k
        std::vector<float> flat(size_t(V), 1.5f);
        b.add(flat, k50, 0);  // 16: all equal, top-k 50 -> one of ids 0..49
        const SamplerParams greedy = plain(0.0f);
        b.add(halfnan, greedy, 0);  // 17: greedy skips NaN
        std::vector<float> ninf_k = ninf_row;
        ninf_k[17] = -1e30f;
        ninf_k[4999] = kInf;
        b.add(ninf_k, k50, 0);  // 18: one +inf among -inf, top-k -> 4999
        const Out o = run_once(b);
        const int32_t am = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
        EXPECT_EQ(o.status[0], LLM8_SAMPLE_ROW_NO_CANDIDATES);
        EXPECT_EQ(o.tokens[0], -1);
        EXPECT_EQ(o.status[1], LLM8_SAMPLE_ROW_NO_CANDIDATES);
        EXPECT_EQ(o.status[2], LLM8_SAMPLE_ROW_NO_CANDIDATES);
        EXPECT_EQ(o.status[3], LLM8_SAMPLE_ROW_BAD_PARAMS);
        EXPECT_EQ(o.status[4], LLM8_SAMPLE_ROW_BAD_PARAMS);
        EXPECT_EQ(o.status[5], LLM8_SAMPLE_ROW_BAD_PARAMS);
        for (int r = 3; r <= 5; ++r) EXPECT_EQ(o.tokens[size_t(r)], -1);
        EXPECT_TRUE(o.tokens[6] == 10 || o.tokens[6] == 20) << o.tokens[6];
        EXPECT_TRUE(std::isnan(o.logprobs[0]));
        for (int r = 6; r <= 12; ++r) {
            EXPECT_EQ(o.status[size_t(r)], LLM8_SAMPLE_ROW_OK) << r;
            EXPECT_GE(o.tokens[size_t(r)], 0) << r;
            EXPECT_LT(o.tokens[size_t(r)], V) << r;
        }
        EXPECT_EQ(o.tokens[8], am);
        EXPECT_EQ(o.tokens[9], am);
        EXPECT_EQ(o.tokens[11] % 2, 1);
        EXPECT_EQ(o.tokens[12], V - 1);
        EXPECT_NEAR(o.logprobs[6], -std::log(3.0f), 1e-5);
        EXPECT_EQ(o.status[13], LLM8_SAMPLE_ROW_NO_CANDIDATES);
        EXPECT_EQ(o.tokens[13], -1);
        for (int r = 14; r <= 18; ++r) EXPECT_EQ(o.status[size_t(r)], LLM8_SAMPLE_ROW_OK) << r;
        EXPECT_EQ(o.tokens[14], V - 1);
        EXPECT_EQ(o.tokens[15] % 2, 1);
        EXPECT_GE(o.tokens[16], 0);
        EXPECT_LT(o.tokens[16], 50);
        int32_t hn_am = 1;
        for (int i = 1; i < V; i += 2)
            if (halfnan[size_t(i)] > halfnan[size_t(hn_am)]) hn_am = i;
        EXPECT_EQ(o.tokens[17], hn_am);
        EXPECT_EQ(o.tokens[18], 4999);
        EXPECT_TRUE(std::isfinite(o.logprobs[17]) && o.logprobs[17] <= 0.0f) << o.logprobs[17];

        // +inf ties are uniform; k > V is plain sampling; T = +inf is uniform: by counting
        FreqCase fc;
        fc.name = "+inf tokens, top-k 2";
        fc.logits = pinf;
        fc.sp = k2;
        fc.draws = 200000;
        fc.batch = 1000;
        fc.cluster = cluster;
        check_frequencies(fc);
        fc.name = "k > V";
        fc.logits = l;
        fc.sp = kbig;
        check_frequencies(fc);
        fc.name = "T = +inf";
        fc.sp = tinf;
        check_frequencies(fc);
        fc.name = "half NaN";
        fc.logits = halfnan;
        fc.sp = sp;
        check_frequencies(fc);
        // tiny vocabularies
        for (int v : {1, 2, 3, 5}) {
            FreqCase t;
            t.name = "V=" + std::to_string(v);
            t.logits = gaussian(v, 3, 1.0f);
            t.sp = plain(1.0f);
            t.sp.top_k = 2;
            t.draws = 100000;
            t.batch = 500;
            check_frequencies(t);
        }
    });
}

// The top-k kernel against the cluster kernel: for the same rows and draws, the same tokens
// and statuses (both select the exact top-k and share the finish's integer arithmetic), and the
// same logprobs up to float rounding; over vocabularies whose slices end mid-chunk, unaligned
// rows, forced splits, ties at the top, greedy rows, and rows it must hand back (top-p alone,
// k > 64, bias, penalties, +inf) mixed into the batch.
TEST(SamplingCuda, TopkKernelEqualsClusterKernel) {
    REQUIRE_GPU();
    GPU_ONLY({
        namespace cs = llm8::cuda_sampling;
        struct Shape {
            int V;
            int64_t ld;
        };
        for (const Shape sh : {Shape{1000, 1000}, Shape{50257, 50260}, Shape{128256, 128256},
                               Shape{151936, 151939}}) {
            if (quick() && sh.V > 60000) continue;  // sanitizer runs: the small shapes only
            Batch b;
            b.ld = sh.ld;
            std::vector<bool> eligible;
            for (int r = 0; r < 40; ++r) {
                std::vector<float> l =
                    gaussian(sh.V, uint32_t(900 + r), 1.0f + 0.25f * float(r % 7));
                if (r % 5 == 3)
                    for (float& x : l) x = std::round(x * 2.0f);  // many ties near the top
                if (r % 9 == 4) l[size_t(sh.V - 1)] = 30.0f;      // the max in the last slice
                SamplerParams sp = plain(r % 8 == 0 ? 0.0f : 0.3f + 0.2f * float(r % 6));
                const int ks[] = {1, 2, 17, 50, 64};
                sp.top_k = ks[r % 5];
                sp.top_p = r % 3 == 0 ? 1.0f : (r % 3 == 1 ? 0.9f : 0.5f);
                sp.min_p = r % 4 == 2 ? 0.05f : 0.0f;
                sp.seed = uint64_t(31 * r + 7);
                bool fast = true;
                if (r % 10 == 5) {  // handed back: top-p alone, k > 64, bias
                    const int kind = (r / 10) % 3;
                    if (kind == 0) sp.top_k = 0;
                    if (kind == 1) sp.top_k = 65;
                    if (kind == 2) sp.logit_bias = {{3, 2.0f}};
                    fast = sp.temperature <= 0.0f && kind != 2;  // greedy rows stay
                }
                if (r == 39) {  // a +inf logit: handed back
                    l[size_t(sh.V / 2)] = kInf;
                    fast = false;
                }
                b.add(l, sp, uint64_t(r));
                eligible.push_back(fast);
            }
            Batch ref = b;
            ref.workspace = false;
            DeviceBatch dref(ref);
            std::vector<llm8_sampling_row_params> params = b.params;
            for (int split : {0, 1, 3, 32}) {
                SCOPED_TRACE("V " + std::to_string(sh.V) + " split " + std::to_string(split));
                cs::set_topk_split(split);
                DeviceBatch d(b);
                for (uint64_t draw = 0; draw < (quick() ? 1u : 6u); ++draw) {
                    for (size_t r = 0; r < params.size(); ++r)
                        params[r].draw_index = b.params[r].draw_index + 1000 * draw;
                    const Out o = d.run(&params);
                    std::vector<int32_t> pend(params.size());
                    cudaMemcpy(pend.data(), cs::topk_pending(d.ws.p, b.rows()),
                               pend.size() * sizeof(int32_t), cudaMemcpyDeviceToHost);
                    const Out e = dref.run(&params);
                    for (size_t r = 0; r < params.size(); ++r) {
                        SCOPED_TRACE("row " + std::to_string(r) + " draw " + std::to_string(draw));
                        EXPECT_EQ(o.status[r], e.status[r]);
                        EXPECT_EQ(o.tokens[r], e.tokens[r]);
                        if (e.status[r] == LLM8_SAMPLE_ROW_OK) {
                            EXPECT_NEAR(o.logprobs[r], e.logprobs[r], 2e-4f);
                        }
                        if (r % 5 == 3) continue;  // tie-heavy rows may be handed back
                        EXPECT_EQ(pend[r], eligible[r] ? 0 : 1) << "which kernel sampled the row";
                    }
                }
            }
            cs::set_topk_split(0);
        }
    });
}

TEST(SamplingCuda, LogprobsAndTopN) {
    REQUIRE_GPU();
    GPU_ONLY({
        for (int V : {3000, 128256}) {
            for (int cluster : {0, 4, 16}) {
                Batch b;
                b.top_n = 8;
                b.cluster = cluster;
                std::vector<std::vector<float>> rows;
                std::vector<SamplerParams> sps;
                for (int r = 0; r < 12; ++r) {
                    std::vector<float> l = gaussian(V, uint32_t(500 + r), 2.5f);
                    if (r == 3)
                        for (float& x : l) x = std::round(x);  // ties in the top-n
                    SamplerParams sp = plain(r % 4 == 0 ? 0.0f : 0.9f);
                    sp.top_k = r % 3 == 1 ? 20 : 0;
                    sp.top_p = r % 3 == 2 ? 0.8f : 1.0f;
                    sp.logit_bias = {{7, 4.0f}};
                    sp.seed = uint64_t(r);
                    b.add(l, sp, 3);
                    rows.push_back(l);
                    sps.push_back(sp);
                }
                const Out o = run_once(b);
                for (int r = 0; r < b.rows(); ++r) {
                    SCOPED_TRACE("V " + std::to_string(V) + " cluster " + std::to_string(cluster) +
                                 " row " + std::to_string(r));
                    // log-softmax of the logits after bias, temperature 1
                    SamplerParams biased = plain(1.0f);
                    biased.logit_bias = sps[size_t(r)].logit_bias;
                    Sampler sb(biased, V);
                    const auto pr = sb.distribution(rows[size_t(r)].data());
                    const int32_t t = o.tokens[size_t(r)];
                    ASSERT_GE(t, 0);
                    ASSERT_LT(t, V);
                    EXPECT_NEAR(o.logprobs[size_t(r)], std::log(pr[size_t(t)]), 2e-4);
                    std::vector<int32_t> ids(static_cast<size_t>(V));
                    std::iota(ids.begin(), ids.end(), 0);
                    std::stable_sort(ids.begin(), ids.end(), [&](int32_t x, int32_t y) {
                        return pr[size_t(x)] > pr[size_t(y)];
                    });
                    for (int k = 0; k < b.top_n; ++k) {
                        ASSERT_EQ(o.top_tokens[size_t(r * b.top_n + k)], ids[size_t(k)])
                            << "rank " << k;
                        EXPECT_NEAR(o.top_logprobs[size_t(r * b.top_n + k)],
                                    std::log(pr[size_t(ids[size_t(k)])]), 2e-4);
                    }
                }
            }
        }
    });
}

TEST(SamplingCuda, GraphReplayAdvancesDrawIndex) {
    REQUIRE_GPU();
    GPU_ONLY({
        const int V = 128256;
        const std::vector<float> l = gaussian(V, 21, 2.0f);
        SamplerParams sp = plain(0.8f);
        sp.top_k = 50;
        sp.top_p = 0.9f;
        sp.seed = 4242;
        Batch b;
        b.logprobs = false;
        for (int r = 0; r < 4; ++r) b.add(l, sp, uint64_t(1000 * r));
        for (auto& p : b.params) p.flags = LLM8_SAMPLE_ADVANCE_DRAW;
        DeviceBatch d(b);
        ASSERT_EQ(llm8_sample_cuda_prepare(), LLM8_SAMPLING_OK);
        cudaStream_t st;
        CUDA_OK(cudaStreamCreate(&st));
        const llm8_sampling_args a = d.args();
        ASSERT_EQ(llm8_sample_cuda_cluster_size(a.batch, a.vocab) > 0, true);
        // warm the automatic choice outside capture, then capture one call
        ASSERT_EQ(llm8_sample_cuda(&a, d.ws.p, d.ws.n, st), LLM8_SAMPLING_OK);
        CUDA_OK(cudaStreamSynchronize(st));
        d.params.put(b.params);  // back to the starting draw indices
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CUDA_OK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        ASSERT_EQ(llm8_sample_cuda(&a, d.ws.p, d.ws.n, st), LLM8_SAMPLING_OK);
        CUDA_OK(cudaStreamEndCapture(st, &graph));
        CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
        Sampler cpu(sp, V);
        const CpuDraw ref(cpu.distribution(l.data()));
        int64_t same = 0, total = 0;
        for (int step = 0; step < 50; ++step) {
            CUDA_OK(cudaGraphLaunch(exec, st));
            CUDA_OK(cudaStreamSynchronize(st));
            const auto tok = d.tokens.get();
            for (int r = 0; r < 4; ++r) {
                same += tok[size_t(r)] == ref.token(sp.seed, uint64_t(1000 * r + step));
                ++total;
            }
        }
        const auto params = d.params.get();
        for (int r = 0; r < 4; ++r)
            EXPECT_EQ(params[size_t(r)].draw_index, uint64_t(1000 * r + 50));
        EXPECT_GE(same, total - 1) << "tokens of graph replays differ from the CPU chain's";
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        cudaStreamDestroy(st);
    });
}

TEST(SamplingCuda, PenaltyCountsEqualRawWindow) {
    REQUIRE_GPU();
    GPU_ONLY({
        const int V = 20000;
        const std::vector<float> l = gaussian(V, 8, 2.0f);
        SamplerParams sp = plain(0.8f);
        sp.top_k = 30;
        sp.repeat_penalty = 1.5f;
        sp.frequency_penalty = 0.5f;
        sp.presence_penalty = 0.25f;
        std::vector<int32_t> window;
        std::vector<int32_t> order(static_cast<size_t>(V));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(),
                  [&](int x, int y) { return l[size_t(x)] > l[size_t(y)]; });
        for (int i = 0; i < 40; ++i)
            window.push_back(order[size_t(i % 13)]);  // top tokens, repeated
        window.push_back(-5);                         // ignored
        window.push_back(V + 5);                      // ignored
        Batch raw, counted;
        std::map<int32_t, int32_t> hist;
        for (int32_t t : window) ++hist[t];
        for (int r = 0; r < 64; ++r) {
            sp.seed = uint64_t(r);
            raw.add(l, sp, uint64_t(r), window);
            std::vector<int32_t> distinct;
            for (const auto& kv : hist) distinct.push_back(kv.first);
            counted.add(l, sp, uint64_t(r), distinct);
        }
        counted.pen_counts.clear();
        for (int r = 0; r < 64; ++r)
            for (const auto& kv : hist) counted.pen_counts.push_back(kv.second);
        const Out a = run_once(raw), c = run_once(counted);
        EXPECT_EQ(a.tokens, c.tokens);
        Sampler cpu(sp, V);
        for (int32_t t : window) cpu.accept(t);
        const CpuDraw ref(cpu.distribution(l.data()));
        for (int r = 0; r < 64; ++r)
            EXPECT_EQ(a.tokens[size_t(r)], ref.token(uint64_t(r), uint64_t(r)));
    });
}
