// Launcher of the cluster sampling kernel (sample_cluster_sm90.cu). Internal to llm8: callers
// use the C API in llm8/sampling_cuda.h.
#pragma once
#include <cuda_runtime.h>

#include "llm8/sampling_cuda.h"

namespace llm8::cuda_sampling {

struct ClusterConfig {
    int cluster = 1;      // thread blocks per row
    int slice = 0;        // vocabulary entries per block (multiple of 32)
    size_t dyn_smem = 0;  // dynamic shared memory per block
};

// Shared-memory layout for a given cluster size (no CUDA calls).
ClusterConfig cluster_config(int vocab, int cluster);

// Static shared memory of the kernel (bytes).
size_t static_smem_bytes();

// Sets the kernel attributes (dynamic shared memory limit, cluster sizes above 8).
cudaError_t prepare_sample_cluster_sm90();

// Rows [0, a.batch) of `a`; a.batch <= 65535. No host synchronization. With `pending`
// ([a.batch], written by sample_topk_sm90 just before on the stream) only the rows whose entry
// is non-zero are sampled, and with `pdl` the launch is a programmatic dependent of that kernel.
cudaError_t launch_sample_cluster_sm90(const llm8_sampling_args& a, const ClusterConfig& cfg,
                                       cudaStream_t stream, const int32_t* pending = nullptr,
                                       bool pdl = false);

// Clusters of this configuration that fit on the device at once (0: cannot launch).
int max_active_clusters(const ClusterConfig& cfg);

// Benchmarks only: stop every row after a stage (see RowSampler::stop_at); 0 runs everything.
void set_stage_limit(int stop_at);
// The fused max + histogram exchange for top-k rows (default on; the environment variable
// LLM8_SAMPLING_FUSED=0 turns it off at the first call).
void set_fused(bool on);
// Finish in block 0: 0 by batch size (default: all threads rank by counting at batch <= 4, one
// warp sorting in registers above), 1 always the warp, 2 always the ranking
// (LLM8_SAMPLING_FINISH=warp|rank).
void set_finish_mode(int mode);

}  // namespace llm8::cuda_sampling
