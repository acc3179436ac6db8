// Pre-tokenizers of byte-level BPE vocabularies: the regex splits llama.cpp applies (chosen by
// tokenizer.ggml.pre) before merges, run through PCRE2 (UTF + UCP, JIT).
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace llm8 {

class PreTokenizer {
public:
    // Throws llm8::Error(runtime) if a pattern fails to compile (a bug, not bad input).
    explicit PreTokenizer(std::vector<std::string> patterns);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Splits valid UTF-8 text into words. Each pattern refines the pieces of the previous one:
    // its matches and the unmatched gaps between them all become pieces, in order.
    std::vector<std::string> split(const std::string& text) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llm8
