// The bodies of the libFuzzer targets, shared by the fuzzers (fuzz/fuzz_*.cpp, clang) and by
// tests/test_fuzz_inputs.cpp, which replays every seed and every regression input through them
// in the ordinary test suite (any compiler, and the sanitizer build of scripts/sanitize.sh).
//
// Each function takes untrusted bytes. An llm8::Error is the expected answer to bad input and
// is swallowed; anything else (another exception, a sanitizer report, a broken invariant, which
// calls fuzz_check -> abort) is a finding.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf.h"
#include "llm8/sampling.h"
#include "model/llama.h"
#include "runtime/embedded_model.h"
#include "server/request.h"
#include "server/response.h"
#include "server/stop_strings.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/token_streamer.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace llm8_fuzz {

// An invariant that must hold for any input; a failure aborts (libFuzzer saves the input).
#define LLM8_FUZZ_CHECK(cond)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

// Reads fixed-size values from the front of the input; zeros once it runs out.
class Bytes {
public:
    Bytes(const uint8_t* p, size_t n) : p_(p), n_(n) {}
    template <typename T>
    T take() {
        T v{};
        const size_t k = std::min(sizeof(T), n_);
        std::memcpy(&v, p_, k);
        p_ += k;
        n_ -= k;
        return v;
    }
    std::string rest() {
        std::string s(reinterpret_cast<const char*>(p_), n_);
        p_ += n_;
        n_ = 0;
        return s;
    }
    size_t left() const { return n_; }

private:
    const uint8_t* p_;
    size_t n_;
};

// ---- GGUF reader and model loading ------------------------------------------------------------

inline void fuzz_gguf(const uint8_t* data, size_t size) {
    std::shared_ptr<const llm8::GgufFile> file;
    try {
        file = llm8::GgufFile::from_memory(data, size, "fuzz.gguf");
    } catch (const llm8::Error&) {
        return;
    }
    // Every accepted tensor lies inside the input: touch its first and last byte (ASan sees
    // the input as a heap block of exactly `size` bytes) and check it against the data section.
    unsigned sum = 0;
    for (const llm8::GgufTensorInfo& t : file->tensors()) {
        LLM8_FUZZ_CHECK(t.data >= data + file->data_offset());
        LLM8_FUZZ_CHECK(t.nbytes <= size_t(data + size - t.data));
        if (t.nbytes) sum += t.data[0] + t.data[t.nbytes - 1];
    }
    (void)sum;
    try {
        llm8::load_llama(file);
    } catch (const llm8::Error&) {
    }
    // The vocab on its own (load_llama stops at the first bad hparam).
    try {
        auto vocab = llm8::Vocab::from_gguf(*file);
        const auto ids = vocab->tokenize("Hello world <s>\xff", true, true);
        for (int32_t id : ids) LLM8_FUZZ_CHECK(id >= 0 && id < vocab->n_tokens());
        vocab->detokenize(ids, false, true);
    } catch (const llm8::Error&) {
    }
}

// ---- tokenizers -------------------------------------------------------------------------------

// stories260K's 512-token SentencePiece vocab (the model linked into the library).
inline std::shared_ptr<const llm8::Vocab> spm_vocab() {
    static const std::shared_ptr<const llm8::Vocab> v = [] {
        auto f = llm8::GgufFile::from_memory(llm8::embedded_model_data(),
                                             llm8::embedded_model_size(), "stories260K");
        return llm8::Vocab::from_gguf(*f);
    }();
    return v;
}

// A byte-level BPE vocab built in code: the 256 GPT-2 byte symbols, a few merges, two control
// tokens; one per pre-tokenizer family (gpt-2, llama-bpe, qwen2) so each regex set is fuzzed.
inline std::vector<uint8_t> bpe_vocab_gguf(const std::string& pre) {
    using llm8::GgufValue;
    std::vector<std::string> toks;
    std::vector<int32_t> types;
    for (int b = 0; b < 256; ++b) {
        toks.push_back(llm8::byte_to_unicode(uint8_t(b)));
        types.push_back(1);
    }
    const std::string sp = llm8::byte_to_unicode(' ');
    const std::vector<std::string> merges = {sp + " t",     "h e", sp + "t he", "i n",
                                             sp + " a",     "e r", sp + " w",   "o n",
                                             sp + " " + sp, "a n"};
    for (const std::string& m : merges) {
        std::string merged = m;
        merged.erase(merged.find(' '), 1);
        toks.push_back(merged);
        types.push_back(1);
    }
    toks.push_back("<|endoftext|>");
    types.push_back(3);
    toks.push_back("<|im_start|>");
    types.push_back(3);
    llm8::GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::make_str("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::make_str(pre));
    w.set("tokenizer.ggml.tokens", GgufValue::make_str_array(toks));
    w.set("tokenizer.ggml.token_type", GgufValue::make_i32_array(types));
    w.set("tokenizer.ggml.merges", GgufValue::make_str_array(merges));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::make_u32(uint32_t(toks.size() - 2)));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::make_u32(uint32_t(toks.size() - 2)));
    return w.to_bytes();
}

inline std::shared_ptr<const llm8::Vocab> bpe_vocab(int which) {
    static const std::vector<std::shared_ptr<const llm8::Vocab>> v = [] {
        std::vector<std::shared_ptr<const llm8::Vocab>> out;
        for (const char* pre : {"gpt-2", "llama-bpe", "qwen2"}) {
            const std::vector<uint8_t> bytes = bpe_vocab_gguf(pre);
            auto f = llm8::GgufFile::from_memory(bytes.data(), bytes.size(), pre);
            out.push_back(llm8::Vocab::from_gguf(*f));  // the vocab copies what it keeps
        }
        return out;
    }();
    return v[size_t(which) % v.size()];
}

// First byte: flags (add_special, parse_special, which vocab); the rest is the text.
inline void fuzz_tokenizer(const llm8::Vocab& vocab, const uint8_t* data, size_t size) {
    Bytes in(data, size);
    const uint8_t flags = in.take<uint8_t>();
    const std::string text = in.rest();
    const auto ids = vocab.tokenize(text, flags & 1, flags & 2);
    for (int32_t id : ids) LLM8_FUZZ_CHECK(id >= 0 && id < vocab.n_tokens());
    vocab.detokenize(ids, flags & 4, flags & 8);
    if (vocab.kind() == llm8::VocabKind::bpe && !(flags & 3) && llm8::utf8_sanitize(text) == text) {
        // Byte-level BPE loses nothing on valid UTF-8 without special tokens: the pieces put
        // together give the text back (detokenize itself also cleans spaces before punctuation).
        std::string pieces;
        for (int32_t id : ids) pieces += vocab.token_to_piece(id);
        LLM8_FUZZ_CHECK(pieces == text);
    }
    llm8::TokenStreamer streamer(vocab, flags & 16);
    std::string streamed;
    for (int32_t id : ids) streamed += streamer.push(id);
    streamed += streamer.flush();
    // Ids from the raw bytes too, in range or not.
    std::vector<int32_t> raw;
    for (size_t i = 0; i + 4 <= text.size() && raw.size() < 64; i += 4) {
        int32_t id;
        std::memcpy(&id, text.data() + i, 4);
        raw.push_back(flags & 32 ? id : int32_t(uint32_t(id) % uint32_t(vocab.n_tokens() + 2)));
    }
    vocab.detokenize(raw, flags & 4, flags & 8);
    for (int32_t id : raw) vocab.token_to_piece(id, flags & 8);
}

inline void fuzz_tokenizer_spm(const uint8_t* data, size_t size) {
    fuzz_tokenizer(*spm_vocab(), data, size);
}

inline void fuzz_tokenizer_bpe(const uint8_t* data, size_t size) {
    const int which = size ? (data[0] >> 6) : 0;
    fuzz_tokenizer(*bpe_vocab(which), data, size);
}

// ---- bytes as UTF-8 text ----------------------------------------------------------------------

inline void fuzz_utf8(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::vector<uint32_t> cpts = llm8::utf8_decode_lenient(text);
    LLM8_FUZZ_CHECK(cpts.size() <= size);
    std::string enc;
    for (uint32_t c : cpts) {
        LLM8_FUZZ_CHECK(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF));
        llm8::utf8_append(enc, c);
    }
    const std::string clean = llm8::utf8_sanitize(text);
    LLM8_FUZZ_CHECK(clean == enc);
    LLM8_FUZZ_CHECK(llm8::utf8_is_valid(clean));
    LLM8_FUZZ_CHECK(llm8::utf8_decode_lenient(clean) == cpts);  // sanitizing is idempotent
    // utf8_is_valid checks byte structure only (it accepts surrogates and overlong forms), so
    // strictly valid text is structurally valid, not the other way round.
    if (clean == text) LLM8_FUZZ_CHECK(llm8::utf8_is_valid(text));
    const size_t tail = llm8::utf8_incomplete_tail(text);
    LLM8_FUZZ_CHECK(tail <= 3 && tail <= size);
    llm8::unicode_to_byte(text);
    if (size) llm8::utf8_len(data[0]);
    // The same bytes through both tokenizers, as plain text and with special tokens.
    const std::string s(text);
    for (const auto& v : {spm_vocab(), bpe_vocab(int(size))}) {
        for (bool special : {false, true}) {
            const auto ids = v->tokenize(s, special, special);
            for (int32_t id : ids) LLM8_FUZZ_CHECK(id >= 0 && id < v->n_tokens());
        }
    }
}

// ---- chat templates ---------------------------------------------------------------------------

// Layout: a flags byte, then fields separated by 0x00: the template (Jinja source or a name),
// then role, content, role, content, ...
inline void fuzz_chat_template(const uint8_t* data, size_t size) {
    Bytes in(data, size);
    const uint8_t flags = in.take<uint8_t>();
    const std::string rest = in.rest();
    std::vector<std::string> fields;
    size_t pos = 0;
    for (;;) {
        const size_t z = rest.find('\0', pos);
        fields.push_back(rest.substr(pos, z == std::string::npos ? std::string::npos : z - pos));
        if (z == std::string::npos) break;
        pos = z + 1;
    }
    const std::string& tmpl = fields[0];
    std::vector<llm8::ChatMessage> msgs;
    for (size_t i = 1; i + 1 < fields.size(); i += 2) msgs.push_back({fields[i], fields[i + 1]});

    const std::string detected = llm8::detect_chat_template(tmpl);
    LLM8_FUZZ_CHECK(detected.empty() || llm8::is_chat_template_name(detected));
    std::string chosen;
    try {
        chosen = llm8::choose_chat_template(flags & 1 ? tmpl : "", tmpl);
        LLM8_FUZZ_CHECK(llm8::is_chat_template_name(chosen));
    } catch (const llm8::Error& e) {
        LLM8_FUZZ_CHECK(e.kind() == llm8::ErrorKind::invalid_arg);
    }
    const std::vector<std::string> names = llm8::chat_template_names();
    const std::string& name = names[(flags >> 1) % names.size()];
    const std::string out = llm8::render_chat_template(name, msgs, flags & 128);
    // Rendering only concatenates: it cannot grow the text by more than fixed markup per turn.
    size_t in_bytes = 0;
    for (const auto& m : msgs) in_bytes += 2 * (m.role.size() + m.content.size());
    LLM8_FUZZ_CHECK(out.size() <= in_bytes + 128 * (msgs.size() + 1));
    if (!chosen.empty()) llm8::render_chat_template(chosen, msgs, true);
    try {
        llm8::render_chat_template(tmpl, msgs, false);  // mostly unknown names: a clean error
    } catch (const llm8::Error& e) {
        LLM8_FUZZ_CHECK(e.kind() == llm8::ErrorKind::invalid_arg);
    }
}

// ---- sampler ----------------------------------------------------------------------------------

// Layout: n_vocab byte, the parameters as raw values (any float: NaN, inf, denormals), up to 4
// logit biases, up to 16 history tokens, then the logits as raw floats (zeros past the end).
inline void fuzz_sampler(const uint8_t* data, size_t size) {
    Bytes in(data, size);
    const uint8_t nv = in.take<uint8_t>();
    const int32_t n_vocab = nv == 255 ? 1000 : int32_t(nv % 200);  // 0 is refused
    llm8::SamplerParams p;
    p.temperature = in.take<float>();
    p.top_k = in.take<int32_t>();
    p.top_p = in.take<float>();
    p.min_p = in.take<float>();
    p.repeat_penalty = in.take<float>();
    p.frequency_penalty = in.take<float>();
    p.presence_penalty = in.take<float>();
    p.penalty_last_n = in.take<int32_t>();
    p.seed = in.take<uint64_t>();
    const uint8_t counts = in.take<uint8_t>();
    for (int i = 0; i < (counts & 3); ++i) {
        const int32_t id = in.take<int32_t>();
        p.logit_bias[id] = in.take<float>();
    }
    std::vector<int32_t> history;
    for (int i = 0; i < (counts >> 4); ++i) history.push_back(in.take<int32_t>());
    std::vector<float> logits(size_t(std::max(n_vocab, 1)), 0.0f);
    for (float& x : logits) x = in.take<float>();

    std::unique_ptr<llm8::Sampler> s;
    try {
        s = std::make_unique<llm8::Sampler>(p, n_vocab);
    } catch (const llm8::Error& e) {
        LLM8_FUZZ_CHECK(e.kind() == llm8::ErrorKind::invalid_arg);
        return;
    }
    for (int32_t t : history) s->accept(t);
    for (int draw = 0; draw < 3; ++draw) {
        try {
            const std::vector<double> probs = s->distribution(logits.data());
            const int32_t id = s->sample(logits.data());
            LLM8_FUZZ_CHECK(id >= 0 && id < n_vocab);
            LLM8_FUZZ_CHECK(probs[size_t(id)] > 0);
            double sum = 0;
            for (double q : probs) {
                LLM8_FUZZ_CHECK(q >= 0 && q <= 1);
                sum += q;
            }
            LLM8_FUZZ_CHECK(std::fabs(sum - 1.0) < 1e-6);
            s->accept(id);
        } catch (const llm8::Error& e) {
            LLM8_FUZZ_CHECK(e.kind() == llm8::ErrorKind::runtime);  // no finite logit
        }
    }
}

// ---- llm8-server's request parser
// ----------------------------------------------------------------

// Layout: a selector byte (chat, completion, tokenize, detokenize), then the request body. A
// body is either accepted, with every value inside the limits, or refused with an ApiError
// carrying a 4xx status and a message; the error body is JSON. The stop strings of an accepted
// request are run over the body's bytes as if they were generated text.
inline void fuzz_server_request(const uint8_t* data, size_t size) {
    Bytes in(data, size);
    const uint8_t which = in.take<uint8_t>();
    const std::string body = in.rest();
    llm8_server::Limits lim;
    lim.n_vocab = 512;
    lim.max_tokens = 512;
    lim.max_n = 4;
    const llm8_server::Defaults def;
    try {
        switch (which % 4) {
            case 0:
            case 1: {
                const llm8_server::GenRequest r =
                    which % 4 == 0 ? llm8_server::parse_chat_request(body, lim, def)
                                   : llm8_server::parse_completion_request(body, lim, def);
                LLM8_FUZZ_CHECK(r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= 512));
                LLM8_FUZZ_CHECK(r.n >= 1 && r.n <= 4);
                LLM8_FUZZ_CHECK(r.top_logprobs >= 0 && r.top_logprobs <= 20);
                LLM8_FUZZ_CHECK(int(r.stop.size()) <= lim.max_stop);
                LLM8_FUZZ_CHECK(!r.include_usage || r.stream);
                LLM8_FUZZ_CHECK(r.endpoint == llm8_server::Endpoint::chat ? !r.messages.empty()
                                                                          : true);
                for (const auto& kv : r.sampling.logit_bias)
                    LLM8_FUZZ_CHECK(kv.first >= 0 && kv.first < 512 && kv.second >= -100 &&
                                    kv.second <= 100);
                for (int32_t id : r.prompt_tokens) LLM8_FUZZ_CHECK(id >= 0 && id < 512);
                llm8::Sampler check(r.sampling, lim.n_vocab);  // every accepted set is valid
                llm8_server::StopMatcher stop(r.stop);
                std::string out;
                for (size_t i = 0; i < body.size(); i += 3) out += stop.push(body.substr(i, 3));
                out += stop.flush();
                LLM8_FUZZ_CHECK(out.size() <= body.size());
                if (!stop.stopped()) LLM8_FUZZ_CHECK(out == body);
                break;
            }
            case 2:
                llm8_server::parse_tokenize_request(body, lim);
                break;
            default:
                for (int32_t id : llm8_server::parse_detokenize_request(body, lim))
                    LLM8_FUZZ_CHECK(id >= 0 && id < 512);
        }
    } catch (const llm8_server::ApiError& e) {
        LLM8_FUZZ_CHECK(e.status >= 400 && e.status < 500);
        LLM8_FUZZ_CHECK(!e.message.empty());
        const nlohmann::json j = nlohmann::json::parse(llm8_server::error_json(e));
        LLM8_FUZZ_CHECK(j["error"]["message"].is_string());
    }
}

}  // namespace llm8_fuzz
