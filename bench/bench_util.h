// Small helpers shared by the benchmark programs of bench/.
#pragma once
#include <algorithm>
#include <vector>

namespace llm8_bench {

// The median of a set of timings (the upper one of the two middle values for an even count).
inline float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace llm8_bench
