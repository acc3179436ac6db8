// Does compute-sanitizer's initcheck see cuBLAS's writes? One cublasGemmEx in the shape of
// llm8::cuda::matmul (y[n][M] = x[n][K] . W[M][K]^T, F16 in, F32 out) writes every element of y,
// then a plain kernel reads y. On an H200 with CUDA 13.0, initcheck reports every element of y
// as an uninitialized read (4,480 errors at n = 70): it does not see cuBLAS's writes, so llm8
// zeroes the buffers cuBLAS writes once per context (src/cuda/context.cu).
//   nvcc -O2 -arch=sm_90a scripts/initcheck-cublas-probe.cu -lcublas -o /tmp/probe
//   compute-sanitizer --tool initcheck /tmp/probe 70
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>

__global__ void read_all(const float* y, int n, float* sum) {
    float a = 0.0f;
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) a += y[i];
    atomicAdd(sum, a);
}

int main(int argc, char** argv) {
    const int M = 64, K = 64, N = argc > 1 ? std::atoi(argv[1]) : 70;
    __half *w = nullptr, *x = nullptr;
    float *y = nullptr, *sum = nullptr;
    cudaMalloc(&w, size_t(M) * K * sizeof(__half));
    cudaMalloc(&x, size_t(N) * K * sizeof(__half));
    cudaMalloc(&y, size_t(M) * N * sizeof(float));
    cudaMalloc(&sum, sizeof(float));
    cudaMemset(w, 0, size_t(M) * K * sizeof(__half));
    cudaMemset(x, 0, size_t(N) * K * sizeof(__half));
    cudaMemset(sum, 0, sizeof(float));
    cublasHandle_t h = nullptr;
    cublasCreate(&h);
    const float alpha = 1.0f, beta = 0.0f;
    const cublasStatus_t st =
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &alpha, w, CUDA_R_16F, K, x,
                     CUDA_R_16F, K, &beta, y, CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    read_all<<<1, 256>>>(y, M * N, sum);
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("cublasGemmEx status %d, kernel %s, n = %d\n", int(st), cudaGetErrorString(e), N);
    cublasDestroy(h);
    return st == CUBLAS_STATUS_SUCCESS && e == cudaSuccess ? 0 : 1;
}
