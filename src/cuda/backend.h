// The CUDA backend as the rest of llm8 sees it: plain C++ (compiled by g++ too), no CUDA types.
// When llm8 is built without CUDA, cuda_backend_stub.cpp provides these with available() false.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llm8/sampling.h"

namespace llm8 {

struct LlamaModel;

namespace cuda {

// True when llm8 was built with CUDA and a usable device is present; otherwise *why says which.
bool available(std::string* why = nullptr);
std::string device_name(int device = 0);

// A model's weights on the device: every matrix in its file type (quantized blocks are uploaded
// as they are), norms and biases in float32.
class DeviceModel;
std::shared_ptr<DeviceModel> upload_model(const LlamaModel& m, int device = 0);
size_t device_model_bytes(const DeviceModel& dm);

// A session on the device: FP16 KV cache, scratch, cuBLAS handle, a stream and the decode graph.
class DeviceSession;
std::unique_ptr<DeviceSession, void (*)(DeviceSession*)> create_session(
    std::shared_ptr<DeviceModel> dm, int n_ctx, int n_batch);

// Runs n tokens at positions pos0.. (as llama_forward_cpu) and copies the logits of the last
// n_out tokens to host `logits` ([n_out, n_vocab]).
void forward(DeviceSession& s, const int32_t* tokens, int64_t n, int64_t pos0, int64_t n_out,
             float* logits);

// One row of GPU sampling: the row parameters (llm8::gpu_row_params) and, as host arrays, the
// penalty window and logit bias, which are copied to the device with the call.
struct SampleRequest {
    llm8_sampling_row_params params{};
    std::vector<int32_t> penalty_window;
    std::vector<int32_t> bias_tokens;
    std::vector<float> bias_values;
};

// As forward() with n_out = 1, then samples the last token's logits on the device: only the
// token id comes back. Returns the token, or -1 with *status set (1: every logit NaN or -inf,
// 2: bad parameters).
int32_t forward_sample(DeviceSession& s, const int32_t* tokens, int64_t n, int64_t pos0,
                       const SampleRequest& req, int32_t* status);

}  // namespace cuda
}  // namespace llm8
