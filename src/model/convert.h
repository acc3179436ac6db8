// Conversions behind llm8-convert, in the library so that tests exercise them directly.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/quant_mix.h"

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

// The type each tensor of `in` gets when converted to `target` (a plain type or a mix,
// model/quant_mix.h): 2-D weight matrices (not norms, not biases; the embedding and output
// too) whose rows fill the chosen type's blocks, after llama.cpp's fallback for rows that do
// not. Tensors that keep their type are listed too (to == from).
struct TensorPlan {
    std::string name;
    GgmlType from = GgmlType::F32;
    GgmlType to = GgmlType::F32;
    GgmlType wanted = GgmlType::F32;  // what the mix asked for, before the fallback
    bool fell_back = false;           // rows of ne0 elements do not fill `wanted`'s blocks
};
std::vector<TensorPlan> plan_conversion(const GgufFile& in, const QuantTarget& target);

// Any GGUF (v1, v2, v3) -> a v3 writer holding the same metadata and tensors, the tensors
// converted as plan_conversion says when a target is given. general.file_type is updated.
GgufWriter convert_gguf(const GgufFile& in, const QuantTarget* target,
                        const ConvertOptions& opt = {});
// Every matrix to one type (a plain target).
GgufWriter convert_gguf(const GgufFile& in, const GgmlType* out_type,
                        const ConvertOptions& opt = {});
// No conversion: the same tensors in a v3 file.
inline GgufWriter convert_gguf(const GgufFile& in, std::nullptr_t, const ConvertOptions& opt = {}) {
    return convert_gguf(in, static_cast<const QuantTarget*>(nullptr), opt);
}

// The tensors convert_gguf would convert although they are already quantized (empty when
// none would be requantized).
std::vector<std::string> requantized_tensors(const GgufFile& in, const QuantTarget& target);
std::vector<std::string> requantized_tensors(const GgufFile& in, GgmlType out_type);

}  // namespace llm8
