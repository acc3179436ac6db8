// The C API of the GPU sampler (llm8/sampling_cuda.h): argument checks, the choice of the
// cluster size, and the launch. No allocation and no host synchronization on the sampling path,
// so a call can be captured in a CUDA graph once llm8_sample_cuda_prepare() has run.
#include <cuda_runtime.h>

#include "cuda/tuning.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "cuda/sampling/sample_cluster_sm90.cuh"
#include "cuda/sampling/sample_topk_sm90.cuh"
#include "llm8/sampling_cuda.h"

namespace {

using llm8::cuda_sampling::ClusterConfig;

constexpr int kMaxDevices = 64;
constexpr int kMaxCluster = 16;  // sm_90 with the non-portable cluster size attribute

struct DeviceInfo {
    bool prepared = false;
    int sms = 0;
    int smem_per_sm = 0;
    int smem_optin = 0;
    int cluster_ok[kMaxCluster + 1] = {};  // 0 unknown, 1 launchable, -1 not (for the last vocab)
    int cluster_vocab[kMaxCluster + 1] = {};
};

std::mutex g_mutex;
DeviceInfo g_dev[kMaxDevices];
thread_local std::string g_last_error;
bool g_topk_off = false;
int g_fallback_c = 0;
bool g_pdl = true;
bool g_alone = false;  // one cluster-kernel block per SM (LLM8_SAMPLING_ALONE)

int fail_cuda(cudaError_t e, const char* what) {
    g_last_error = std::string(what) + ": " + cudaGetErrorString(e);
    return LLM8_SAMPLING_ECUDA;
}

int prepare_locked(int dev) {
    DeviceInfo& d = g_dev[dev];
    if (d.prepared) return LLM8_SAMPLING_OK;
    int major = 0;
    cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e != cudaSuccess) return fail_cuda(e, "llm8_sample_cuda: device query");
    if (major != 9) {
        g_last_error =
            "llm8_sample_cuda: the sampling kernels are built for sm_90a (H100/H200); "
            "this device has compute capability " +
            std::to_string(major) + ".x";
        return LLM8_SAMPLING_ECUDA;
    }
    if ((e = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&d.smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                    dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) !=
            cudaSuccess)
        return fail_cuda(e, "llm8_sample_cuda: device query");
    e = llm8::cuda_sampling::prepare_sample_cluster_sm90();
    if (e != cudaSuccess) return fail_cuda(e, "llm8_sample_cuda: kernel attributes");
    // A/B switches (cuda/tuning.h): the fused top-k barrier, the top-k kernel, its blocks per
    // row, PDL behind it, the fallback's cluster size, the finish mode.
    const llm8::cuda::Tuning& t = llm8::cuda::tuning();
    if (!t.sampling_fused) llm8::cuda_sampling::set_fused(false);
    if (!t.sampling_topk) g_topk_off = true;
    if (t.sampling_split > 0) llm8::cuda_sampling::set_topk_split(t.sampling_split);
    if (!t.sampling_pdl) g_pdl = false;
    if (t.sampling_alone) g_alone = true;
    if (t.sampling_fallback_c > 0) g_fallback_c = t.sampling_fallback_c;
    if (t.sampling_finish > 0) llm8::cuda_sampling::set_finish_mode(t.sampling_finish);
    d.prepared = true;
    return LLM8_SAMPLING_OK;
}

int current_device(int* dev) {
    cudaError_t e = cudaGetDevice(dev);
    if (e != cudaSuccess) return fail_cuda(e, "llm8_sample_cuda: cudaGetDevice");
    if (*dev < 0 || *dev >= kMaxDevices) {
        g_last_error = "llm8_sample_cuda: device index out of range";
        return LLM8_SAMPLING_ECUDA;
    }
    return LLM8_SAMPLING_OK;
}

bool fits(const DeviceInfo& d, const ClusterConfig& c, int blocks_per_sm) {
    const size_t per_block =
        llm8::cuda_sampling::static_smem_bytes() + c.dyn_smem + 1024;  // +reserved
    return c.dyn_smem + llm8::cuda_sampling::static_smem_bytes() <= size_t(d.smem_optin) &&
           per_block * size_t(blocks_per_sm) <= size_t(d.smem_per_sm);
}

// Throughput: the smallest cluster whose blocks fit three to an SM (two if three never fit).
// Small batches: more blocks per row so that about two blocks per SM are busy, at least ~2K
// entries per block.
int choose_cluster(const DeviceInfo& d, int batch, int vocab) {
    int c_tp = 0;
    for (int want : {3, 2, 1}) {
        for (int c = 1; c <= kMaxCluster && c_tp == 0; ++c)
            if (fits(d, llm8::cuda_sampling::cluster_config(vocab, c), want)) c_tp = c;
        if (c_tp) break;
    }
    if (c_tp == 0) return 0;
    const int b = std::max(batch, 1);
    if (b * c_tp >= 2 * d.sms) return c_tp;
    int c = (2 * d.sms + b - 1) / b;
    c = std::min(c, std::max(c_tp, (vocab + 2047) / 2048));
    return std::max(c_tp, std::min(c, kMaxCluster));
}

// Checks (once per device, cluster size and vocabulary) that a cluster can be resident.
bool launchable(DeviceInfo& d, int c, int vocab) {
    if (d.cluster_vocab[c] != vocab || d.cluster_ok[c] == 0) {
        const int n =
            llm8::cuda_sampling::max_active_clusters(llm8::cuda_sampling::cluster_config(vocab, c));
        d.cluster_ok[c] = n > 0 ? 1 : -1;
        d.cluster_vocab[c] = vocab;
    }
    return d.cluster_ok[c] > 0;
}

}  // namespace

extern "C" int llm8_sample_cuda_prepare(void) {
    int dev = 0;
    if (int rc = current_device(&dev)) return rc;
    std::lock_guard<std::mutex> lock(g_mutex);
    return prepare_locked(dev);
}

extern "C" size_t llm8_sample_cuda_workspace_size(int32_t batch, int32_t vocab) {
    (void)vocab;
    if (batch <= 0) return 0;
    // launches cover at most 65535 rows; each reuses the first part of the workspace
    return llm8::cuda_sampling::topk_workspace_bytes(std::min<int32_t>(batch, 65535));
}

extern "C" int llm8_sample_cuda_cluster_size(int32_t batch, int32_t vocab) {
    int dev = 0;
    if (current_device(&dev) != LLM8_SAMPLING_OK || vocab <= 0) return 0;
    std::lock_guard<std::mutex> lock(g_mutex);
    if (prepare_locked(dev) != LLM8_SAMPLING_OK) return 0;
    DeviceInfo& d = g_dev[dev];
    int c = choose_cluster(d, batch, vocab);
    while (c > 1 && !launchable(d, c, vocab)) --c;
    return c;
}

extern "C" int llm8_sample_cuda(const llm8_sampling_args* args, void* workspace,
                                size_t workspace_bytes, llm8_cuda_stream stream) {
    if (args == nullptr) {
        g_last_error = "llm8_sample_cuda: args is NULL";
        return LLM8_SAMPLING_EINVAL;
    }
    const llm8_sampling_args& a = *args;
    std::string bad;
    if (a.batch < 0)
        bad = "batch < 0";
    else if (a.vocab <= 0)
        bad = "vocab <= 0";
    else if (a.ld < a.vocab)
        bad = "ld < vocab";
    else if (a.batch > 0 && (a.logits == nullptr || a.params == nullptr || a.out_tokens == nullptr))
        bad = "logits, params and out_tokens are required";
    else if (a.top_n < 0 || a.top_n > LLM8_SAMPLING_MAX_TOP_N)
        bad = "top_n outside [0, 32]";
    else if (a.top_n > 0 && (a.out_top_tokens == nullptr || a.out_top_logprobs == nullptr))
        bad = "top_n > 0 needs out_top_tokens and out_top_logprobs";
    else if (a.cluster_size < 0 || a.cluster_size > kMaxCluster)
        bad = "cluster_size outside [0, 16]";
    else if (workspace != nullptr && a.batch > 0 &&
             workspace_bytes < llm8_sample_cuda_workspace_size(a.batch, a.vocab))
        bad = "workspace smaller than llm8_sample_cuda_workspace_size()";
    if (!bad.empty()) {
        g_last_error = "llm8_sample_cuda: " + bad;
        return LLM8_SAMPLING_EINVAL;
    }
    if (a.batch == 0) return LLM8_SAMPLING_OK;

    int dev = 0;
    if (int rc = current_device(&dev)) return rc;
    int cluster = a.cluster_size;
    int split = 0;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (int rc = prepare_locked(dev)) return rc;
        DeviceInfo& d = g_dev[dev];
        if (cluster == 0) {
            cluster = choose_cluster(d, a.batch, a.vocab);
            while (cluster > 1 && !launchable(d, cluster, a.vocab)) --cluster;
        }
        // The top-k kernel first (rows with a small top-k, greedy rows), then the cluster kernel
        // for the rows it leaves pending. A forced cluster size (tests, benchmarks) or top-n
        // logprobs: the cluster kernel alone.
        if (workspace != nullptr && a.cluster_size == 0 && a.top_n == 0 && !g_topk_off)
            split = llm8::cuda_sampling::topk_split(a.batch, a.vocab);
        if (split > 0 && g_fallback_c > 0) cluster = g_fallback_c;
        if (cluster <= 0) {
            g_last_error = "llm8_sample_cuda: vocabulary too large for shared memory";
            return LLM8_SAMPLING_EINVAL;
        }
    }
    ClusterConfig cfg = llm8::cuda_sampling::cluster_config(a.vocab, cluster);
    if (g_alone)  // LLM8_SAMPLING_ALONE (synccheck runs): all of a block's shared memory
        cfg.dyn_smem = std::max(cfg.dyn_smem, size_t(g_dev[dev].smem_optin) -
                                                  llm8::cuda_sampling::static_smem_bytes());
    if (cfg.dyn_smem + llm8::cuda_sampling::static_smem_bytes() > size_t(g_dev[dev].smem_optin)) {
        g_last_error = "llm8_sample_cuda: cluster_size " + std::to_string(cluster) +
                       " leaves too large a slice for shared memory";
        return LLM8_SAMPLING_EINVAL;
    }
    // The grid's y dimension holds the rows: chunks of 65535.
    for (int32_t r0 = 0; r0 < a.batch; r0 += 65535) {
        llm8_sampling_args c = a;
        const int32_t nb = std::min<int32_t>(65535, a.batch - r0);
        c.batch = nb;
        c.logits = a.logits + size_t(r0) * size_t(a.ld);
        c.params = a.params + r0;
        c.out_tokens = a.out_tokens + r0;
        if (a.out_status) c.out_status = a.out_status + r0;
        if (a.out_logprobs) c.out_logprobs = a.out_logprobs + r0;
        if (a.top_n > 0) {
            c.out_top_tokens = a.out_top_tokens + size_t(r0) * a.top_n;
            c.out_top_logprobs = a.out_top_logprobs + size_t(r0) * a.top_n;
        }
        const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
        const int32_t* pending = nullptr;
        if (split > 0) {
            cudaError_t e =
                llm8::cuda_sampling::launch_sample_topk_sm90(c, split, workspace, st, g_pdl);
            if (e != cudaSuccess) return fail_cuda(e, "llm8_sample_cuda: launch (top-k)");
            pending = llm8::cuda_sampling::topk_pending(workspace, nb);
        }
        if (pending != nullptr && llm8::cuda_sampling::topk_alone()) continue;  // benchmarks
        cudaError_t e = llm8::cuda_sampling::launch_sample_cluster_sm90(c, cfg, st, pending, g_pdl);
        if (e != cudaSuccess) return fail_cuda(e, "llm8_sample_cuda: launch");
    }
    return LLM8_SAMPLING_OK;
}

extern "C" const char* llm8_sample_cuda_error_string(int code) {
    switch (code) {
        case LLM8_SAMPLING_OK:
            return "ok";
        case LLM8_SAMPLING_EINVAL:
        case LLM8_SAMPLING_ECUDA:
            return g_last_error.empty()
                       ? (code == LLM8_SAMPLING_EINVAL ? "invalid argument" : "CUDA error")
                       : g_last_error.c_str();
        default:
            return "unknown llm8_sample_cuda return code";
    }
}
