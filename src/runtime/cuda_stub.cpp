// The CUDA backend's entry points for builds without CUDA: available() says so, the rest is
// never reached (the engine checks available() first).
#ifndef LLM8_HAVE_CUDA
#include "common/error.h"
#include "cuda/backend.h"

namespace llm8 {
namespace cuda {

class DeviceModel {};
class DeviceContext {};

bool available(std::string* why) {
    if (why) *why = "llm8 was built without CUDA (no nvcc at configure time, or LLM8_CUDA=OFF)";
    return false;
}
std::string device_name(int) {
    return "none";
}
std::shared_ptr<DeviceModel> upload_model(const LlamaModel&, int) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
size_t device_model_bytes(const DeviceModel&) {
    return 0;
}
std::unique_ptr<DeviceContext, void (*)(DeviceContext*)> create_context(
    std::shared_ptr<DeviceModel>, int, int, int, int, const float*) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
size_t kv_bytes_per_block(const DeviceModel&, int, bool) {
    return 0;
}
const std::vector<LayerPlan>& plan(const DeviceContext&) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void set_attn_modes(DeviceContext&, const std::vector<int>&) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void set_layer_attn(DeviceContext&, int, AttnMode, const std::string&) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void set_attn_hook(DeviceContext&, std::function<void(int, const AttnParams&)>) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void attention_compare(DeviceContext&, const AttnParams&, AttnMode, bool, double*) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void attention_adopt_check(DeviceContext&, const AttnParams&) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
std::vector<float> layer_keys(DeviceContext&, const AttnParams&, int) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void copy_blocks(DeviceContext&, const std::vector<std::pair<int32_t, int32_t>>&) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void forward(DeviceContext&, const ForwardBatch&, float*) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}
void sample(DeviceContext&, int, const std::vector<SampleRequest>&, int32_t*, int32_t*) {
    fail(ErrorKind::unsupported, "llm8 was built without CUDA");
}

}  // namespace cuda
}  // namespace llm8
#endif
