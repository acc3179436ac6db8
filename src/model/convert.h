// Conversions behind llm8-convert, in the library so that tests exercise them directly.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace llm8 {

// llama2.c checkpoint (`run.c` format: 7 int32 config words, then float32 weights) and its
// tokenizer.bin (max_token_length, then per token: float score, int32 len, bytes) -> GGUF v3
// with llama.cpp's tensor names, architecture "llama" and a SentencePiece ("llama") vocab.
// Q/K need no permutation: llama2.c's RoPE already rotates adjacent pairs (llama.cpp's layout).
GgufWriter convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                           const std::string& name);

struct ConvertOptions {
    // Converting a matrix that is already quantized (not f32/f16/bf16) to another type adds a
    // second rounding on top of the first: refused unless asked (llama-quantize's
    // --allow-requantize).
    bool allow_requantize = false;
    // Called after each tensor with the tensors done and the total.
    std::function<void(size_t done, size_t total)> progress = nullptr;
};

// Any GGUF (v1, v2, v3) -> a v3 writer holding the same metadata and tensors. When out_type is
// given, 2-D weight matrices (not norms, not biases) are converted to it; the embedding and
// output follow too. general.file_type is updated.
GgufWriter convert_gguf(const GgufFile& in, const GgmlType* out_type,
                        const ConvertOptions& opt = {});

// The tensors convert_gguf would convert to out_type although they are already quantized
// (empty when none would be requantized).
std::vector<std::string> requantized_tensors(const GgufFile& in, GgmlType out_type);

}  // namespace llm8
