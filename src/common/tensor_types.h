// Types that the operators (cpu/, cuda/) share with the model descriptions (model/): they live
// below both, so that no include runs up a layer.
#pragma once
#include <cstdint>
#include <string>

#include "gguf/gguf.h"

namespace llm8 {

// How RoPE pairs dimensions: `norm` rotates (2i, 2i+1) (llama.cpp's llama arch, whose
// converter permutes Q/K); `neox` rotates (i, i + n_rot/2) (qwen2/qwen3, as in HF).
enum class RopeLayout { norm, neox };

// A weight matrix viewed in place in the GGUF mapping: rows of ne0 elements of `type`.
struct WeightView {
    GgmlType type = GgmlType::F32;
    int64_t ne0 = 0;  // input features (contiguous)
    int64_t ne1 = 0;  // output features (rows)
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;
    std::string name;

    const uint8_t* row(int64_t r) const { return data + size_t(r) * row_bytes; }
    bool empty() const { return data == nullptr; }
};

}  // namespace llm8
