// Built-in chat templates against hand-written expected strings, and template recognition.
#include "tokenizer/chat_template.h"

#include "common/error.h"
#include "test_tokenizer_util.h"

using llm8::ChatMessage;
using llm8::detect_chat_template;
using llm8::render_chat_template;

namespace {

const std::vector<ChatMessage> k_chat = {
    {"system", "You are helpful."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "How are you?"},
};

#define DS_USER "<\xEF\xBD\x9CUser\xEF\xBD\x9C>"
#define DS_ASSISTANT \
    "<\xEF\xBD\x9C"  \
    "Assistant\xEF\xBD\x9C>"
#define DS_EOS      \
    "<\xEF\xBD\x9C" \
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"

}  // namespace

TEST(ChatTemplate, Chatml) {
    EXPECT_EQ(render_chat_template("chatml", k_chat, true),
              "<|im_start|>system\nYou are helpful.<|im_end|>\n"
              "<|im_start|>user\nHello<|im_end|>\n"
              "<|im_start|>assistant\nHi there<|im_end|>\n"
              "<|im_start|>user\nHow are you?<|im_end|>\n"
              "<|im_start|>assistant\n");
    EXPECT_EQ(render_chat_template("qwen", {{"user", "x"}}, false),
              "<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplate, Llama2) {
    EXPECT_EQ(render_chat_template("llama2", k_chat, true),
              "[INST] You are helpful.\nHello [/INST]Hi there</s>[INST] How are you? [/INST]");
    EXPECT_EQ(render_chat_template("llama2-sys", k_chat, true),
              "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST]Hi there</s>"
              "[INST] How are you? [/INST]");
    EXPECT_EQ(render_chat_template("llama2-sys-bos", k_chat, true),
              "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST]Hi there</s>"
              "<s>[INST] How are you? [/INST]");
    EXPECT_EQ(render_chat_template("llama2-sys-strip", {{"user", "  padded \n"}}, true),
              "[INST] padded [/INST]");
}

TEST(ChatTemplate, Llama3) {
    EXPECT_EQ(render_chat_template("llama3", k_chat, true),
              "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    // Content is trimmed; no generation prompt when not asked.
    EXPECT_EQ(render_chat_template("llama3", {{"user", " hi\n"}}, false),
              "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
}

TEST(ChatTemplate, Mistral) {
    EXPECT_EQ(render_chat_template("mistral-v7", k_chat, true),
              "[SYSTEM_PROMPT] You are helpful.[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>"
              "[INST] How are you?[/INST]");
    EXPECT_EQ(render_chat_template("mistral-v7-tekken", k_chat, true),
              "[SYSTEM_PROMPT]You are helpful.[/SYSTEM_PROMPT][INST]Hello[/INST]Hi there</s>"
              "[INST]How are you?[/INST]");
    EXPECT_EQ(render_chat_template("mistral-v3", k_chat, true),
              "[INST] You are helpful.\n\nHello[/INST] Hi there</s>[INST] How are you?[/INST]");
    EXPECT_EQ(render_chat_template("mistral-v3-tekken", k_chat, true),
              "[INST]You are helpful.\n\nHello[/INST]Hi there</s>[INST]How are you?[/INST]");
    EXPECT_EQ(render_chat_template("mistral-v1", k_chat, true),
              " [INST] You are helpful.\n\nHello [/INST] Hi there</s> [INST] How are you? [/INST]");
}

TEST(ChatTemplate, DeepseekR1) {
    const std::string expected = "You are helpful.\n\n" DS_USER "Hello" DS_ASSISTANT
                                 "Hi there" DS_EOS DS_USER "How are you?" DS_ASSISTANT;
    EXPECT_EQ(render_chat_template("deepseek3", k_chat, true), expected);
    EXPECT_EQ(render_chat_template("deepseek-r1", k_chat, true), expected);
}

TEST(ChatTemplate, Phi3) {
    EXPECT_EQ(render_chat_template("phi3", k_chat, true),
              "<|system|>\nYou are helpful.<|end|>\n<|user|>\nHello<|end|>\n"
              "<|assistant|>\nHi there<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, Others) {
    EXPECT_EQ(render_chat_template("gemma", k_chat, true),
              "<start_of_turn>user\nYou are helpful.\n\nHello<end_of_turn>\n"
              "<start_of_turn>model\nHi there<end_of_turn>\n"
              "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_EQ(render_chat_template("deepseek", k_chat, true),
              "You are helpful.### Instruction:\nHello\n### Response:\nHi there\n<|EOT|>\n"
              "### Instruction:\nHow are you?\n### Response:\n");
    EXPECT_EQ(render_chat_template("phi4", {{"user", "x"}}, true),
              "<|im_start|>user<|im_sep|>x<|im_end|><|im_start|>assistant<|im_sep|>");
}

TEST(ChatTemplate, UnknownNameIsAnError) {
    EXPECT_THROW(render_chat_template("no-such-template", k_chat, true), llm8::Error);
    EXPECT_THROW(llm8::choose_chat_template("no-such-template", ""), llm8::Error);
    EXPECT_EQ(llm8::choose_chat_template("", ""), "chatml");
    EXPECT_EQ(llm8::choose_chat_template("llama3", "<|im_start|>"), "llama3");
    EXPECT_EQ(llm8::choose_chat_template("", "{{ '<|im_start|>' }}"), "chatml");
}

TEST(ChatTemplate, Detect) {
    // Names map to themselves; "mistral" goes through llama.cpp's heuristics (-> llama2).
    EXPECT_EQ(detect_chat_template("llama3"), "llama3");
    EXPECT_EQ(detect_chat_template("mistral-v7"), "mistral-v7");
    EXPECT_EQ(detect_chat_template("mistral"), "llama2");
    EXPECT_EQ(detect_chat_template(""), "");
    EXPECT_EQ(detect_chat_template("{{ messages }}"), "");

    // Shapes of real templates (abridged).
    EXPECT_EQ(detect_chat_template("{%- for message in messages %}{{- '<|im_start|>' + "
                                   "message.role + '\\n' + message.content + '<|im_end|>' }}"),
              "chatml");
    EXPECT_EQ(detect_chat_template("{% set content = '<|start_header_id|>' + message['role'] + "
                                   "'<|end_header_id|>\\n\\n' + message['content'] | trim + "
                                   "'<|eot_id|>' %}"),
              "llama3");
    EXPECT_EQ(detect_chat_template("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
                                   "{% set content = '<<SYS>>\\n' %}"),
              "llama2-sys-strip");
    EXPECT_EQ(detect_chat_template("{{ bos_token }}{% for message in messages %}"
                                   "{{ '[INST] ' + message['content'] + ' [/INST]' }}"),
              "llama2");
    EXPECT_EQ(detect_chat_template("{{ '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' "
                                   "}}{{ '[INST]' + message['content'] + '[/INST]' }}"),
              "mistral-v7");
    EXPECT_EQ(detect_chat_template("{% if message['role'] == 'user' %}{{'" DS_USER
                                   "' + message['content']}}{% endif %}{{'" DS_ASSISTANT
                                   "' + content + '" DS_EOS "'}}"),
              "deepseek3");
    EXPECT_EQ(detect_chat_template("{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
                                   "{{'<|assistant|>\\n'}}"),
              "phi3");
    EXPECT_EQ(detect_chat_template("{{ '<start_of_turn>' + role + '\\n' }}"), "gemma");
}

TEST(ChatTemplate, GgufTemplatesAndTokens) {
    struct Case {
        const char* file;
        const char* name;
    };
    for (const Case& c :
         {Case{"llama3-vocab.gguf", "llama3"}, Case{"qwen3-vocab.gguf", "chatml"}}) {
        const std::string path = llm8_test::vocab_dir() + "/" + c.file;
        if (!llm8_test::file_exists(path)) continue;
        auto f = llm8::GgufFile::open(path);
        const std::string jinja = f->get_str("tokenizer.chat_template", "");
        if (!jinja.empty()) {
            EXPECT_EQ(detect_chat_template(jinja), c.name) << c.file;
        }
        auto vocab = llm8::Vocab::from_gguf(*f);
        const std::string prompt = render_chat_template(c.name, k_chat, true);
        const auto ids = vocab->tokenize(prompt, true, /*parse_special=*/true);
        const std::string end = std::string(c.name) == "llama3" ? "<|eot_id|>" : "<|im_end|>";
        const int32_t end_id = vocab->find(end);
        ASSERT_GE(end_id, 0);
        EXPECT_EQ(std::count(ids.begin(), ids.end(), end_id), 4) << c.file;
        EXPECT_TRUE(vocab->is_eog(end_id));
        EXPECT_EQ(vocab->detokenize(ids, true, true), prompt) << c.file;
    }
}
