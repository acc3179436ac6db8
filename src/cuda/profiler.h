// LLM8_PROFILE=1 (cuda/tuning.h): times every op of the forward pass with CUDA events (graphs
// off) and prints a table per op kind at exit. For finding where a step's time goes; costs a
// synchronization per step.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cuda/tuning.h"

namespace llm8 {
namespace cuda {

class Profiler {
public:
    bool on() const { return on_; }
    void set_stream(cudaStream_t s) { stream_ = s; }
    ~Profiler() {
        if (!on_ || totals_.empty()) return;
        double all = 0;
        for (auto& t : totals_) all += t.second.first;
        std::fprintf(stderr, "\nllm8 profile (%ld forward calls, %.3f ms per call)\n", steps_,
                     all / std::max(1L, steps_));
        for (auto& t : totals_)
            std::fprintf(stderr, "  %-12s %9.3f ms/call %6.1f%%  (%ld launches)\n", t.first.c_str(),
                         t.second.first / std::max(1L, steps_), 100.0 * t.second.first / all,
                         t.second.second);
    }
    // The op that ends here.
    void mark(const char* what) {
        if (!on_) return;
        cudaEvent_t e;
        cudaEventCreate(&e);
        cudaEventRecord(e, stream_);
        marks_.emplace_back(what, e);
    }
    // After a step: adds its intervals to the totals.
    void collect() {
        if (!on_ || marks_.empty()) return;
        cudaEventSynchronize(marks_.back().second);
        for (size_t i = 1; i < marks_.size(); ++i) {
            float ms = 0;
            cudaEventElapsedTime(&ms, marks_[i - 1].second, marks_[i].second);
            auto it = std::find_if(totals_.begin(), totals_.end(),
                                   [&](auto& t) { return t.first == marks_[i].first; });
            if (it == totals_.end())
                totals_.push_back({marks_[i].first, {ms, 1}});
            else
                it->second.first += ms, it->second.second += 1;
        }
        for (auto& m : marks_) cudaEventDestroy(m.second);
        marks_.clear();
        ++steps_;
    }

private:
    bool on_ = tuning().profile;
    cudaStream_t stream_ = nullptr;
    std::vector<std::pair<std::string, cudaEvent_t>> marks_;
    std::vector<std::pair<std::string, std::pair<double, long>>> totals_;
    long steps_ = 0;
};

}  // namespace cuda
}  // namespace llm8
