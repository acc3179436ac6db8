// Does compute-sanitizer's synccheck report a correct kernel launched as thread-block clusters?
// The pattern of the cluster sampler's load() (src/cuda/sampling/sample_cluster_sm90.cu): each
// thread copies its share of a slice into shared memory (cp.async, then a tail loop whose trip
// count differs within a warp), pads it, then __syncthreads(); one cluster barrier at the end.
// Launched with cluster size 1 (plain) and 16 (non-portable), 256 threads, slices whose length
// is not a multiple of 256 float4s.
//   nvcc -O3 -arch=sm_90a scripts/synccheck-cluster-probe.cu -o /tmp/probe
//   compute-sanitizer --tool synccheck /tmp/probe 1; compute-sanitizer --tool synccheck /tmp/probe 16
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace cg = cooperative_groups;

__global__ void __launch_bounds__(256) probe(const float* src, int vocab, int slice, float* out) {
    extern __shared__ __align__(16) float s[];
    cg::cluster_group cl = cg::this_cluster();
    const int tid = int(threadIdx.x), rank = int(cl.block_rank());
    const int s0 = rank * slice, n = max(0, min(slice, vocab - s0));
    const float* row = src + size_t(blockIdx.y) * size_t(vocab) + s0;
    const int nv = n >> 2;
    for (int i = tid; i < nv; i += 256) {
        const unsigned sa = unsigned(__cvta_generic_to_shared(s + 4 * i));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(row + 4 * i)
                     : "memory");
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    for (int i = 4 * nv + tid; i < n; i += 256) s[i] = __ldcs(row + i);
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    for (int i = n + tid; i < ((n + 3) & ~3); i += 256) s[i] = -1e30f;
    __syncthreads();
    float m = -1e30f;
    for (int i = tid; i < n; i += 256) m = fmaxf(m, s[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if ((tid & 31) == 0) atomicMax(reinterpret_cast<int*>(out + blockIdx.y), __float_as_int(m));
    cl.sync();
}

int main(int argc, char** argv) {
    const int cluster = argc > 1 ? std::atoi(argv[1]) : 16, rows = 37, vocab = 32000;
    const int slice = ((vocab + cluster - 1) / cluster + 31) / 32 * 32;
    float *src, *out;
    cudaMalloc(&src, size_t(rows) * vocab * sizeof(float));
    cudaMalloc(&out, rows * sizeof(float));
    cudaMemset(src, 0, size_t(rows) * vocab * sizeof(float));
    cudaMemset(out, 0, rows * sizeof(float));
    const size_t smem = size_t(slice) * sizeof(float);
    cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    cudaFuncSetAttribute(probe, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
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
    for (int it = 0; it < 4; ++it) cudaLaunchKernelEx(&cfg, probe, src, vocab, slice, out);
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("cluster %d, slice %d: %s\n", cluster, slice, cudaGetErrorString(e));
    return e == cudaSuccess ? 0 : 1;
}
