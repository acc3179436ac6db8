// Request parsing and validation (request.h). Field names, types and ranges follow OpenAI's API
// reference; llama-server's sampling extensions (top_k, min_p, repeat_penalty, ...) are
// accepted too, since clients written for it send them.
#include "server/request.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

namespace llm8_server {

using json = nlohmann::json;

ApiError::ApiError(int status_, std::string message_, std::string param_, std::string type_,
                   std::string code_)
    : status(status_),
      message(std::move(message_)),
      param(std::move(param_)),
      code(std::move(code_)) {
    if (!type_.empty()) type = std::move(type_);
}

bool constant_time_equal(std::string_view given, std::string_view secret) {
    // The loop runs over the given string only and never branches on its bytes, so the time
    // depends on the length the client chose, not on the secret's contents or length.
    unsigned diff = given.size() == secret.size() ? 0u : 1u;
    for (size_t i = 0; i < given.size(); ++i) {
        const unsigned char y =
            secret.empty() ? 0 : static_cast<unsigned char>(secret[i % secret.size()]);
        diff |= unsigned(static_cast<unsigned char>(given[i]) ^ y);
    }
    return diff == 0;
}

namespace {

std::string plain(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

ApiError bad(const std::string& param, const std::string& msg) {
    return ApiError(400, "'" + param + "': " + msg, param);
}

// Nesting deeper than the limit is refused before the parser sees it (the parser itself is
// iterative, but nothing here needs more than a few levels).
void check_depth(std::string_view body, int max_depth) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (char c : body) {
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                throw ApiError(400,
                               "JSON nested deeper than " + std::to_string(max_depth) + " levels");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

json parse_body(std::string_view body, const Limits& lim) {
    if (body.empty()) throw ApiError(400, "empty request body: expected a JSON object");
    check_depth(body, lim.max_depth);
    json j;
    try {
        j = json::parse(body.begin(), body.end());
    } catch (const json::exception& e) {
        // nlohmann's message names the byte position and what was wrong (including ill-formed
        // UTF-8 in a string).
        throw ApiError(400, std::string("invalid JSON in the request body: ") + e.what());
    }
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
    return j;
}

const char* type_name(const json& v) {
    return v.type_name();
}

int64_t get_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
    const std::string range =
        "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > uint64_t(std::numeric_limits<int64_t>::max()) || int64_t(u) > hi || int64_t(u) < lo)
            throw bad(name, range);
        return int64_t(u);
    }
    if (v.is_number_integer()) {
        const int64_t x = v.get<int64_t>();
        if (x < lo || x > hi) throw bad(name, range);
        return x;
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && d >= double(lo) && d <= double(hi))
            return int64_t(d);
        throw bad(name, range);
    }
    throw bad(name, std::string("expected an integer, got ") + type_name(v));
}

float get_float(const json& v, const std::string& name, double lo, double hi) {
    if (!v.is_number()) throw bad(name, std::string("expected a number, got ") + type_name(v));
    const double d = v.get<double>();
    if (!(d >= lo && d <= hi))
        throw bad(name, "must be a number from " + plain(lo) + " to " + plain(hi));
    return float(d);
}

bool get_bool(const json& v, const std::string& name) {
    if (!v.is_boolean()) throw bad(name, std::string("expected a boolean, got ") + type_name(v));
    return v.get<bool>();
}

std::string get_string(const json& v, const std::string& name, size_t max_len) {
    if (!v.is_string()) throw bad(name, std::string("expected a string, got ") + type_name(v));
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() > max_len) throw bad(name, "longer than " + std::to_string(max_len) + " bytes");
    return s;
}

void parse_stop(const json& v, const Limits& lim, GenRequest& r) {
    if (v.is_string()) {
        const std::string s = get_string(v, "stop", lim.max_stop_len);
        if (!s.empty()) r.stop.push_back(s);
        return;
    }
    if (!v.is_array())
        throw bad("stop",
                  std::string("expected a string or an array of strings, got ") + type_name(v));
    if (int(v.size()) > lim.max_stop)
        throw bad("stop", "at most " + std::to_string(lim.max_stop) + " stop strings");
    for (const json& e : v) {
        const std::string s = get_string(e, "stop", lim.max_stop_len);
        if (!s.empty()) r.stop.push_back(s);
    }
}

void parse_logit_bias(const json& v, const Limits& lim, GenRequest& r) {
    if (!v.is_object())
        throw bad("logit_bias", std::string("expected an object mapping token ids to biases, "
                                            "got ") +
                                    type_name(v));
    if (int(v.size()) > lim.max_logit_bias)
        throw bad("logit_bias", "at most " + std::to_string(lim.max_logit_bias) + " entries");
    for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string& key = it.key();
        int64_t id = -1;
        if (!key.empty() && key.size() <= 10 &&
            key.find_first_not_of("0123456789") == std::string::npos)
            id = std::stoll(key);
        if (id < 0 || id >= lim.n_vocab)
            throw bad("logit_bias", "key '" + key.substr(0, 32) + "' is not a token id from 0 to " +
                                        std::to_string(lim.n_vocab - 1));
        r.sampling.logit_bias[int32_t(id)] = get_float(it.value(), "logit_bias", -100, 100);
    }
}

void parse_seed(const json& v, GenRequest& r) {
    if (v.is_number_unsigned()) {
        r.sampling.seed = v.get<uint64_t>();
    } else if (v.is_number_integer()) {
        const int64_t s = v.get<int64_t>();
        if (s == -1) return;  // llama-server's "random"
        r.sampling.seed = uint64_t(s);
    } else {
        throw bad("seed", std::string("expected an integer, got ") + type_name(v));
    }
    r.seed_given = true;
}

// A field handler; null values count as absent (clients send "field": null for defaults).
using Handler = std::function<void(const json&)>;

void apply_fields(const json& body, const std::map<std::string, Handler>& known) {
    for (auto it = body.begin(); it != body.end(); ++it) {
        auto h = known.find(it.key());
        if (h == known.end())
            throw ApiError(
                400, "unrecognized request argument supplied: '" + it.key().substr(0, 64) + "'",
                it.key().substr(0, 64), "", "unknown_parameter");
        if (!it.value().is_null()) h->second(it.value());
    }
}

void ignore(const json&) {}

// The fields chat and completion requests share.
std::map<std::string, Handler> common_fields(GenRequest& r, const Limits& lim) {
    std::map<std::string, Handler> f;
    f["model"] = [&r](const json& v) { r.model = get_string(v, "model", 256); };
    auto max_tokens = [&r, &lim](const char* name) {
        return [&r, &lim, name](const json& v) {
            r.max_tokens = int(get_int(v, name, 1, lim.max_tokens));
        };
    };
    f["max_tokens"] = max_tokens("max_tokens");
    f["max_completion_tokens"] = max_tokens("max_completion_tokens");
    f["n_predict"] = [&r, &lim](const json& v) {  // llama-server's name; -1: no limit
        const int64_t n = get_int(v, "n_predict", -1, lim.max_tokens);
        if (n == 0)
            throw bad("n_predict", "must be -1 or from 1 to " + std::to_string(lim.max_tokens));
        r.max_tokens = int(n);
    };
    f["temperature"] = [&r](const json& v) {
        r.sampling.temperature = get_float(v, "temperature", 0, 2);
    };
    f["top_p"] = [&r](const json& v) { r.sampling.top_p = get_float(v, "top_p", 0, 1); };
    f["top_k"] = [&r](const json& v) {
        r.sampling.top_k = int32_t(get_int(v, "top_k", 0, std::numeric_limits<int32_t>::max()));
    };
    f["min_p"] = [&r](const json& v) { r.sampling.min_p = get_float(v, "min_p", 0, 1); };
    f["presence_penalty"] = [&r](const json& v) {
        r.sampling.presence_penalty = get_float(v, "presence_penalty", -2, 2);
    };
    f["frequency_penalty"] = [&r](const json& v) {
        r.sampling.frequency_penalty = get_float(v, "frequency_penalty", -2, 2);
    };
    f["repeat_penalty"] = [&r](const json& v) {
        r.sampling.repeat_penalty = get_float(v, "repeat_penalty", 0.01, 100);
    };
    f["repeat_last_n"] = [&r, &lim](const json& v) {
        r.sampling.penalty_last_n = int32_t(get_int(v, "repeat_last_n", -1, lim.max_tokens));
    };
    f["seed"] = [&r](const json& v) { parse_seed(v, r); };
    f["stop"] = [&r, &lim](const json& v) { parse_stop(v, lim, r); };
    f["logit_bias"] = [&r, &lim](const json& v) { parse_logit_bias(v, lim, r); };
    f["n"] = [&r, &lim](const json& v) { r.n = int(get_int(v, "n", 1, lim.max_n)); };
    f["stream"] = [&r](const json& v) { r.stream = get_bool(v, "stream"); };
    f["stream_options"] = [&r](const json& v) {
        if (!v.is_object()) throw bad("stream_options", "expected an object");
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (it.key() == "include_usage") {
                if (!it.value().is_null())
                    r.include_usage = get_bool(it.value(), "stream_options.include_usage");
            } else if (it.key() != "include_obfuscation") {
                throw bad("stream_options", "unrecognized field '" + it.key().substr(0, 64) + "'");
            }
        }
    };
    f["ignore_eos"] = [&r](const json& v) { r.ignore_eos = get_bool(v, "ignore_eos"); };
    f["user"] = [](const json& v) { get_string(v, "user", 1024); };
    // Accepted and without effect here: bookkeeping fields of OpenAI's API and llama-server's
    // cache switch (llm8 always reuses cached prefixes).
    for (const char* k : {"metadata", "store", "service_tier", "cache_prompt", "prompt_cache_key",
                          "safety_identifier"})
        f[k] = ignore;
    return f;
}

void check_stream_options(const GenRequest& r) {
    if (r.include_usage && !r.stream)
        throw bad("stream_options", "only allowed when 'stream' is true");
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json& v, const Limits& lim) {
    if (v.is_string()) return get_string(v, "messages.content", lim.max_text);
    if (v.is_array()) {
        std::string out;
        for (const json& part : v) {
            if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
                throw bad("messages.content", "each content part must be an object with a type");
            const std::string& t = part["type"].get_ref<const std::string&>();
            if (t != "text")
                throw bad("messages.content", "content parts of type '" + t.substr(0, 32) +
                                                  "' are not supported (text only)");
            if (!part.contains("text")) throw bad("messages.content", "text part without 'text'");
            out += get_string(part["text"], "messages.content", lim.max_text);
            if (out.size() > lim.max_text)
                throw bad("messages.content",
                          "longer than " + std::to_string(lim.max_text) + " bytes");
        }
        return out;
    }
    throw bad("messages.content", std::string("expected a string or an array of content parts, "
                                              "got ") +
                                      type_name(v));
}

void parse_messages(const json& v, const Limits& lim, GenRequest& r) {
    if (!v.is_array()) throw bad("messages", std::string("expected an array, got ") + type_name(v));
    if (v.empty()) throw bad("messages", "must hold at least one message");
    if (int(v.size()) > lim.max_messages)
        throw bad("messages", "at most " + std::to_string(lim.max_messages) + " messages");
    size_t total = 0;
    for (const json& m : v) {
        if (!m.is_object())
            throw bad("messages",
                      std::string("each message must be an object, got ") + type_name(m));
        llm8::ChatMessage msg;
        bool has_role = false, has_content = false;
        for (auto it = m.begin(); it != m.end(); ++it) {
            const std::string& k = it.key();
            const json& x = it.value();
            if (k == "role") {
                msg.role = get_string(x, "messages.role", 32);
                has_role = true;
            } else if (k == "content") {
                if (!x.is_null()) {
                    msg.content = message_content(x, lim);
                    has_content = true;
                }
            } else if (k == "name") {
                get_string(x, "messages.name", 256);
            } else if (k == "tool_calls" || k == "function_call" || k == "tool_call_id") {
                throw bad("messages." + k, "tool calls are not supported by llm8-server");
            } else if (k != "refusal") {
                throw bad("messages", "unrecognized message field '" + k.substr(0, 64) + "'");
            }
        }
        if (!has_role) throw bad("messages.role", "every message needs a role");
        if (msg.role == "developer") msg.role = "system";
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
            throw bad("messages.role", "'" + msg.role +
                                           "' is not supported (system, developer, user, "
                                           "assistant)");
        if (!has_content && msg.role != "assistant")
            throw bad("messages.content", "a " + msg.role + " message needs content");
        total += msg.content.size();
        if (total > lim.max_text)
            throw bad("messages",
                      "more than " + std::to_string(lim.max_text) + " bytes of content");
        r.messages.push_back(std::move(msg));
    }
}

void parse_prompt(const json& v, const Limits& lim, GenRequest& r) {
    auto ids = [&](const json& a) {
        if (a.size() > lim.max_prompt_tokens) throw bad("prompt", "too many token ids");
        for (const json& e : a) {
            const int64_t id = get_int(e, "prompt", 0, int64_t(lim.n_vocab) - 1);
            r.prompt_tokens.push_back(int32_t(id));
        }
        r.prompt_is_tokens = true;
    };
    if (v.is_string()) {
        r.prompt = get_string(v, "prompt", lim.max_text);
    } else if (v.is_array() && v.size() == 1 && v[0].is_string()) {
        r.prompt = get_string(v[0], "prompt", lim.max_text);
    } else if (v.is_array() && v.size() == 1 && v[0].is_array()) {
        ids(v[0]);
    } else if (v.is_array() && !v.empty() && v[0].is_number()) {
        ids(v);
    } else if (v.is_array() && v.size() > 1) {
        throw bad("prompt", "a batch of prompts is not supported; send one request per prompt");
    } else {
        throw bad("prompt", std::string("expected a string or an array of token ids, got ") +
                                (v.is_array() ? "an empty array" : type_name(v)));
    }
}

GenRequest start(const Defaults& def, Endpoint e) {
    GenRequest r;
    r.endpoint = e;
    r.sampling = def.sampling;
    r.seed_given = def.seed_fixed;
    r.max_tokens = def.max_tokens;
    return r;
}

}  // namespace

GenRequest parse_chat_request(std::string_view body, const Limits& lim, const Defaults& def) {
    const json j = parse_body(body, lim);
    GenRequest r = start(def, Endpoint::chat);
    bool has_messages = false;
    std::map<std::string, Handler> f = common_fields(r, lim);
    f["messages"] = [&](const json& v) {
        parse_messages(v, lim, r);
        has_messages = true;
    };
    f["logprobs"] = [&r](const json& v) { r.logprobs = get_bool(v, "logprobs"); };
    f["top_logprobs"] = [&r, &lim](const json& v) {
        r.top_logprobs = int(get_int(v, "top_logprobs", 0, lim.max_top_logprobs));
    };
    f["response_format"] = [](const json& v) {
        if (!v.is_object() || !v.contains("type") || v["type"] != "text")
            throw bad("response_format", "only {\"type\": \"text\"} is supported");
    };
    f["tools"] = [](const json& v) {
        if (!v.is_array() || !v.empty()) throw bad("tools", "tools are not supported");
    };
    f["tool_choice"] = [](const json& v) {
        if (v != "none") throw bad("tool_choice", "tools are not supported");
    };
    f["parallel_tool_calls"] = ignore;
    apply_fields(j, f);
    if (!has_messages) throw ApiError(400, "'messages' is required", "messages");
    if (r.top_logprobs > 0 && !r.logprobs)
        throw bad("top_logprobs", "needs 'logprobs' set to true");
    check_stream_options(r);
    return r;
}

GenRequest parse_completion_request(std::string_view body, const Limits& lim, const Defaults& def) {
    const json j = parse_body(body, lim);
    GenRequest r = start(def, Endpoint::completion);
    bool has_prompt = false;
    std::map<std::string, Handler> f = common_fields(r, lim);
    f["prompt"] = [&](const json& v) {
        parse_prompt(v, lim, r);
        has_prompt = true;
    };
    // Completions' logprobs is the number of alternatives per token (0..5).
    f["logprobs"] = [&r](const json& v) {
        r.top_logprobs = int(get_int(v, "logprobs", 0, 5));
        r.logprobs = true;
    };
    f["echo"] = [](const json& v) {
        if (get_bool(v, "echo")) throw bad("echo", "echo is not supported");
    };
    f["best_of"] = [](const json& v) {
        if (get_int(v, "best_of", 1, 1) != 1) throw bad("best_of", "must be 1");
    };
    f["suffix"] = [](const json& v) {
        if (!get_string(v, "suffix", 1 << 20).empty())
            throw bad("suffix", "suffixes (fill in the middle) are not supported");
    };
    apply_fields(j, f);
    if (!has_prompt) throw ApiError(400, "'prompt' is required", "prompt");
    check_stream_options(r);
    return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body, const Limits& lim) {
    const json j = parse_body(body, lim);
    TokenizeRequest r;
    bool has_content = false;
    std::map<std::string, Handler> f;
    f["content"] = [&](const json& v) {
        r.content = get_string(v, "content", lim.max_text);
        has_content = true;
    };
    f["add_special"] = [&](const json& v) { r.add_special = get_bool(v, "add_special"); };
    f["with_pieces"] = [&](const json& v) { r.with_pieces = get_bool(v, "with_pieces"); };
    f["model"] = [](const json& v) { get_string(v, "model", 256); };
    apply_fields(j, f);
    if (!has_content) throw ApiError(400, "'content' is required", "content");
    return r;
}

std::vector<int32_t> parse_detokenize_request(std::string_view body, const Limits& lim) {
    const json j = parse_body(body, lim);
    std::vector<int32_t> ids;
    bool has_tokens = false;
    std::map<std::string, Handler> f;
    f["tokens"] = [&](const json& v) {
        if (!v.is_array())
            throw bad("tokens", std::string("expected an array of token ids, got ") + type_name(v));
        if (v.size() > lim.max_prompt_tokens) throw bad("tokens", "too many token ids");
        for (const json& e : v) ids.push_back(int32_t(get_int(e, "tokens", 0, lim.n_vocab - 1)));
        has_tokens = true;
    };
    f["model"] = [](const json& v) { get_string(v, "model", 256); };
    apply_fields(j, f);
    if (!has_tokens) throw ApiError(400, "'tokens' is required", "tokens");
    return ids;
}

}  // namespace llm8_server
