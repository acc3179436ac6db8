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
        std::fprintf(stderr, "\nllm8 profile (%ld forward calls)\n", steps_);
        for (auto& ph : phases_) {
            double all = 0;
            for (auto& t : totals_) all += t.phase == ph.first ? t.ms : 0.0;
            std::fprintf(stderr, "  %s: %ld steps, %.3f ms per step\n",
                         ph.first.empty() ? "all" : ph.first.c_str(), ph.second,
                         all / std::max(1L, ph.second));
            for (auto& t : totals_)
                if (t.phase == ph.first)
                    std::fprintf(stderr, "    %-12s %9.3f ms/step %6.1f%%  (%ld launches)\n",
                                 t.op.c_str(), t.ms / std::max(1L, ph.second),
                                 100.0 * t.ms / std::max(all, 1e-9), t.count);
        }
    }
    // The kind of step the marks until the next collect() belong to ("pp", "tg"): each kind
    // gets its own table.
    void phase(const char* p) {
        if (on_) phase_ = p;
    }
    // The op that ends here.
    void mark(const char* what) {
        if (!on_) return;
        cudaEvent_t e;
        cudaEventCreate(&e);
        cudaEventRecord(e, stream_);
        marks_.emplace_back(what, e);
    }
    // After a step: adds its intervals to the totals of its phase.
    void collect() {
        if (!on_ || marks_.empty()) return;
        cudaEventSynchronize(marks_.back().second);
        for (size_t i = 1; i < marks_.size(); ++i) {
            float ms = 0;
            cudaEventElapsedTime(&ms, marks_[i - 1].second, marks_[i].second);
            auto it = std::find_if(totals_.begin(), totals_.end(), [&](const Total& t) {
                return t.phase == phase_ && t.op == marks_[i].first;
            });
            if (it == totals_.end())
                totals_.push_back({phase_, marks_[i].first, ms, 1});
            else
                it->ms += ms, it->count += 1;
        }
        for (auto& m : marks_) cudaEventDestroy(m.second);
        marks_.clear();
        auto ph = std::find_if(phases_.begin(), phases_.end(),
                               [&](const auto& p) { return p.first == phase_; });
        if (ph == phases_.end())
            phases_.push_back({phase_, 1});
        else
            ++ph->second;
        ++steps_;
    }

private:
    bool on_ = tuning().profile;
    cudaStream_t stream_ = nullptr;
    struct Total {
        std::string phase, op;
        double ms;
        long count;
    };
    std::string phase_;
    std::vector<std::pair<std::string, cudaEvent_t>> marks_;
    std::vector<Total> totals_;
    std::vector<std::pair<std::string, long>> phases_;  // phase, steps
    long steps_ = 0;
};

}  // namespace cuda
}  // namespace llm8
