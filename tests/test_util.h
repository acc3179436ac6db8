// Helpers shared by the tests: where the data lives, and skipping when it is absent.
#pragma once
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace llm8_test {

inline std::string source_dir() { return LLM8_SOURCE_DIR; }

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

}  // namespace llm8_test

// Skips the current test with a message when a data file is missing.
#define LLM8_REQUIRE_FILE(path)                                                        \
    do {                                                                               \
        if (!llm8_test::file_exists(path)) GTEST_SKIP() << "test data not found: " << (path) \
                                                        << " (set LLM8_SHARED_DATA)";  \
    } while (0)
