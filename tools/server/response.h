// llm8-server's response bodies: OpenAI's objects (chat.completion, chat.completion.chunk,
// text_completion, list of models, error), and the Prometheus text of /metrics. Pure functions
// of plain structs, so that tests can check the shapes without a server.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "server/request.h"

namespace llm8_server {

// One generated token with its log-probability and the most likely alternatives at its step
// (log-softmax of the model's logits, before the sampler's filters).
struct TokenLogprob {
    std::string token;  // the token's text (bytes; a piece of a UTF-8 character is possible)
    float logprob = 0;
    std::vector<std::pair<std::string, float>> top;
};

// What one choice produced (a whole answer, or the part a stream chunk carries).
struct ChoiceText {
    int index = 0;
    std::string text;
    std::vector<TokenLogprob> logprobs;
    std::string finish_reason;  // "" (still running), "stop", "length"
};

struct Usage {
    int prompt_tokens = 0;
    int completion_tokens = 0;
    int cached_tokens = 0;  // prompt tokens whose KV came from an earlier request (prefix reuse)
};

// Identity of one response: "chatcmpl-..." / "cmpl-...", unix time, model name.
struct ResponseMeta {
    std::string id;
    int64_t created = 0;
    std::string model;
};

nlohmann::json error_object(const ApiError& e);
std::string error_json(const ApiError& e);
// JSON text for the wire; generated text is bytes and may hold an incomplete UTF-8 character
// at the end of a stream, which is replaced by U+FFFD rather than failing.
std::string dump(const nlohmann::json& j);

nlohmann::json usage_json(const Usage& u);
// Non-streaming answers.
nlohmann::json chat_response(const ResponseMeta& m, const std::vector<ChoiceText>& choices,
                             const Usage& u, bool logprobs);
nlohmann::json completion_response(const ResponseMeta& m, const std::vector<ChoiceText>& choices,
                                   const Usage& u, bool logprobs);
// Stream chunks. `first` adds the assistant role to a chat delta. The usage chunk
// (stream_options.include_usage) has no choices.
nlohmann::json chat_chunk(const ResponseMeta& m, const ChoiceText& c, bool first, bool logprobs);
nlohmann::json completion_chunk(const ResponseMeta& m, const ChoiceText& c, bool logprobs);
nlohmann::json usage_chunk(const ResponseMeta& m, bool chat, const Usage& u);
// "data: JSON\n\n", and the terminator "data: [DONE]\n\n".
std::string sse_event(const nlohmann::json& j);
extern const char* const kSseDone;

// What /metrics reports (a snapshot taken by the scheduler after each step).
struct MetricsSnapshot {
    uint64_t requests_total = 0;        // accepted into the queue
    uint64_t requests_finished = 0;     // every choice finished
    uint64_t requests_cancelled = 0;    // the client went away
    uint64_t requests_rejected = 0;     // the queue was full (503)
    uint64_t requests_failed = 0;       // an error during generation
    uint64_t http_errors = 0;           // 4xx/5xx answers of every endpoint
    uint64_t prompt_tokens = 0;         // prompt tokens of admitted requests
    uint64_t prompt_tokens_reused = 0;  // of which taken from cached prefixes
    uint64_t generated_tokens = 0;
    uint64_t steps = 0;  // forward passes
    double busy_seconds = 0;
    int queue_length = 0;
    int sequences_running = 0;
    int batch_tokens = 0;     // tokens in the last step
    int batch_sequences = 0;  // sequences in the last step
    int cached_prefixes = 0;  // finished sequences kept for prefix reuse
    int kv_blocks_total = 0;
    int kv_blocks_used = 0;
    int kv_blocks_shared = 0;
    int kv_block_size = 0;
    int n_parallel = 0;
};
std::string prometheus_text(const MetricsSnapshot& s);

}  // namespace llm8_server
