// compute-sanitizer's synccheck against a kernel with no branch: does it report a correct
// thread-block-cluster launch? Every thread of this kernel runs every loop the same number of
// times (the slice is a multiple of 256) and reaches every barrier; it has the cluster sampler's
// barrier sequence (src/cuda/sampling/sample_cluster_sm90.cu): a block barrier after the copy
// of its slice, a barrier reduction, then rounds of cluster barrier + distributed-shared-memory
// reads of every block's exchange + block barriers. 256 threads, clusters of 16, 37 rows.
//   nvcc -O3 -arch=sm_90a -lineinfo scripts/synccheck-cluster-probe.cu -o /tmp/probe
//   compute-sanitizer --tool synccheck /tmp/probe SMEM ROUNDS
// SMEM (dynamic shared memory per block) sets how many blocks share an SM. On an H200
// (compute-sanitizer 2025.3, 2026-12-03): with 2-3 blocks per SM (SMEM 8192 / 40000 / 61440)
// "Barrier error detected. Divergent thread(s) in warp" at the first __syncthreads, and the
// launch killed ("unspecified launch failure"), in a varying share of runs (this file at 61440
// and 3 rounds: 2 of 3); with one block per SM (SMEM 120000) 0 errors in 9 of 9 runs. The same
// holds for the sampler's cluster kernel, hence LLM8_SAMPLING_ALONE for synccheck runs
// (scripts/gpu-sanitize.sh; docs/hardening.md has every figure).
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace cg = cooperative_groups;

struct Exchange {
    float x[2];  // by cluster-barrier parity
    float red[8];
    float max;
};

__global__ void __launch_bounds__(256, 3)
    probe(const float* src, int slice, int rounds, float* out) {
    extern __shared__ __align__(16) float s[];
    __shared__ Exchange ex;
    cg::cluster_group cl = cg::this_cluster();
    const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
    const int rank = int(cl.block_rank()), C = int(cl.num_blocks());
    const float* row = src + (size_t(blockIdx.y) * C + rank) * size_t(slice);
    for (int i = tid; i < slice; i += 256) s[i] = __ldcs(row + i);
    __syncthreads();  // <- reported with co-resident blocks
    float m = -1e30f;
    for (int i = tid; i < slice; i += 256) m = fmaxf(m, s[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    const int any = __syncthreads_or(m > 1e30f ? 1 : 0);
    int xs = 0;
    if (tid == 0) ex.x[0] = m + float(any);
    for (int r = 0; r < rounds; ++r) {
        cl.sync();
        ++xs;
        if (warp == 0) {
            float v = lane < C ? cl.map_shared_rank(&ex.x[(xs - 1) & 1], lane)[0] : -1e30f;
            for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
            if (lane == 0) ex.max = v;
        }
        __syncthreads();
        float z = 0.0f;
        for (int i = tid; i < slice; i += 256) z += __expf(s[i] - ex.max);
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
        if (lane == 0) ex.red[warp] = z;
        __syncthreads();
        float t = 0.0f;
        for (int w = 0; w < 8; ++w) t += ex.red[w];
        __syncthreads();
        if (tid == 0) ex.x[xs & 1] = t;
    }
    cl.sync();  // no block leaves while another may read its exchange
    if (tid == 0 && rank == 0) out[blockIdx.y] = ex.x[xs & 1];
}

int main(int argc, char** argv) {
    const size_t smem = argc > 1 ? size_t(std::atol(argv[1])) : 61440;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const int cluster = 16, rows = 37, slice = 2048;
    float *src, *out;
    cudaMalloc(&src, size_t(rows) * cluster * slice * sizeof(float));
    cudaMalloc(&out, rows * sizeof(float));
    cudaMemset(src, 0, size_t(rows) * cluster * slice * sizeof(float));
    cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    cudaFuncSetAttribute(probe, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    cudaFuncSetAttribute(probe, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = dim3(unsigned(cluster), unsigned(rows), 1);
    cfg.blockDim = dim3(256, 1, 1);
    cfg.dynamicSmemBytes = smem;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(cluster);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int clusters = 0;
    cudaOccupancyMaxActiveClusters(&clusters, probe, &cfg);
    cudaError_t e = cudaLaunchKernelEx(&cfg, probe, src, slice, rounds, out);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    std::printf("smem %zu, %d rounds, %d clusters resident at once: %s\n", smem, rounds, clusters,
                cudaGetErrorString(e));
    return e == cudaSuccess ? 0 : 1;
}
