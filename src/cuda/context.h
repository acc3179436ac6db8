// A context on the device (cuda/context.cu): the paged KV cache (F16 or INT8), activations for n_batch
// tokens, the per-layer plan, the step's metadata on the device, the decode graphs and the
// GPU sampler's staging. The forward pass (cuda/forward.cu) runs one Step over it.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "cuda/device_model.h"
#include "cuda/ops.h"
#include "cuda/profiler.h"
#include "llm8/engine.h"

namespace llm8 {
namespace cuda {

// One layer of the plan as the forward reads it: the activation kind of each matrix group's
// one-token GEMV (none: gemv()), and whether one-token steps fold bias + RoPE + the K/V store
// into the Q/K/V GEMV's epilogue.
struct LayerPath {
    ActKind qkv = ActKind::none, wo = ActKind::none, gate_up = ActKind::none,
            down = ActKind::none;
    bool fuse_rope = false;
};

// One step on the device: n tokens of n_seqs sequences. The pointers are device memory (a
// captured graph replays with new values in the same buffers).
struct Step {
    int n = 0, n_seqs = 0, max_q = 0, max_kv = 0;
    int n_out = 0;      // rows whose logits are computed
    int out_first = -1;  // >= 0: those rows are [out_first, out_first + n_out) of the step
    const int32_t *tokens = nullptr, *pos = nullptr, *slots = nullptr, *q_start = nullptr,
                  *kv_len = nullptr, *tables = nullptr, *out_rows = nullptr;
    int table_stride = 0;
    int kv_tiles = 0;      // sum over sequences of ceil(kv_len / 64) (8-bit attention scratch)
    bool capture = false;  // recorded into a graph: no host work between the kernels
};

class DeviceContext {
public:
    // Steps of at most this many tokens take the decode GEMVs (16 tokens per weight pass).
    static constexpr int kDecodeTokens = 64;
    std::shared_ptr<DeviceModel> dm;
    int n_blocks = 0, block_size = 0, block_shift = 0, n_batch = 0, n_seq_max = 0;
    int64_t pool_rows = 0;  // n_blocks * block_size
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    KvType kv_type = KvType::f16;
    DeviceArray<uint16_t> kc, vc;  // F16 cache: [n_layer][pool_rows][kv_dim] halves
    // INT8 cache (-ctk int8): [n_layer][pool_rows][kv_dim] bytes, the scales
    // [n_layer][pool_rows][n_head_kv], and K's smoothing mean [n_layer][kv_dim].
    DeviceArray<int8_t> k8, v8;
    DeviceArray<float> ks, vs, k_mean;
    DeviceArray<uint16_t> mm_ws;
    DeviceArray<float> x, xn, q, k, v, att, o, gate, up, xg, logits, attn_ws;
    DeviceArray<int8_t> act_q;  // int8 activations of up to kDecodeTokens tokens
    DeviceArray<float> act_ds;  // their (scale, sum) pairs per 32
    // The step's integers (tokens, positions, slots, q_start, kv_len, out_rows, block tables),
    // uploaded in one copy from pinned memory.
    DeviceArray<int32_t> meta;
    int32_t* h_meta = nullptr;
    size_t meta_cap = 0;
    DeviceArray<int32_t> pairs;  // copy-on-write block pairs
    float* h_logits = nullptr;
    size_t h_logits_n = 0;
    int last_n_out = 0;
    uint8_t* h_sample = nullptr;  // pinned staging of the GPU sampler's parameters
    size_t h_sample_n = 0;
    DeviceArray<uint8_t> d_sample;
    DeviceArray<int32_t> sample_out;  // token, status
    DeviceArray<uint8_t> sample_ws;   // the sampler's workspace (zeroed once; it stays zeroed)
    std::map<int, cudaGraphExec_t> graphs;  // all-decode steps, by sequence count
    std::vector<LayerPath> paths;
    std::vector<LayerPlan> plan;
    // The attention mode of each layer (set_attn_modes; f16 until then), the 8-bit modes'
    // scratch (grown to the largest prefill step), the guard's second attention output and
    // error sums, and the hook called after every layer's attention outside graphs.
    std::vector<AttnMode> attn_modes;
    DeviceArray<uint8_t> ws8;
    DeviceArray<float> att_check;
    DeviceArray<double> err_sums;
    std::function<void(int, const AttnParams&)> attn_hook;
    Profiler prof;

    ~DeviceContext();
};

// The layer schedule (cuda/forward.cu): everything between the metadata upload and the logits
// download; the logits rows are left in c.logits.
void forward_step(DeviceContext& c, const Step& st);
// Grows c.ws8 to hold the 8-bit scratch of p's batch (waits for the stream when it must
// reallocate) and points p at it.
void ensure_ws8(DeviceContext& c, AttnParams& p);

}  // namespace cuda
}  // namespace llm8
