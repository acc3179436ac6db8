#include "tokenizer/chat_template.h"

#include <cctype>
#include <map>

#include "common/error.h"

namespace llm8 {

namespace {

// U+FF5C FULLWIDTH VERTICAL LINE and U+2581 as DeepSeek writes its special tokens.
#define LLM8_FWBAR "\xEF\xBD\x9C"
#define LLM8_SP "\xE2\x96\x81"
const char* const k_ds_user = "<" LLM8_FWBAR "User" LLM8_FWBAR ">";
const char* const k_ds_assistant = "<" LLM8_FWBAR "Assistant" LLM8_FWBAR ">";
const char* const k_ds_eos = "<" LLM8_FWBAR "end" LLM8_SP "of" LLM8_SP "sentence" LLM8_FWBAR ">";
#undef LLM8_FWBAR
#undef LLM8_SP

const std::vector<std::string>& names() {
    static const std::vector<std::string> n = {
        "chatml",
        "llama2",
        "llama2-sys",
        "llama2-sys-bos",
        "llama2-sys-strip",
        "llama3",
        "mistral-v1",
        "mistral-v3",
        "mistral-v3-tekken",
        "mistral-v7",
        "mistral-v7-tekken",
        "phi3",
        "phi4",
        "deepseek",
        "deepseek2",
        "deepseek3",
        "gemma",
        "zephyr",
        "falcon3",
        "llama4",
        "granite",
    };
    return n;
}

const std::map<std::string, std::string>& aliases() {
    static const std::map<std::string, std::string> a = {
        {"qwen", "chatml"}, {"phi-3", "phi3"}, {"deepseek-r1", "deepseek3"}};
    return a;
}

std::string resolve(const std::string& name) {
    auto it = aliases().find(name);
    return it == aliases().end() ? name : it->second;
}

std::string trim(const std::string& s) {
    size_t b = 0;
    size_t e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

}  // namespace

std::vector<std::string> chat_template_names() {
    return names();
}

bool is_chat_template_name(const std::string& name) {
    const std::string n = resolve(name);
    for (const std::string& k : names()) {
        if (k == n) return true;
    }
    return false;
}

std::string detect_chat_template(const std::string& t) {
    if (is_chat_template_name(t)) return resolve(t);
    auto has = [&t](const char* s) { return t.find(s) != std::string::npos; };
    // Same order of checks as llama.cpp; templates we do not render come back as "".
    if (has("<|im_start|>")) {
        if (has("<|im_sep|>")) return "phi4";
        if (has("<end_of_utterance>")) return "";  // SmolVLM
        return "chatml";
    }
    if (t.rfind("mistral", 0) == 0 || has("[INST]")) {
        if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
        if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
            if (has(" [INST]")) return "mistral-v1";
            if (has("\"[INST]\"")) return "mistral-v3-tekken";
            return "mistral-v3";
        }
        if (has("content.strip()")) return "llama2-sys-strip";
        if (has("bos_token + '[INST]")) return "llama2-sys-bos";
        if (has("<<SYS>>")) return "llama2-sys";
        return "llama2";
    }
    if (has("<|assistant|>") && has("<|end|>")) return "phi3";
    if (has("[gMASK]<sop>")) return "";  // ChatGLM4
    if (has("<|assistant|>") && has("<|user|>")) return has("</s>") ? "falcon3" : "";
    if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "";  // GLM-Edge
    if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
    if (has("bos_token + message['role']")) return "";  // Monarch
    if (has("<start_of_turn>")) return "gemma";
    if (has("'\\n\\nAssistant: ' + eos_token")) return "";  // Orion
    if (has("GPT4 Correct ")) return "";                    // OpenChat
    if (has("USER: ") && has("ASSISTANT: ")) return "";     // Vicuna
    if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
    if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "";  // Command-R
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
    if (has("[gMASK]sop")) return "";                  // ChatGLM3
    if (has("<\xE7\x94\xA8\xE6\x88\xB7>")) return "";  // MiniCPM
    if (has("'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
    if (has(k_ds_assistant) && has(k_ds_user) && has(k_ds_eos)) return "deepseek3";
    if (has("<|start_of_role|>")) return "granite";
    if (has("<|header_start|>") && has("<|header_end|>")) return "llama4";
    return "";
}

std::string render_chat_template(const std::string& name_in, const std::vector<ChatMessage>& chat,
                                 bool add_ass) {
    const std::string name = resolve(name_in);
    std::string ss;
    if (name == "chatml") {
        for (const auto& m : chat)
            ss += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        if (add_ass) ss += "<|im_start|>assistant\n";
    } else if (name == "mistral-v7" || name == "mistral-v7-tekken") {
        const std::string sp = name == "mistral-v7" ? " " : "";
        for (const auto& m : chat) {
            if (m.role == "system") {
                ss += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
            } else if (m.role == "user") {
                ss += "[INST]" + sp + m.content + "[/INST]";
            } else {
                ss += sp + m.content + "</s>";
            }
        }
    } else if (name == "mistral-v1" || name == "mistral-v3" || name == "mistral-v3-tekken") {
        const std::string lead = name == "mistral-v1" ? " " : "";
        const std::string trail = name == "mistral-v3-tekken" ? "" : " ";
        const bool trim_assistant = name == "mistral-v3";
        bool inside_turn = false;
        for (const auto& m : chat) {
            if (!inside_turn) {
                ss += lead + "[INST]" + trail;
                inside_turn = true;
            }
            if (m.role == "system") {
                ss += m.content + "\n\n";
            } else if (m.role == "user") {
                ss += m.content + lead + "[/INST]";
            } else {
                ss += trail + (trim_assistant ? trim(m.content) : m.content) + "</s>";
                inside_turn = false;
            }
        }
    } else if (name == "llama2" || name == "llama2-sys" || name == "llama2-sys-bos" ||
               name == "llama2-sys-strip") {
        const bool system = name != "llama2";
        const bool bos_inside = name == "llama2-sys-bos";
        const bool strip = name == "llama2-sys-strip";
        bool inside_turn = true;  // the first [INST] comes without BOS (the tokenizer adds it)
        ss += "[INST] ";
        for (const auto& m : chat) {
            const std::string content = strip ? trim(m.content) : m.content;
            if (!inside_turn) {
                inside_turn = true;
                ss += bos_inside ? "<s>[INST] " : "[INST] ";
            }
            if (m.role == "system") {
                ss += system ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
            } else if (m.role == "user") {
                ss += content + " [/INST]";
            } else {
                ss += content + "</s>";
                inside_turn = false;
            }
        }
    } else if (name == "phi3") {
        for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
        if (add_ass) ss += "<|assistant|>\n";
    } else if (name == "phi4") {
        for (const auto& m : chat) {
            ss += "<|im_start|>" + m.role + "<|im_sep|>" + m.content + "<|im_end|>";
        }
        if (add_ass) ss += "<|im_start|>assistant<|im_sep|>";
    } else if (name == "falcon3") {
        for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "\n";
        if (add_ass) ss += "<|assistant|>\n";
    } else if (name == "zephyr") {
        for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "<|endoftext|>\n";
        if (add_ass) ss += "<|assistant|>\n";
    } else if (name == "gemma") {
        std::string system_prompt;
        for (const auto& m : chat) {
            if (m.role == "system") {
                system_prompt += trim(m.content);  // no system role: merged into the next turn
                continue;
            }
            const std::string role = m.role == "assistant" ? "model" : m.role;
            ss += "<start_of_turn>" + role + "\n";
            if (!system_prompt.empty() && role != "model") {
                ss += system_prompt + "\n\n";
                system_prompt.clear();
            }
            ss += trim(m.content) + "<end_of_turn>\n";
        }
        if (add_ass) ss += "<start_of_turn>model\n";
    } else if (name == "deepseek") {
        for (const auto& m : chat) {
            if (m.role == "system") {
                ss += m.content;
            } else if (m.role == "user") {
                ss += "### Instruction:\n" + m.content + "\n";
            } else if (m.role == "assistant") {
                ss += "### Response:\n" + m.content + "\n<|EOT|>\n";
            }
        }
        if (add_ass) ss += "### Response:\n";
    } else if (name == "deepseek2") {
        for (const auto& m : chat) {
            if (m.role == "system") {
                ss += m.content + "\n\n";
            } else if (m.role == "user") {
                ss += "User: " + m.content + "\n\n";
            } else if (m.role == "assistant") {
                ss += "Assistant: " + m.content + k_ds_eos;
            }
        }
        if (add_ass) ss += "Assistant:";
    } else if (name == "deepseek3") {
        for (const auto& m : chat) {
            if (m.role == "system") {
                ss += m.content + "\n\n";
            } else if (m.role == "user") {
                ss += k_ds_user + m.content;
            } else if (m.role == "assistant") {
                ss += k_ds_assistant + m.content + k_ds_eos;
            }
        }
        if (add_ass) ss += k_ds_assistant;
    } else if (name == "llama3") {
        for (const auto& m : chat) {
            ss += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) +
                  "<|eot_id|>";
        }
        if (add_ass) ss += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    } else if (name == "llama4") {
        for (const auto& m : chat) {
            ss += "<|header_start|>" + m.role + "<|header_end|>\n\n" + trim(m.content) + "<|eot|>";
        }
        if (add_ass) ss += "<|header_start|>assistant<|header_end|>\n\n";
    } else if (name == "granite") {
        for (const auto& m : chat) {
            ss += "<|start_of_role|>" + m.role + "<|end_of_role|>";
            if (m.role == "assistant_tool_call") ss += "<|tool_call|>";
            ss += m.content + "<|end_of_text|>\n";
        }
        if (add_ass) ss += "<|start_of_role|>assistant<|end_of_role|>\n";
    } else {
        std::string list;
        for (const std::string& n : names()) list += (list.empty() ? "" : ", ") + n;
        fail(ErrorKind::invalid_arg,
             "unknown chat template '" + name_in + "' (built-in templates: " + list + ")");
    }
    return ss;
}

std::string choose_chat_template(const std::string& override_name,
                                 const std::string& gguf_template) {
    if (!override_name.empty()) {
        const std::string n = detect_chat_template(override_name);
        if (n.empty()) {
            std::string list;
            for (const std::string& k : names()) list += (list.empty() ? "" : ", ") + k;
            fail(ErrorKind::invalid_arg, "unknown chat template '" + override_name +
                                             "' (built-in templates: " + list + ")");
        }
        return n;
    }
    if (!gguf_template.empty()) {
        const std::string n = detect_chat_template(gguf_template);
        if (!n.empty()) return n;
    }
    return "chatml";
}

}  // namespace llm8
