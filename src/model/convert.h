// Conversions behind llm8-convert, in the library so that tests exercise them directly.
#pragma once
#include <string>

#include "gguf/gguf.h"

namespace llm8 {

// llama2.c checkpoint (`run.c` format: 7 int32 config words, then float32 weights) and its
// tokenizer.bin (max_token_length, then per token: float score, int32 len, bytes) -> GGUF v3
// with llama.cpp's tensor names, architecture "llama" and a SentencePiece ("llama") vocab.
// Q/K need no permutation: llama2.c's RoPE already rotates adjacent pairs (llama.cpp's layout).
GgufWriter convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                           const std::string& name);

// Any GGUF (v1, v2, v3) -> a v3 writer holding the same metadata and tensors. When out_type is
// given, 2-D weight matrices (not norms, not biases) are converted to it; the embedding and
// output follow too. general.file_type is updated.
GgufWriter convert_gguf(const GgufFile& in, const GgmlType* out_type);

}  // namespace llm8
