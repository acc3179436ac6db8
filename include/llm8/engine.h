// llm8 public API: load a GGUF model, open a session (KV cache), feed tokens, read logits.
//
//   auto model = llm8::Model::load({"model.gguf"});        // "" = the embedded stories260K
//   llm8::Session s(model, {/*n_ctx*/ 2048});
//   auto ids = model->tokenize("Once upon a time", true);
//   s.decode(ids);                                           // logits of the last token
//   llm8::Sampler smp(llm8::SamplerParams{}, model->n_vocab());
//   int32_t tok = smp.sample(s.logits());
//
// Errors (a bad file, a full context) throw llm8::Error (llm8/error.h) with a message that
// names the file, tensor or value at fault.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llm8/error.h"

namespace llm8 {

struct LlamaModel;
struct AttnParams;
class Vocab;
class Sampler;
namespace cuda {
class DeviceModel;
}

struct ModelParams {
    std::string path;  // empty: the stories260K model linked into the library
    // Layers on the GPU: -1 (default) all of them when a CUDA device is present, 0 none (CPU).
    // Any positive value puts the whole model on the GPU (partial offload is not supported);
    // asking for the GPU where there is none is an error.
    int n_gpu_layers = -1;
    // llama.cpp's --check-tensors: dequantize every tensor on the CPU at load and refuse the
    // model at the first NaN or infinite value, naming the tensor (costs one pass over the file).
    bool check_tensors = false;
    // Attention of every layer (--attn): "f16"; "sage" (SageAttention: K smoothed by its mean,
    // INT8 Q.K^T with one scale per 64 rows, FP16 P.V); "int8" (INT-FlashAttention: INT8 Q, K
    // per token, V per channel, P with the fixed scale 1/127, both products INT8); "auto" (the
    // accuracy guard: at load a calibration prompt runs through every layer in FP16 and each
    // 8-bit mode, and each layer takes the faster 8-bit mode that passes the thresholds below
    // (GPU: sage, then int8; CPU: int8, then sage), else f16). Empty (the default): auto on the
    // GPU (head dim 64 or 128), f16 on the CPU, whose 8-bit modes are the slower reference
    // implementations. On the GPU the 8-bit modes run prefill steps (16 or more queries of a
    // sequence); decode reads the cache as stored. Model::attn() returns the mode chosen.
    std::string attn = "";
    // The guard's thresholds for an 8-bit layer against FP16 on the same inputs (calibration
    // and the runtime monitor): cosine similarity >= attn_cos_min and relative L1 error
    // (sum |a - b| / sum |b|) <= attn_l1_max.
    float attn_cos_min = 0.999f;
    float attn_l1_max = 0.03f;
    std::string attn_calib_text = "";  // --attn-calib: calibration text (empty: built in)
    // The runtime monitor of sessions of this model (their default): every Nth attention call
    // of an 8-bit layer also runs FP16 on the same inputs and compares; a layer that fails the
    // thresholds switches to FP16 for the rest of the session (and says so once on stderr).
    // 0 turns the monitor off.
    int attn_monitor = 64;
    // KV cache element type (-ctk / -ctv; the two must agree): "f16" (the default: F16 on the
    // GPU, F32 on the CPU) or "int8" (also spelled "q8_0", as llama.cpp users type it): one
    // scale per token and KV head, K smoothed first by a per-layer mean measured at load on the
    // calibration text (attn_calib_text). CPU only for now.
    std::string cache_type_k = "f16", cache_type_v = "f16";
    // Called during the load with the tensor bytes processed so far and the total (tensor
    // checks, upload to the GPU); the caller decides whether and how to show it.
    std::function<void(uint64_t done, uint64_t total)> progress = nullptr;
};

// --attn auto: one layer's calibration at load (the error of each 8-bit mode against FP16 on
// the calibration prompt; cosine similarity and relative L1 over the layer's whole output).
struct AttnCalibration {
    std::string mode;  // chosen: "int8", "sage" or "f16"
    double int8_cos = 1, int8_l1 = 0;
    double sage_cos = 1, sage_l1 = 0;
    std::string note;  // why, when no 8-bit mode was tried (e.g. the backend has none)
};

class Model {
public:
    static std::shared_ptr<const Model> load(const ModelParams& params);

    int n_vocab() const;
    int n_ctx_train() const;
    int n_embd() const;
    int n_layer() const;
    std::string name() const;
    std::string arch() const;
    std::string description() const;  // "llama 0.3M F32", as llama-bench's model column
    uint64_t n_params() const;
    uint64_t size_bytes() const;

    std::vector<int32_t> tokenize(const std::string& text, bool add_special,
                                  bool parse_special = false) const;
    std::string token_to_piece(int32_t id, bool special = false) const;
    std::string detokenize(const std::vector<int32_t>& ids) const;
    int32_t bos() const;
    int32_t eos() const;
    bool vocab_adds_bos() const;        // tokenizer.ggml.add_bos_token
    std::string chat_template() const;  // tokenizer.chat_template (Jinja source) or ""
    bool is_eog(int32_t id) const;

    // "CPU" or "CUDA (device name)": where sessions of this model run.
    std::string backend() const;
    bool on_gpu() const { return device_ != nullptr; }
    // The attention mode asked for at load (ModelParams::attn): "f16", "sage", "int8", "auto".
    std::string attn() const;
    // Each layer's attention mode as chosen at load ("f16", "sage", "int8").
    std::vector<std::string> layer_attn() const;
    // --attn auto: what the calibration measured per layer (empty otherwise).
    const std::vector<AttnCalibration>& attn_calibration() const { return calib_; }
    const ModelParams& params() const { return params_; }
    bool kv_int8() const;  // the KV cache of this model's contexts is INT8

    const LlamaModel& impl() const { return *impl_; }
    const Vocab& vocab() const;
    const std::shared_ptr<cuda::DeviceModel>& device_model() const { return device_; }

    Model(std::shared_ptr<LlamaModel> impl, std::shared_ptr<cuda::DeviceModel> device,
          const ModelParams& params, std::vector<int> layer_modes = {},
          std::vector<AttnCalibration> calib = {}, std::vector<float> k_mean = {});
    // The INT8 cache's K smoothing mean, [n_layer][kv_dim] (empty without an INT8 cache).
    const std::vector<float>& kv_k_mean() const { return k_mean_; }
    // Layer il's mode as an llm8::AttnMode (common/attn_params.h).
    int layer_attn_mode(int il) const { return layer_modes_[size_t(il)]; }

private:
    std::shared_ptr<LlamaModel> impl_;
    std::shared_ptr<cuda::DeviceModel> device_;
    ModelParams params_;
    std::vector<int> layer_modes_;  // [n_layer] AttnMode
    std::vector<AttnCalibration> calib_;
    std::vector<float> k_mean_;
};

// ---- Batches of sequences ---------------------------------------------------------------------
//
// A Context holds the paged KV cache of many sequences and runs one forward step over a Batch:
// each sequence's new tokens (a prefill chunk or one decode token), prefill and decode mixed.
// Tokens of one sequence must be adjacent in the batch and continue it: the first has position
// seq_len(seq), the next seq_len(seq) + 1, and so on.
//
//   llm8::Context ctx(model, {/*n_ctx*/ 8192, /*n_seq_max*/ 16});
//   llm8::Batch b;
//   for (int s = 0; s < 16; ++s)
//       for (size_t i = 0; i < prompt[s].size(); ++i)
//           b.add(prompt[s][i], int32_t(i), s, i + 1 == prompt[s].size());
//   ctx.decode(b);                      // ctx.logits(j): row j of b, for rows with logits set
struct Batch {
    std::vector<int32_t> token;
    std::vector<int32_t> pos;     // position of the token in its sequence
    std::vector<int32_t> seq_id;  // 0 .. n_seq_max-1
    std::vector<uint8_t> logits;  // 1: keep this token's logits

    void add(int32_t tok, int32_t position, int32_t seq, bool want_logits) {
        token.push_back(tok);
        pos.push_back(position);
        seq_id.push_back(seq);
        logits.push_back(want_logits ? 1 : 0);
    }
    void clear() {
        token.clear();
        pos.clear();
        seq_id.clear();
        logits.clear();
    }
    size_t size() const { return token.size(); }
};

// What the KV cache holds (Context::kv_memory).
struct KvMemory {
    std::string type;    // element type: "f16" (GPU), "f32" (CPU)
    int block_size = 0;  // tokens per block
    int n_blocks = 0;
    int blocks_used = 0;
    int blocks_shared = 0;  // held by two or more sequences (forked prefixes)
    int n_seqs = 0;
    int64_t tokens = 0;  // the sequences' lengths added up (a shared prefix counts per sequence)
    size_t bytes_total = 0;
    size_t bytes_used = 0;
};

// One layer's entry of the per-layer plan, chosen once when the context is created (weight
// types, shapes, head dim, backend) and read by the forward pass.
struct LayerPlan {
    std::string attn;           // attention mode: "f16", "sage", "int8" (the guard may change it)
    std::string attn_prefill;   // kernel for steps with many queries per sequence
    std::string attn_decode;    // kernel for one or a few queries per sequence
    std::string matmul_decode;  // matrix path for one token
    std::string matmul_batch;   // matrix path for several tokens
};

struct AttnLayerStats {
    std::string mode;                // the mode the layer runs now (f16 after a fallback)
    int64_t calls = 0;               // attention calls of this layer in an 8-bit mode
    int64_t checks = 0;              // of which compared with FP16
    double mean_l1 = 0, max_l1 = 0;  // relative L1 error of the checks
    double min_cos = 1;              // lowest cosine similarity of the checks
    bool fell_back = false;          // switched to FP16 by the monitor
};

struct ContextParams {
    int n_ctx = 0;      // KV cache tokens shared by all sequences; 0: the model's training context
    int n_seq_max = 1;  // sequence ids 0 .. n_seq_max-1
    int n_batch = 512;  // tokens per forward step; a larger batch is run in steps
    int n_threads = 0;  // CPU threads; 0: all cores
};

class Context {
public:
    Context(std::shared_ptr<const Model> model, const ContextParams& params = {});
    ~Context();

    // Runs the batch, appending every token to its sequence's cache. Throws llm8::Error (and
    // leaves the cache unchanged) for a bad batch or when the cache has no room.
    void decode(const Batch& batch);
    // Logits [n_vocab] of batch row i of the last decode (a row with logits set).
    const float* logits(int i) const;
    // Runs the batch, then draws the next token from the logits of its last row with `sampler`
    // (as Session::decode_sample; on a GPU model the logits stay on the device). That row must
    // have logits set.
    int32_t decode_sample(const Batch& batch, Sampler& sampler);
    // Runs the batch, then draws one token for every row with logits set: the j-th such row
    // (in batch order) with samplers[j]. On a GPU model all rows are sampled in one launch on the
    // device and only the token ids come back (logits() has nothing afterwards); on the CPU
    // each sampler runs on its row. A row whose logits are all NaN or -inf gets -1 (that
    // sampler draws nothing); the other rows are unaffected. A row's token depends only on its
    // logits and its sampler, not on the other rows. On a GPU model the rows with logits must
    // be among the batch's last n_batch tokens (ContextParams::n_batch).
    std::vector<int32_t> decode_sample_rows(const Batch& batch,
                                            const std::vector<Sampler*>& samplers);

    int seq_len(int seq) const;       // tokens cached for seq (0 when unknown)
    void seq_fork(int src, int dst);  // dst starts as a copy of src, sharing its blocks
    void seq_remove(int seq);         // frees seq's blocks (shared ones stay with the others)
    // Keeps the first n tokens of seq (n <= seq_len(seq)) and frees the blocks past them, so
    // that a fork can share just a prefix: seq_fork(a, b); seq_truncate(b, n).
    void seq_truncate(int seq, int n);
    void clear();  // every sequence
    KvMemory kv_memory() const;
    const std::vector<LayerPlan>& plan() const;
    std::string plan_report() const;  // the plan as a table, for --verbose

    // The accuracy guard's runtime monitor (ModelParams::attn_monitor): per layer, the mode
    // it runs now, the attention calls, the checks against FP16 and their errors, fallbacks.
    std::vector<AttnLayerStats> attn_stats() const;
    // The monitor's thresholds for this context (default: the model's) and its period
    // (every Nth call of a layer; 0 off).
    void set_attn_guard(float cos_min, float l1_max, int monitor_every);
    // The calibration (--attn auto) and the monitor's statistics as a table, for --attn-report.
    std::string attn_report() const;

    int n_ctx() const;
    int n_seq_max() const;
    const Model& model() const { return *model_; }

private:
    friend struct ContextHooks;
    struct State;
    void run(const Batch& batch, bool host_logits);
    void after_attention(int layer, const AttnParams& p);
    std::shared_ptr<const Model> model_;
    std::unique_ptr<State> st_;
};

// The accuracy guard's report: each layer's mode, the calibration of --attn auto (when there was
// one) and the given monitor statistics (Context::attn_stats()), as a table.
std::string attn_guard_report(const Model& model, const std::vector<AttnLayerStats>& stats);

// ---- One sequence -----------------------------------------------------------------------------

struct SessionParams {
    int n_ctx = 0;      // 0: the model's training context
    int n_batch = 512;  // tokens per forward call; longer inputs are split
    int n_threads = 0;  // 0: all cores
};

// The simple face for one sequence (sequence 0 of a Context of its own).
class Session {
public:
    Session(std::shared_ptr<const Model> model, const SessionParams& params = {});
    ~Session();

    // Runs tokens at positions n_past() .. n_past()+n-1 and appends them to the KV cache.
    // all_logits keeps the logits of every token of this call (perplexity); otherwise only the
    // last token's. Throws llm8::Error when the context would overflow or an id is out of range.
    void decode(const int32_t* tokens, size_t n, bool all_logits = false);
    void decode(const std::vector<int32_t>& tokens, bool all_logits = false) {
        decode(tokens.data(), tokens.size(), all_logits);
    }
    // Logits [n_vocab] of token i of the last decode (with all_logits), or of its last token.
    // (Not available after decode_sample on a GPU model: the logits stay on the device.)
    const float* logits(int i = -1) const;

    // decode(), then draws the next token from the last position with `sampler` (its
    // parameters, penalty window, seed and draw counter; the draw is counted, the token is not
    // accepted: call sampler.accept()). On a GPU model the logits never leave the device: the
    // GPU sampler (llm8/sampling_cuda.h) runs on them and only the token id comes back. It
    // draws from the same distribution as the CPU chain, with the same Philox stream.
    int32_t decode_sample(const int32_t* tokens, size_t n, Sampler& sampler);
    int32_t decode_sample(const std::vector<int32_t>& tokens, Sampler& sampler) {
        return decode_sample(tokens.data(), tokens.size(), sampler);
    }

    int n_past() const;
    int n_ctx() const;
    void clear();  // forget the context
    const Model& model() const { return *model_; }
    Context& context() { return *ctx_; }

private:
    std::shared_ptr<const Model> model_;
    std::unique_ptr<Context> ctx_;
    std::vector<int32_t> last_rows_;  // batch rows of the last decode's logits
};

}  // namespace llm8
