// Helpers shared by the tests: where the data lives, and skipping when it is absent.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace llm8_test {

inline std::string source_dir() {
    return LLM8_SOURCE_DIR;
}

// ../shared/data beside the checkout, or $LLM8_SHARED_DATA.
inline std::string shared_data() {
    const char* env = std::getenv("LLM8_SHARED_DATA");
    return env && *env ? std::string(env) : std::string(LLM8_SHARED_DATA_DEFAULT);
}

inline bool file_exists(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return f.good();
}

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Fresh random inputs (never zeros: they hide unwritten outputs).
inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
}

// Normalized MSE: sum (got - want)^2 / sum want^2; infinite when got has a NaN or inf (so a
// poisoned, unwritten element fails any bound).
inline double nmse(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i])) return INFINITY;
        num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        den += double(want[i]) * want[i];
    }
    return num / std::max(den, 1e-30);
}

// Largest absolute difference over the largest |b| (logits rows); infinite on a NaN or inf.
inline double rel_err(const float* a, const float* b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num = std::max(num, std::fabs(double(a[i]) - b[i]));
        den = std::max(den, std::fabs(double(b[i])));
    }
    return num / std::max(den, 1e-12);
}

}  // namespace llm8_test

// Skips the current test with a message when a data file is missing.
#define LLM8_REQUIRE_FILE(path)                                                             \
    do {                                                                                    \
        if (!llm8_test::file_exists(path))                                                  \
            GTEST_SKIP() << "test data not found: " << (path) << " (set LLM8_SHARED_DATA)"; \
    } while (0)
