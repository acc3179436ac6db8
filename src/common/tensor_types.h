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

// YaRN context extension (arXiv 2309.00071) as llama.cpp applies it: per rotated pair i, the
// angle blends the interpolated angle (pos * freq_scale * f_i) and the original one (pos * f_i)
// by ramp(i) * ext_factor, ramp(i) = 1 - clamp((i - corr_low) / (corr_high - corr_low), 0, 1)
// (pairs below corr_low keep the original angle, those above corr_high are interpolated); the
// rotated dims are multiplied by mscale. ext_factor 0: plain linear scaling.
struct RopeYarn {
    float ext_factor = 0.0f;
    float corr_low = 0.0f, corr_high = 0.0f;  // in pairs, from the original context length
    float mscale = 1.0f;
};

// How a mixture-of-experts router turns its logits into expert probabilities (llama.cpp's
// `expert_gating_func`: 1 softmax, 2 sigmoid).
enum class ExpertGating { softmax, sigmoid };

// A weight matrix viewed in place in the GGUF mapping: rows of ne0 elements of `type`.
struct WeightView {
    GgmlType type = GgmlType::F32;
    int64_t ne0 = 0;  // input features (contiguous)
    int64_t ne1 = 0;  // output features (rows)
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;
    std::string name;

    const uint8_t* row(int64_t r) const { return data + size_t(r) * row_bytes; }
    // Rows [r0, r0 + n) as a matrix of their own: one expert of a 3-D expert tensor, or one
    // head's slice of a per-head projection.
    WeightView rows(int64_t r0, int64_t n) const {
        WeightView w = *this;
        w.data = data + size_t(r0) * row_bytes;
        w.ne1 = n;
        return w;
    }
    bool empty() const { return data == nullptr; }
};

}  // namespace llm8
