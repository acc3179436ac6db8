// Built-in chat templates, chosen the way llama.cpp chooses them (llama-chat.cpp): a GGUF's
// tokenizer.chat_template (Jinja source) is recognised by substrings, never executed, and the
// conversation is rendered by hand-written code per template.
//
// The rendered text leaves out the BOS token (tokenize it with add_special = true to get it)
// and contains control tokens as text, so tokenize it with parse_special = true.
#pragma once
#include <string>
#include <vector>

namespace llm8 {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

// Names that render_chat_template accepts: chatml, llama2, llama2-sys, llama2-sys-bos,
// llama2-sys-strip, llama3, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7,
// mistral-v7-tekken, phi3, phi4, deepseek (coder), deepseek2, deepseek3 (V3 and the R1
// distills), gemma, zephyr, falcon3, llama4, granite. Aliases: "qwen" -> chatml, "phi-3" ->
// phi3, "deepseek-r1" -> deepseek3.
std::vector<std::string> chat_template_names();
bool is_chat_template_name(const std::string& name);

// The built-in template for a Jinja template source or a template name; "" when unknown. A
// name is returned as is (an alias resolved); "mistral" and other text starting with
// "mistral" go through llama.cpp's Mistral heuristics, which give llama2 for plain names.
std::string detect_chat_template(const std::string& jinja_source);

// Renders the conversation; add_generation_prompt appends the assistant header where the
// template has one. Throws llm8::Error(invalid_arg) for an unknown name.
std::string render_chat_template(const std::string& name, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);

// The template the CLI uses: override_name when given (Error(invalid_arg) listing the names if
// it is not one), else what the GGUF's template is recognised as, else chatml (llama.cpp's
// fallback).
std::string choose_chat_template(const std::string& override_name,
                                 const std::string& gguf_template);

}  // namespace llm8
