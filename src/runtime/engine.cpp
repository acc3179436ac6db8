// Model and Session: the public face of the engine (include/llm8/engine.h) over the model
// description (model/llama.h), the CPU forward (model/llama_forward.h) and the KV cache.
#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "cpu/ops.h"
#include "cuda/backend.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "model/check_tensors.h"
#include "model/llama.h"
#include "model/llama_forward.h"
#include "runtime/embedded_model.h"
#include "runtime/kv_cache.h"
#include "tokenizer/vocab.h"

namespace llm8 {

// ---- Model ------------------------------------------------------------------------------------

Model::Model(std::shared_ptr<LlamaModel> impl, std::shared_ptr<cuda::DeviceModel> device)
    : impl_(std::move(impl)), device_(std::move(device)) {}

std::string Model::backend() const {
    return device_ ? "CUDA (" + cuda::device_name(0) + ")" : "CPU";
}

std::shared_ptr<const Model> Model::load(const ModelParams& params) {
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
    if (have_gpu) {
        if (params.progress) params.progress(0, impl->weight_bytes());
        device = cuda::upload_model(*impl, 0);
        if (params.progress) params.progress(impl->weight_bytes(), impl->weight_bytes());
    }
    return std::make_shared<const Model>(impl, device);
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

struct Session::State {
    SessionParams params;
    std::unique_ptr<cuda::DeviceSession, void (*)(cuda::DeviceSession*)> gpu{nullptr, nullptr};
    KvCache cache;
    ForwardScratch scratch;
    std::vector<float> logits;  // [n_logits, n_vocab]
    int n_logits = 0;
    int n_past = 0;
};

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params)
    : model_(std::move(model)), st_(new State()) {
    if (!model_) fail(ErrorKind::invalid_arg, "Session needs a model");
    const HParams& hp = model_->impl().hp;
    st_->params = params;
    if (params.n_ctx < 0) fail(ErrorKind::invalid_arg, "context size must be >= 0");
    if (params.n_batch <= 0) fail(ErrorKind::invalid_arg, "batch size must be > 0");
    if (params.n_threads < 0) fail(ErrorKind::invalid_arg, "thread count must be >= 0");
    const int n_ctx = params.n_ctx > 0 ? params.n_ctx : hp.n_ctx_train;
    st_->params.n_ctx = n_ctx;
    const double kv_bytes = 2.0 * hp.n_layer * double(n_ctx) * hp.kv_dim() * sizeof(float);
    if (kv_bytes > 64.0 * (1ull << 30))
        fail(ErrorKind::invalid_arg, "context of " + std::to_string(n_ctx) + " tokens needs a " +
                                         std::to_string(kv_bytes / (1 << 30)) +
                                         " GiB KV cache; choose a smaller -c");
    if (model_->on_gpu()) {
        st_->gpu = cuda::create_session(model_->device_model(), n_ctx, params.n_batch);
    } else {
        try {
            st_->cache.init(hp.n_layer, n_ctx, hp.kv_dim());
        } catch (const std::bad_alloc&) {
            fail(ErrorKind::runtime, "cannot allocate the " + std::to_string(kv_bytes / (1 << 30)) +
                                         " GiB KV cache for a context of " + std::to_string(n_ctx) +
                                         " tokens: choose a smaller -c");
        }
    }
    if (params.n_threads > 0) cpu::set_threads(params.n_threads);
}

Session::~Session() = default;

void Session::decode(const int32_t* tokens, size_t n, bool all_logits) {
    const LlamaModel& m = model_->impl();
    State& st = *st_;
    if (n == 0) fail(ErrorKind::invalid_arg, "decode: no tokens");
    if (size_t(st.n_past) + n > size_t(st.params.n_ctx))
        fail(ErrorKind::invalid_arg, "context full: " + std::to_string(st.n_past) + " + " +
                                         std::to_string(n) + " tokens exceed the context of " +
                                         std::to_string(st.params.n_ctx) + " (raise -c)");
    for (size_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= m.hp.n_vocab)
            fail(ErrorKind::invalid_arg, "token id " + std::to_string(tokens[i]) +
                                             " is out of range [0, " +
                                             std::to_string(m.hp.n_vocab) + ")");
    const size_t V = size_t(m.hp.n_vocab);
    st.n_logits = all_logits ? int(n) : 1;
    st.logits.resize(size_t(st.n_logits) * V);
    const size_t nb = size_t(st.params.n_batch);
    for (size_t done = 0; done < n;) {
        const size_t cur = std::min(nb, n - done);
        const bool last = done + cur == n;
        // Logits: every token when all_logits, else only the very last token of the call.
        const int64_t n_out = all_logits ? int64_t(cur) : (last ? 1 : 0);
        float* out = all_logits ? st.logits.data() + done * V : st.logits.data();
        // An intermediate chunk (n_out 0) skips the output projection entirely.
        if (st.gpu) {
            cuda::forward(*st.gpu, tokens + done, int64_t(cur), st.n_past, n_out, out);
        } else {
            llama_forward_cpu(m, st.cache, tokens + done, int64_t(cur), st.n_past, n_out,
                              n_out ? out : nullptr, st.scratch);
        }
        st.n_past += int(cur);
        done += cur;
    }
}

int32_t Session::decode_sample(const int32_t* tokens, size_t n, Sampler& sampler) {
    State& st = *st_;
    if (!st.gpu) {
        decode(tokens, n);
        return sampler.sample(logits());
    }
    // Validate everything before anything runs, so a bad call leaves the session unchanged.
    if (n == 0) fail(ErrorKind::invalid_arg, "decode: no tokens");
    if (size_t(st.n_past) + n > size_t(st.params.n_ctx))
        fail(ErrorKind::invalid_arg, "context full: " + std::to_string(st.n_past) + " + " +
                                         std::to_string(n) + " tokens exceed the context of " +
                                         std::to_string(st.params.n_ctx) + " (raise -c)");
    const int V = model_->n_vocab();
    for (size_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= V)
            fail(ErrorKind::invalid_arg, "token id " + std::to_string(tokens[i]) +
                                             " is out of range [0, " + std::to_string(V) + ")");
    // All but the last batch through decode(); the last one ends in the GPU sampler.
    const size_t nb = size_t(st.params.n_batch);
    const size_t last = n > nb ? (n - 1) / nb * nb : 0;
    if (last > 0) decode(tokens, last, false);
    const size_t cur = n - last;
    const SamplerParams& p = sampler.params();
    cuda::SampleRequest req;
    req.params = gpu_row_params(p, sampler.draws());
    req.penalty_window = sampler.penalty_window();
    for (const auto& kv : p.logit_bias) {
        req.bias_tokens.push_back(kv.first);
        req.bias_values.push_back(kv.second);
    }
    int32_t status = 0;
    const int32_t tok =
        cuda::forward_sample(*st.gpu, tokens + last, int64_t(cur), st.n_past, req, &status);
    st.n_past += int(cur);
    st.n_logits = 0;  // the logits stayed on the device
    if (tok < 0 || status != 0)
        fail(ErrorKind::runtime,
             status == 1 ? "sampler: every logit is NaN or -inf"
                         : "sampler: bad parameters (GPU status " + std::to_string(status) + ")");
    sampler.count_external_draw();
    return tok;
}

const float* Session::logits(int i) const {
    if (st_->n_logits == 0) fail(ErrorKind::invalid_arg, "logits: nothing decoded yet");
    if (i < 0) i = st_->n_logits - 1;
    if (i >= st_->n_logits) fail(ErrorKind::invalid_arg, "logits: index out of range");
    return st_->logits.data() + size_t(i) * size_t(model_->n_vocab());
}

int Session::n_past() const {
    return st_->n_past;
}
int Session::n_ctx() const {
    return st_->params.n_ctx;
}
void Session::clear() {
    st_->n_past = 0;
    st_->n_logits = 0;
}

}  // namespace llm8
