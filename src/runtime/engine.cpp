// Model and Session: the public face of the engine (include/llm8/engine.h) over the model
// description (model/llama.h), the CPU forward (model/llama_forward.h) and the KV cache.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "cpu/ops.h"
#include "cuda/backend.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "model/check_tensors.h"
#include "model/llama.h"
#include "runtime/attn_guard.h"
#include "runtime/embedded_model.h"
#include "tokenizer/vocab.h"

namespace llm8 {

// ---- Model ------------------------------------------------------------------------------------

Model::Model(std::shared_ptr<LlamaModel> impl, std::shared_ptr<cuda::DeviceModel> device,
             const ModelParams& params, std::vector<int> layer_modes,
             std::vector<AttnCalibration> calib, std::vector<float> k_mean)
    : impl_(std::move(impl)),
      device_(std::move(device)),
      params_(params),
      layer_modes_(std::move(layer_modes)),
      calib_(std::move(calib)),
      k_mean_(std::move(k_mean)) {
    params_.progress = nullptr;  // the load's progress display is not the model's to keep
    if (layer_modes_.empty()) {
        AttnMode m = AttnMode::f16;
        parse_attn_mode(params_.attn.c_str(), &m);
        layer_modes_.assign(size_t(impl_->hp.n_layer), int(m));
    }
    if (layer_modes_.size() != size_t(impl_->hp.n_layer))
        fail(ErrorKind::invalid_arg, "Model: one attention mode per layer expected");
    if (kv_int8() && k_mean_.size() != size_t(impl_->hp.n_layer) * size_t(impl_->hp.kv_dim()))
        k_mean_.assign(size_t(impl_->hp.n_layer) * size_t(impl_->hp.kv_dim()), 0.0f);
}

std::string Model::attn() const {
    return params_.attn;
}

bool Model::kv_int8() const {
    return params_.cache_type_k == "int8" || params_.cache_type_k == "q8_0";
}

std::vector<std::string> Model::layer_attn() const {
    std::vector<std::string> r;
    for (int m : layer_modes_) r.push_back(attn_mode_name(AttnMode(m)));
    return r;
}

std::string Model::backend() const {
    return device_ ? "CUDA (" + cuda::device_name(0) + ")" : "CPU";
}

std::shared_ptr<const Model> Model::load(const ModelParams& params_in) {
    ModelParams params = params_in;
    AttnMode attn = AttnMode::f16;
    if (!params.attn.empty() && params.attn != "auto" &&
        !parse_attn_mode(params.attn.c_str(), &attn))
        fail(ErrorKind::invalid_arg,
             "unknown attention mode '" + params.attn + "' (--attn f16, sage, int8 or auto)");
    if (!(params.attn_cos_min > 0.0f && params.attn_cos_min <= 1.0f))
        fail(ErrorKind::invalid_arg,
             "--attn-cos-min must be in (0, 1], not " + std::to_string(params.attn_cos_min));
    if (!(params.attn_l1_max >= 0.0f) || !std::isfinite(params.attn_l1_max))
        fail(ErrorKind::invalid_arg, "--attn-l1-max must be a finite number >= 0");
    if (params.attn_monitor < 0)
        fail(ErrorKind::invalid_arg, "--attn-monitor must be >= 0 (0: off)");
    auto cache_kind = [](const std::string& t) {
        return t == "f16" ? 0 : (t == "int8" || t == "q8_0") ? 1 : -1;
    };
    const int ck = cache_kind(params.cache_type_k), cv = cache_kind(params.cache_type_v);
    if (ck < 0 || cv < 0)
        fail(ErrorKind::invalid_arg, "KV cache type '" +
                                         (ck < 0 ? params.cache_type_k : params.cache_type_v) +
                                         "' is not supported: -ctk/-ctv f16 or int8 (q8_0)");
    if (ck != cv)
        fail(ErrorKind::invalid_arg,
             "-ctk " + params.cache_type_k + " -ctv " + params.cache_type_v +
                 ": K and V caches of different types are not supported (use -ctk int8 -ctv int8)");
    std::shared_ptr<const GgufFile> file;
    if (params.path.empty()) {
        if (embedded_model_size() == 0)
            fail(ErrorKind::invalid_arg,
                 "this build has no embedded model (models/stories260K.gguf was missing at build "
                 "time): pass a model with -m");
        file =
            GgufFile::from_memory(embedded_model_data(), embedded_model_size(), kEmbeddedModelName);
    } else {
        file = GgufFile::open(params.path);
    }
    auto impl = load_llama(file);
    if (params.check_tensors) check_tensor_data(*file, params.progress);
    std::shared_ptr<cuda::DeviceModel> device;
    std::string why;
    const bool have_gpu = params.n_gpu_layers != 0 && cuda::available(&why);
    if (params.n_gpu_layers > 0 && !have_gpu)
        fail(ErrorKind::unsupported, "GPU requested (-ngl " + std::to_string(params.n_gpu_layers) +
                                         ") but none is usable: " + why +
                                         "; use -ngl 0 for the CPU");
    const HParams& hp = impl->hp;
    const bool gpu_8bit = impl->hp.head_dim == 64 || impl->hp.head_dim == 128;
    // The default: the guard's choice on the GPU, where the 8-bit kernels are the fast path;
    // f16 on the CPU, whose 8-bit modes are the (slower) reference implementations.
    if (params.attn.empty())
        params.attn = have_gpu && gpu_8bit && !hp.mla && hp.n_expert == 0 ? "auto" : "f16";
    const bool attn_auto = params.attn == "auto";
    if (have_gpu && (hp.n_expert > 0 || hp.mla))
        fail(ErrorKind::unsupported,
             impl->name + " (" + hp.arch_name + (hp.mla ? ", latent attention" : "") +
                 (hp.n_expert > 0 ? ", " + std::to_string(hp.n_expert) + " experts" : "") +
                 "): MoE/MLA models run on the CPU for now; use -ngl 0");
    if (have_gpu && hp.yarn.ext_factor != 0.0f)
        fail(ErrorKind::unsupported, impl->name +
                                         ": YaRN RoPE scaling runs on the CPU for now (the GPU "
                                         "kernels rotate without it); use -ngl 0");
    if (hp.mla && (ck == 1 || attn_auto || attn != AttnMode::f16))
        fail(ErrorKind::unsupported,
             impl->name +
                 ": latent attention (deepseek2) runs with the plain cache and --attn "
                 "f16 only for now (the INT8 cache and the 8-bit modes assume one K and "
                 "one V row per KV head)");
    if (have_gpu && ck == 1 && impl->hp.head_dim != 64 && impl->hp.head_dim != 128)
        fail(ErrorKind::unsupported,
             "-ctk/-ctv " + params.cache_type_k + ": the GPU's INT8 KV cache kernels take head dim "
                 "64 or 128, this model has " + std::to_string(impl->hp.head_dim) +
                 ": add -ngl 0, or use the f16 cache on the GPU");
    if (have_gpu && attn != AttnMode::f16 && !gpu_8bit)
        fail(ErrorKind::unsupported,
             "--attn " + params.attn + ": the GPU's 8-bit attention kernels take head dim 64 or "
                 "128, this model has " + std::to_string(impl->hp.head_dim) +
                 ": add -ngl 0, or use --attn f16 on the GPU");
    if (have_gpu) {
        if (params.progress) params.progress(0, impl->weight_bytes());
        device = cuda::upload_model(*impl, 0);
        if (params.progress) params.progress(impl->weight_bytes(), impl->weight_bytes());
    }
    std::vector<int> modes(size_t(impl->hp.n_layer), int(attn));
    std::vector<AttnCalibration> calib;
    if (attn_auto && device && !gpu_8bit) {
        // No 8-bit kernels on the GPU for this head dim: every layer f16, the report says why.
        calib.assign(modes.size(), AttnCalibration{});
        for (AttnCalibration& c : calib) {
            c.mode = "f16";
            c.note = "not calibrated: the GPU's 8-bit kernels take head dim 64 or 128";
        }
    }
    const std::string calib_text =
        params.attn_calib_text.empty() ? builtin_attn_calibration_text() : params.attn_calib_text;
    // The INT8 cache's K means: the calibration text through the model with the plain cache.
    std::vector<float> k_mean;
    if (ck == 1) {
        ModelParams plain = params;
        plain.attn = "f16";
        plain.cache_type_k = plain.cache_type_v = "f16";
        k_mean = calibrate_k_mean(std::make_shared<const Model>(impl, device, plain), calib_text);
    }
    if (attn_auto && (!device || gpu_8bit)) {
        // Each mode against f16 on the cache the contexts will use.
        ModelParams f16 = params;
        f16.attn = "f16";
        auto base = std::make_shared<const Model>(impl, device, f16, std::vector<int>{},
                                                  std::vector<AttnCalibration>{}, k_mean);
        calib = calibrate_attention(base, calib_text, params.attn_cos_min, params.attn_l1_max);
        for (size_t il = 0; il < modes.size(); ++il) {
            AttnMode m = AttnMode::f16;
            parse_attn_mode(calib[il].mode.c_str(), &m);
            modes[il] = int(m);
        }
    }
    return std::make_shared<const Model>(impl, device, params, modes, calib, k_mean);
}

int Model::n_vocab() const {
    return impl_->hp.n_vocab;
}
int Model::n_ctx_train() const {
    return impl_->hp.n_ctx_train;
}
int Model::n_embd() const {
    return impl_->hp.n_embd;
}
int Model::n_layer() const {
    return impl_->hp.n_layer;
}
std::string Model::name() const {
    return impl_->name;
}
std::string Model::arch() const {
    return impl_->hp.arch_name;
}
uint64_t Model::n_params() const {
    return impl_->n_params();
}
uint64_t Model::size_bytes() const {
    return impl_->weight_bytes();
}
const Vocab& Model::vocab() const {
    return *impl_->vocab;
}

std::string Model::description() const {
    const double p = double(n_params());
    char buf[64];
    if (p >= 1e9)
        std::snprintf(buf, sizeof buf, "%.1fB", p / 1e9);
    else if (p >= 1e6)
        std::snprintf(buf, sizeof buf, "%.1fM", p / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%.1fK", p / 1e3);
    return impl_->hp.arch_name + " " + buf + " " + impl_->type_summary();
}

std::vector<int32_t> Model::tokenize(const std::string& text, bool add_special,
                                     bool parse_special) const {
    return impl_->vocab->tokenize(text, add_special, parse_special);
}
std::string Model::token_to_piece(int32_t id, bool special) const {
    if (id < 0 || id >= n_vocab()) fail(ErrorKind::invalid_arg, "token id out of range");
    return impl_->vocab->token_to_piece(id, special);
}
std::string Model::detokenize(const std::vector<int32_t>& ids) const {
    return impl_->vocab->detokenize(ids);
}
int32_t Model::bos() const {
    return impl_->vocab->bos();
}
int32_t Model::eos() const {
    return impl_->vocab->eos();
}
bool Model::vocab_adds_bos() const {
    return impl_->vocab->add_bos();
}
std::string Model::chat_template() const {
    return impl_->file->get_str("tokenizer.chat_template", "");
}
bool Model::is_eog(int32_t id) const {
    return impl_->vocab->is_eog(id);
}

// ---- Session ----------------------------------------------------------------------------------
// Sequence 0 of a Context of its own.

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params)
    : model_(std::move(model)) {
    if (!model_) fail(ErrorKind::invalid_arg, "Session needs a model");
    ContextParams cp;
    cp.n_ctx = params.n_ctx;
    cp.n_seq_max = 1;
    cp.n_batch = params.n_batch;
    cp.n_threads = params.n_threads;
    ctx_.reset(new Context(model_, cp));
}

Session::~Session() = default;

namespace {

// Session's checks, with the messages its users know (the Context's would also catch them).
void check_tokens(const Context& c, const int32_t* tokens, size_t n) {
    if (n == 0) fail(ErrorKind::invalid_arg, "decode: no tokens");
    const int n_past = c.seq_len(0);
    if (size_t(n_past) + n > size_t(c.n_ctx()))
        fail(ErrorKind::invalid_arg, "context full: " + std::to_string(n_past) + " + " +
                                         std::to_string(n) + " tokens exceed the context of " +
                                         std::to_string(c.n_ctx()) + " (raise -c)");
}

Batch one_sequence(const int32_t* tokens, size_t n, int n_past, bool all_logits) {
    Batch b;
    for (size_t i = 0; i < n; ++i)
        b.add(tokens[i], n_past + int32_t(i), 0, all_logits || i + 1 == n);
    return b;
}

}  // namespace

void Session::decode(const int32_t* tokens, size_t n, bool all_logits) {
    check_tokens(*ctx_, tokens, n);
    ctx_->decode(one_sequence(tokens, n, ctx_->seq_len(0), all_logits));
    last_rows_.clear();
    for (size_t i = all_logits ? 0 : n - 1; i < n; ++i) last_rows_.push_back(int32_t(i));
}

int32_t Session::decode_sample(const int32_t* tokens, size_t n, Sampler& sampler) {
    check_tokens(*ctx_, tokens, n);
    last_rows_.clear();
    const int32_t tok =
        ctx_->decode_sample(one_sequence(tokens, n, ctx_->seq_len(0), false), sampler);
    if (!model_->on_gpu()) last_rows_.push_back(int32_t(n - 1));
    return tok;
}

const float* Session::logits(int i) const {
    if (last_rows_.empty()) fail(ErrorKind::invalid_arg, "logits: nothing decoded yet");
    if (i < 0) i = int(last_rows_.size()) - 1;
    if (i >= int(last_rows_.size())) fail(ErrorKind::invalid_arg, "logits: index out of range");
    return ctx_->logits(last_rows_[size_t(i)]);
}

int Session::n_past() const {
    return ctx_->seq_len(0);
}
int Session::n_ctx() const {
    return ctx_->n_ctx();
}
void Session::clear() {
    ctx_->clear();
    last_rows_.clear();
}

}  // namespace llm8
