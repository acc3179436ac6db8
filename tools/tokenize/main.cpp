// llm8-tokenize: print the tokens a model's vocabulary makes of a text, as llama-tokenize does.
//   llm8-tokenize -m MODEL.gguf -p "Hello world" [--ids] [--no-bos] [--parse-special]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace {

// A piece as printable text: bytes that are not valid UTF-8 show as <0xNN>.
std::string printable(const std::string& piece) {
    if (llm8::utf8_is_valid(piece)) return piece;
    std::string out;
    char buf[8];
    for (unsigned char c : piece) {
        std::snprintf(buf, sizeof(buf), "<0x%02X>", c);
        out += buf;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-tokenize",
                          "llm8-tokenize: show how a GGUF model's vocabulary tokenizes a text");
    CLI::App& app = args.app();
    std::string model_path, prompt, prompt_file;
    bool ids_only = false, no_bos = false, parse_special = false, use_stdin = false;
    bool no_escape = false, show_count = false;
    app.add_option("-m,--model", model_path, "GGUF model or vocab-only file")->required();
    app.add_option("-p,--prompt", prompt, "text to tokenize (escapes such as \\n are processed)");
    app.add_option("-f,--file", prompt_file, "read the text from a file");
    app.add_flag("--stdin", use_stdin, "read the text from standard input");
    app.add_flag("--ids", ids_only, "print only the ids, as a list: [1, 15043, 3186]");
    app.add_flag("--no-bos", no_bos, "do not add BOS/EOS even where the vocabulary asks for them");
    app.add_flag("--parse-special", parse_special,
                 "turn special-token text such as <|im_start|> into the special token");
    app.add_flag("--no-escape", no_escape, "do not process escapes in -p");
    app.add_flag("--show-count", show_count, "print the number of tokens at the end");
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;

    try {
        const int sources = !prompt.empty() + !prompt_file.empty() + use_stdin;
        if (sources != 1) {
            llm8::fail(llm8::ErrorKind::invalid_arg,
                       "give exactly one of -p TEXT, -f FILE or --stdin");
        }
        std::string text;
        if (!prompt_file.empty()) {
            text = llm8_tools::read_text_file("-f", prompt_file, "text file");
        } else if (use_stdin) {
            text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        } else {
            text = no_escape ? prompt : llm8_tools::process_escapes(prompt);
        }

        auto file = llm8::GgufFile::open(model_path);
        auto vocab = llm8::Vocab::from_gguf(*file);
        const auto ids = vocab->tokenize(text, !no_bos, parse_special);

        if (ids_only) {
            std::printf("[");
            for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ", %d" : "%d", ids[i]);
            std::printf("]\n");
        } else {
            for (auto id : ids) {
                std::printf("%6d -> '%s'\n", id,
                            printable(vocab->token_to_piece(id, true)).c_str());
            }
        }
        if (show_count) std::printf("Total number of tokens: %zu\n", ids.size());
    } catch (const std::exception& e) {
        return args.report(e);
    }
    return 0;
}
