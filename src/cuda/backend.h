// The CUDA backend as the rest of llm8 sees it: plain C++ (compiled by g++ too), no CUDA types.
// When llm8 is built without CUDA, cuda_backend_stub.cpp provides these with available() false.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/attn_params.h"
#include "common/forward_batch.h"
#include "llm8/engine.h"
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

// A context on the device: the paged KV cache, F16 or INT8 (n_blocks blocks of block_size
// tokens per layer), scratch for n_batch tokens, the per-layer plan, a cuBLAS handle, a stream
// and the decode graphs (one per batch size of all-decode steps).
class DeviceContext;
// k_mean: the INT8 cache's K smoothing means ([n_layer][kv_dim], Model::kv_k_mean), or null for
// the F16 cache.
std::unique_ptr<DeviceContext, void (*)(DeviceContext*)> create_context(
    std::shared_ptr<DeviceModel> dm, int n_blocks, int block_size, int n_batch, int n_seq_max,
    const float* k_mean = nullptr);
size_t kv_bytes_per_block(const DeviceModel& dm, int block_size, bool int8 = false);
const std::vector<LayerPlan>& plan(const DeviceContext& c);

// The attention mode of every layer (AttnMode values; f16 until set): prefill steps run the
// 8-bit kernels of sage / int8 layers, decode reads the cache as stored. Head dim 64 or 128.
void set_attn_modes(DeviceContext& c, const std::vector<int>& modes);
// The guard's fallback: layer il runs `mode` from now on; the plan says `note`.
void set_layer_attn(DeviceContext& c, int il, AttnMode mode, const std::string& note);
// Called after every layer's attention of a step that is not a graph (not decode-only), with
// the device parameters (output included, mode as run); may call the functions below.
void set_attn_hook(DeviceContext& c, std::function<void(int, const AttnParams&)> hook);
// Runs `mode` on p's inputs into the context's check buffer and returns the error sums of
// AttnErrorAcc (got . ref, got . got, ref . ref, sum |got - ref|, sum |ref|) with ref the check
// buffer (check_is_ref) or p.out. Synchronizes.
void attention_compare(DeviceContext& c, const AttnParams& p, AttnMode mode, bool check_is_ref,
                       double sums[5]);
// p.out = the check buffer (the FP16 output of the last attention_compare).
void attention_adopt_check(DeviceContext& c, const AttnParams& p);
// Sequence seq's keys of the layer p points at, from the F16 cache: [kv_len][kv_dim] floats.
std::vector<float> layer_keys(DeviceContext& c, const AttnParams& p, int seq);

// Copies whole blocks (every layer, K and V): the copy on write of shared blocks.
void copy_blocks(DeviceContext& c, const std::vector<std::pair<int32_t, int32_t>>& copies);

// Runs one step (as llama_forward_cpu). With logits non-null the rows b.out_rows come back to
// the host ([out_rows, n_vocab]); otherwise they stay on the device for sample().
void forward(DeviceContext& c, const ForwardBatch& b, float* logits);

// One row of GPU sampling: the row parameters (llm8::gpu_row_params) and, as host arrays, the
// penalty window and logit bias, which are copied to the device with the call.
struct SampleRequest {
    llm8_sampling_row_params params{};
    std::vector<int32_t> penalty_window;
    std::vector<int32_t> bias_tokens;
    std::vector<float> bias_values;
};

// Samples logits rows row0 .. row0 + n - 1 (indices into the last forward's out_rows, left on
// the device), row row0 + i with reqs[i], in one launch: only the token ids come back.
// tokens[i]: the token, or -1 with status[i] set (1: every logit NaN or -inf, 2: bad
// parameters); status[i] 0 otherwise.
void sample(DeviceContext& c, int row0, const std::vector<SampleRequest>& reqs, int32_t* tokens,
            int32_t* status);

}  // namespace cuda
}  // namespace llm8
