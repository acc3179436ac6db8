// Helpers for CUDA tests: skip with a message when llm8 has no CUDA or no GPU is present, and
// device buffers for host vectors.
#pragma once
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "test_util.h"

#ifdef LLM8_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define LLM8_REQUIRE_GPU()                                                          \
    do {                                                                            \
        std::string why_;                                                           \
        if (!llm8::cuda::available(&why_)) GTEST_SKIP() << "no CUDA GPU: " << why_; \
    } while (0)

#ifdef LLM8_HAVE_CUDA
namespace llm8_test {

template <typename T>
class Dev {
public:
    explicit Dev(size_t n) : n_(n) {
        if (cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)) !=
            cudaSuccess)
            throw std::bad_alloc();
        poison();
    }
    explicit Dev(const std::vector<T>& v) : Dev(v.size()) { upload(v); }
    ~Dev() { cudaFree(p_); }
    size_t size() const { return n_; }
    Dev(const Dev&) = delete;
    Dev& operator=(const Dev&) = delete;
    void upload(const std::vector<T>& v) {
        EXPECT_EQ(cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice),
                  cudaSuccess);
    }
    std::vector<T> download() const {
        std::vector<T> v(n_);
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
        return v;
    }
    void poison() { cudaMemset(p_, 0xff, n_ * sizeof(T)); }  // NaN for floats, -1 for ints
    T* get() const { return p_; }

private:
    T* p_ = nullptr;
    size_t n_;
};

}  // namespace llm8_test
#endif
