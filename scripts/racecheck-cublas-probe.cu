// Does compute-sanitizer's racecheck report hazards inside cuBLAS's own kernels? One
// cublasGemmEx per shape in the form of llm8::cuda::matmul (y[n][M] = x[n][K] . W[M][K]^T, F16
// in, F32 out), nothing else on the device. Shapes are M,N,K triples on the command line
// (default: those of tiny-llama-hd128's calibration prompt, the step in which test_batch's
// INT8-cache cases met racecheck reports in cuBLAS's nvjet_sm90_hss_* kernels).
//   nvcc -O2 -arch=sm_90a scripts/racecheck-cublas-probe.cu -lcublas -o /tmp/rprobe
//   compute-sanitizer --tool racecheck --racecheck-report all /tmp/rprobe 512,300,512
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

__global__ void fill(__half* p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
         i += size_t(gridDim.x) * blockDim.x) {
        const unsigned h = (unsigned(i) * 2654435761u) ^ seed;
        p[i] = __float2half(float(int(h % 17u) - 8) / 8.0f);
    }
}

int main(int argc, char** argv) {
    std::vector<std::string> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(argv[i]);
    if (shapes.empty())
        shapes = {"512,300,512", "1536,300,512", "2816,300,512", "512,300,1408", "32000,300,512"};
    cublasHandle_t h = nullptr;
    cublasCreate(&h);
    int failed = 0;
    for (const std::string& s : shapes) {
        int M = 0, N = 0, K = 0;
        if (std::sscanf(s.c_str(), "%d,%d,%d", &M, &N, &K) != 3 || M <= 0 || N <= 0 || K <= 0) {
            std::fprintf(stderr, "bad shape '%s' (want M,N,K)\n", s.c_str());
            return 2;
        }
        __half *w = nullptr, *x = nullptr;
        float* y = nullptr;
        cudaMalloc(&w, size_t(M) * K * sizeof(__half));
        cudaMalloc(&x, size_t(N) * K * sizeof(__half));
        cudaMalloc(&y, size_t(M) * N * sizeof(float));
        fill<<<128, 256>>>(w, size_t(M) * K, 1u);
        fill<<<128, 256>>>(x, size_t(N) * K, 2u);
        const float alpha = 1.0f, beta = 0.0f;
        const cublasStatus_t st = cublasGemmEx(
            h, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &alpha, w, CUDA_R_16F, K, x, CUDA_R_16F, K,
            &beta, y, CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        const cudaError_t e = cudaDeviceSynchronize();
        std::printf("M=%d N=%d K=%d: cublasGemmEx status %d, %s\n", M, N, K, int(st),
                    cudaGetErrorString(e));
        failed += st != CUBLAS_STATUS_SUCCESS || e != cudaSuccess;
        cudaFree(w);
        cudaFree(x);
        cudaFree(y);
    }
    cublasDestroy(h);
    return failed ? 1 : 0;
}
