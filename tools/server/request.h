// llm8-server's request layer: JSON bodies of the OpenAI endpoints (and llama-server's
// /tokenize, /detokenize) parsed and validated into plain structs, with no HTTP and no model.
// Everything a client sends is untrusted: every field is type- and range-checked, unknown
// fields are refused (as OpenAI does), and every failure is an ApiError that carries the HTTP
// status and OpenAI's error shape. tests/test_server_request.cpp checks it; fuzz/ fuzzes it.
#pragma once
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "llm8/sampling.h"
#include "tokenizer/chat_template.h"

namespace llm8_server {

// An answer that is not a success: the HTTP status and OpenAI's
// {"error": {"message", "type", "param", "code"}} (error_json in response.h).
struct ApiError : std::exception {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // the field at fault, "" when none
    std::string code;   // a machine-readable reason, "" when none

    ApiError(int status_, std::string message_, std::string param_ = "", std::string type_ = "",
             std::string code_ = "");
    const char* what() const noexcept override { return message.c_str(); }
};

// What the server allows; fixed at startup from its flags and the model.
struct Limits {
    int32_t n_vocab = 0;        // token ids (logit_bias keys, /detokenize) are below this
    int max_tokens = 4096;      // the largest max_tokens accepted (the context per sequence)
    int max_n = 1;              // choices per request (the parallel sequences)
    int max_messages = 4096;    // chat turns
    size_t max_text = 4 << 20;  // bytes of one prompt or message
    int max_stop = 8;           // stop strings (OpenAI allows 4)
    size_t max_stop_len = 512;  // bytes of one stop string
    int max_logit_bias = 4096;  // entries
    int max_top_logprobs = 20;  // OpenAI's bound
    int max_depth = 32;         // JSON nesting
    size_t max_prompt_tokens = 1 << 20;  // token ids given as the prompt or to /detokenize
};

// Server-side defaults a request may override (the sampling flags of the command line).
struct Defaults {
    llm8::SamplerParams sampling;
    bool seed_fixed = false;  // -s given: requests without a seed use sampling.seed
    int max_tokens = -1;      // -n: -1 means until the end of text or the context
};

enum class Endpoint { chat, completion };

// A validated generation request.
struct GenRequest {
    Endpoint endpoint = Endpoint::chat;
    std::string model;
    std::vector<llm8::ChatMessage> messages;  // chat
    std::string prompt;                       // completion, as text ...
    std::vector<int32_t> prompt_tokens;       // ... or as token ids
    bool prompt_is_tokens = false;
    llm8::SamplerParams sampling;
    bool seed_given = false;  // sampling.seed came from the request (or -s)
    int max_tokens = -1;      // -1: until end of text or the context is full
    int n = 1;                // choices
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    std::vector<std::string> stop;
    bool logprobs = false;
    int top_logprobs = 0;
    bool ignore_eos = false;  // llama-server's extension: keep going after end of text
};

// POST /v1/chat/completions and POST /v1/completions. Throws ApiError.
GenRequest parse_chat_request(std::string_view body, const Limits& lim, const Defaults& def);
GenRequest parse_completion_request(std::string_view body, const Limits& lim, const Defaults& def);

// POST /tokenize: {"content": TEXT, "add_special": bool, "with_pieces": bool}.
struct TokenizeRequest {
    std::string content;
    bool add_special = false;
    bool with_pieces = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body, const Limits& lim);

// POST /detokenize: {"tokens": [ids]}, every id in [0, n_vocab).
std::vector<int32_t> parse_detokenize_request(std::string_view body, const Limits& lim);

// API key check: whether `given` equals `secret`, in time that depends only on given's length.
bool constant_time_equal(std::string_view given, std::string_view secret);

}  // namespace llm8_server
