// Error checking and small helpers shared by the CUDA sources. Every CUDA call goes through
// LLM8_CUDA_CHECK, and every launch is followed by LLM8_CUDA_CHECK_LAUNCH(): failures become
// llm8::Error(runtime) naming the call, file and line, never an abort.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "common/error.h"
#include "cuda/tuning.h"

namespace llm8 {
namespace cuda {

[[noreturn]] inline void cuda_fail(const char* what, const char* msg, const char* file, int line) {
    fail(ErrorKind::runtime, std::string("CUDA error in ") + what + " at " + file + ":" +
                                 std::to_string(line) + ": " + msg);
}

#define LLM8_CUDA_CHECK(call)                                                             \
    do {                                                                                  \
        cudaError_t err_ = (call);                                                        \
        if (err_ != cudaSuccess)                                                          \
            ::llm8::cuda::cuda_fail(#call, cudaGetErrorString(err_), __FILE__, __LINE__); \
    } while (0)

#define LLM8_CUDA_CHECK_LAUNCH() LLM8_CUDA_CHECK(cudaGetLastError())

#define LLM8_CUBLAS_CHECK(call)                                                             \
    do {                                                                                    \
        cublasStatus_t st_ = (call);                                                        \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                   \
            ::llm8::cuda::cuda_fail(#call, cublasGetStatusString(st_), __FILE__, __LINE__); \
    } while (0)

inline int ceil_div(int64_t a, int64_t b) {
    return int((a + b - 1) / b);
}

// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl() may start while
// the kernel before it in the stream is still running. It may read only data that no kernel
// of the step writes (weights) before pdl_wait(), which returns once every earlier kernel has
// finished and its writes are visible, and it must not write global memory before it.
// pdl_trigger() lets the next kernel's blocks be scheduled early. Both are no-ops in a kernel
// launched the ordinary way. LLM8_PDL=0 launches without the attribute (A/B switch).
__device__ __forceinline__ void pdl_wait() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}
__device__ __forceinline__ void pdl_trigger() {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

inline bool pdl_enabled() {
    return tuning().pdl;
}

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                Args&&... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    LLM8_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// Device memory owned RAII-style.
template <typename T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(size_t n) { resize(n); }
    ~DeviceArray() { release(); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) {
        o.p_ = nullptr;
        o.n_ = 0;
    }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        release();
        p_ = o.p_;
        n_ = o.n_;
        o.p_ = nullptr;
        o.n_ = 0;
        return *this;
    }
    void resize(size_t n) {
        if (n <= n_) return;
        release();
        if (cudaMalloc(&p_, n * sizeof(T)) != cudaSuccess) {
            p_ = nullptr;
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            fail(ErrorKind::runtime, "out of GPU memory: cannot allocate " +
                                         std::to_string(n * sizeof(T) >> 20) + " MiB (" +
                                         std::to_string(free_b >> 20) + " MiB free of " +
                                         std::to_string(total_b >> 20) + " MiB)");
        }
        n_ = n;
    }
    void release() {
        if (p_) cudaFree(p_);
        p_ = nullptr;
        n_ = 0;
    }
    T* get() const { return p_; }
    size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    size_t n_ = 0;
};

}  // namespace cuda
}  // namespace llm8
