// llama.cpp's --check-tensors: a pass over every tensor's data at load, so that a corrupt file
// is named as such instead of surfacing later as NaN logits.
#pragma once
#include <cstdint>
#include <functional>

#include "gguf/gguf.h"

namespace llm8 {

// Dequantizes every tensor of `f` row by row on the CPU (src/gguf/quants.h) and throws a
// `format` llm8::Error naming the first tensor (in file order) that holds a NaN or an infinite
// value, with its layer, row and column. progress(done_bytes, total_bytes) after each tensor.
void check_tensor_data(const GgufFile& f,
                       const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

}  // namespace llm8
