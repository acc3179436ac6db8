// Launcher of the top-k sampling kernel (sample_topk_sm90.cu): the fast path for rows with a
// small top-k (or greedy). Internal to llm8: callers use the C API in llm8/sampling_cuda.h.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "llm8/sampling_cuda.h"

namespace llm8::cuda_sampling {

// Rows with 1 <= top_k <= kTopkMaxK (top_k < vocab) or greedy rows, without bias or penalties,
// take the top-k kernel; the others (and the rare rows it hands back) the cluster kernel.
constexpr int kTopkMaxK = 64;
// Most thread blocks per row (the merge reads at most kTopkMaxSplit * kTopkMaxK candidates).
constexpr int kTopkMaxSplit = 32;

// Workspace bytes for `batch` rows: per row a counter, a pending flag, and per block its
// statistics and its local top-k. The counters must be zero before the first call (the kernel
// leaves them zero).
size_t topk_workspace_bytes(int batch);

// Thread blocks per row for this shape (measured on the H200; see the definition).
int topk_split(int batch, int vocab);

// Samples the eligible rows of `a` (a.batch <= 65535, a.top_n == 0) with `split` blocks per
// row; writes pending[row] = 1 for every other row and 0 for the rows it finished. `ws` is
// topk_workspace_bytes(a.batch) bytes; `pending` lives inside it (topk_pending).
// With `pdl` the launch is a programmatic dependent of the kernel before it on the stream (the
// kernel waits for that one's completion before its first read).
cudaError_t launch_sample_topk_sm90(const llm8_sampling_args& a, int split, void* ws,
                                    cudaStream_t stream, bool pdl);
const int32_t* topk_pending(const void* ws, int batch);

// Benchmarks and tests: force the number of blocks per row (0: automatic).
void set_topk_split(int split);
// Benchmarks only: stop every row of the top-k kernel after a stage (1: the block's own top-k,
// 2: after the exchange, 3: after the merge, before the draw; 0: everything) and, with
// `alone`, skip the cluster kernel (the rows it would take stay unsampled).
void set_topk_stage(int stop_at, bool alone);
bool topk_alone();

}  // namespace llm8::cuda_sampling
