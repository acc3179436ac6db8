// Response bodies (response.h), in the shapes of OpenAI's API reference.
#include "server/response.h"

#include <cmath>
#include <cstdio>

namespace llm8_server {

using json = nlohmann::json;

const char* const kSseDone = "data: [DONE]\n\n";

json error_object(const ApiError& e) {
    json err = {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
    return {{"error", err}};
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_json(const ApiError& e) {
    return dump(error_object(e));
}

json usage_json(const Usage& u) {
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json finish(const std::string& r) {
    return r.empty() ? json(nullptr) : json(r);
}

// A logprob that JSON can carry (-inf for a banned token is not JSON).
double lp_value(float x) {
    return std::isfinite(x) ? double(x) : -9999.0;
}

json bytes_of(const std::string& s) {
    json a = json::array();
    for (unsigned char c : s) a.push_back(int(c));
    return a;
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}
json chat_logprobs(const std::vector<TokenLogprob>& lps) {
    json content = json::array();
    for (const TokenLogprob& t : lps) {
        json top = json::array();
        for (const auto& a : t.top)
            top.push_back({{"token", a.first},
                           {"logprob", lp_value(a.second)},
                           {"bytes", bytes_of(a.first)}});
        content.push_back({{"token", t.token},
                           {"logprob", lp_value(t.logprob)},
                           {"bytes", bytes_of(t.token)},
                           {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
}

// Completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}
json completion_logprobs(const std::vector<TokenLogprob>& lps, size_t offset0) {
    json tokens = json::array(), values = json::array(), tops = json::array(),
         offsets = json::array();
    size_t off = offset0;
    for (const TokenLogprob& t : lps) {
        tokens.push_back(t.token);
        values.push_back(lp_value(t.logprob));
        json top = json::object();
        for (const auto& a : t.top) top[a.first] = lp_value(a.second);
        tops.push_back(top);
        offsets.push_back(off);
        off += t.token.size();
    }
    return {{"tokens", tokens},
            {"token_logprobs", values},
            {"top_logprobs", tops},
            {"text_offset", offsets}};
}

}  // namespace

json chat_response(const ResponseMeta& m, const std::vector<ChoiceText>& choices, const Usage& u,
                   bool logprobs) {
    json cs = json::array();
    for (const ChoiceText& c : choices)
        cs.push_back(
            {{"index", c.index},
             {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
             {"logprobs", logprobs ? chat_logprobs(c.logprobs) : json(nullptr)},
             {"finish_reason", finish(c.finish_reason)}});
    return {{"id", m.id},
            {"object", "chat.completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices", cs},
            {"usage", usage_json(u)},
            {"system_fingerprint", "llm8"}};
}

json completion_response(const ResponseMeta& m, const std::vector<ChoiceText>& choices,
                         const Usage& u, bool logprobs) {
    json cs = json::array();
    for (const ChoiceText& c : choices)
        cs.push_back({{"index", c.index},
                      {"text", c.text},
                      {"logprobs", logprobs ? completion_logprobs(c.logprobs, 0) : json(nullptr)},
                      {"finish_reason", finish(c.finish_reason)}});
    return {{"id", m.id},
            {"object", "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices", cs},
            {"usage", usage_json(u)},
            {"system_fingerprint", "llm8"}};
}

json chat_chunk(const ResponseMeta& m, const ChoiceText& c, bool first, bool logprobs) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!c.text.empty() || first) delta["content"] = c.text;
    json choice = {
        {"index", c.index},
        {"delta", delta},
        {"logprobs", logprobs && !c.logprobs.empty() ? chat_logprobs(c.logprobs) : json(nullptr)},
        {"finish_reason", finish(c.finish_reason)}};
    return {{"id", m.id},
            {"object", "chat.completion.chunk"},
            {"created", m.created},
            {"model", m.model},
            {"system_fingerprint", "llm8"},
            {"choices", json::array({choice})}};
}

json completion_chunk(const ResponseMeta& m, const ChoiceText& c, bool logprobs) {
    json choice = {{"index", c.index},
                   {"text", c.text},
                   {"logprobs", logprobs && !c.logprobs.empty() ? completion_logprobs(c.logprobs, 0)
                                                                : json(nullptr)},
                   {"finish_reason", finish(c.finish_reason)}};
    return {{"id", m.id},       {"object", "text_completion"},  {"created", m.created},
            {"model", m.model}, {"system_fingerprint", "llm8"}, {"choices", json::array({choice})}};
}

json usage_chunk(const ResponseMeta& m, bool chat, const Usage& u) {
    return {{"id", m.id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"system_fingerprint", "llm8"},
            {"choices", json::array()},
            {"usage", usage_json(u)}};
}

std::string sse_event(const json& j) {
    return "data: " + dump(j) + "\n\n";
}

std::string prometheus_text(const MetricsSnapshot& s) {
    std::string out;
    auto metric = [&out](const char* name, const char* type, const char* help, double v) {
        char line[512];
        std::snprintf(line, sizeof line, "# HELP llm8_%s %s\n# TYPE llm8_%s %s\nllm8_%s %.17g\n",
                      name, help, name, type, name, v);
        out += line;
    };
    metric("requests_total", "counter", "Generation requests accepted into the queue.",
           double(s.requests_total));
    metric("requests_finished_total", "counter", "Requests whose every choice finished.",
           double(s.requests_finished));
    metric("requests_cancelled_total", "counter",
           "Requests cancelled because the client went away (their KV blocks freed at once).",
           double(s.requests_cancelled));
    metric("requests_rejected_total", "counter", "Requests refused with 503: the queue was full.",
           double(s.requests_rejected));
    metric("requests_failed_total", "counter", "Requests that failed during generation.",
           double(s.requests_failed));
    metric("http_errors_total", "counter", "Answers with a 4xx or 5xx status.",
           double(s.http_errors));
    metric("prompt_tokens_total", "counter", "Prompt tokens of admitted requests.",
           double(s.prompt_tokens));
    metric("prompt_tokens_reused_total", "counter",
           "Prompt tokens not computed: their KV was shared from a cached prefix.",
           double(s.prompt_tokens_reused));
    metric("tokens_predicted_total", "counter", "Generated tokens.", double(s.generated_tokens));
    metric("steps_total", "counter", "Forward passes run.", double(s.steps));
    metric("busy_seconds_total", "counter", "Seconds spent in forward passes and sampling.",
           s.busy_seconds);
    metric("queue_length", "gauge", "Requests waiting for a free sequence.",
           double(s.queue_length));
    metric("sequences_running", "gauge", "Sequences being prefilled or generating.",
           double(s.sequences_running));
    metric("parallel_sequences", "gauge", "Sequences that can run at once (-np).",
           double(s.n_parallel));
    metric("batch_tokens", "gauge", "Tokens in the last step.", double(s.batch_tokens));
    metric("batch_sequences", "gauge", "Sequences in the last step.", double(s.batch_sequences));
    metric("cached_prefixes", "gauge", "Finished sequences kept in the KV cache for reuse.",
           double(s.cached_prefixes));
    metric("kv_blocks_total", "gauge", "Blocks in the KV cache pool.", double(s.kv_blocks_total));
    metric("kv_blocks_used", "gauge", "KV cache blocks in use.", double(s.kv_blocks_used));
    metric("kv_blocks_shared", "gauge", "KV cache blocks held by two or more sequences.",
           double(s.kv_blocks_shared));
    metric("kv_block_size", "gauge", "Tokens per KV cache block.", double(s.kv_block_size));
    return out;
}

}  // namespace llm8_server
