// A model's weights on the device (cuda/device_model.cu uploads them): every matrix in its file
// type (Q4_0/Q8_0 repacked into the split layout), norms and biases in float32, all in one
// allocation.
#pragma once
#include <memory>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "cuda/ops.h"
#include "model/llama.h"

namespace llm8 {
namespace cuda {

struct DeviceLayer {
    DeviceMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
    const float *attn_norm = nullptr, *ffn_norm = nullptr;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *q_norm = nullptr, *k_norm = nullptr;
};

class DeviceModel {
public:
    HParams hp;
    int device = 0;
    DeviceArray<uint8_t> mem;
    size_t bytes = 0;
    DeviceMatrix tok_embd, output;
    const float* output_norm = nullptr;
    const float* rope_factors = nullptr;
    std::vector<DeviceLayer> layers;
};

}  // namespace cuda
}  // namespace llm8
