// Tokenizer throughput: MB/s of tokenize() per vocabulary on a text file (by default War and
// Peace from the shared data), the whole file in one call as llm8-perplexity does.
//   llm8-bench-tokenizer [-f TEXT] [-r REPS] [-o md|json] [VOCAB.gguf ...]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "common/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

#ifndef LLM8_SHARED_DATA_DIR
#define LLM8_SHARED_DATA_DIR "../shared/data"
#endif

namespace {

struct Row {
    std::string vocab;
    std::string kind;
    size_t n_tokens = 0;
    double best_s = 0;
    double mean_s = 0;
};

std::string base_name(const std::string& p) {
    const size_t k = p.find_last_of('/');
    return k == std::string::npos ? p : p.substr(k + 1);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string data = LLM8_SHARED_DATA_DIR;
    CLI::App app{"llm8-bench-tokenizer: tokenizer throughput per vocabulary"};
    std::string text_path = data + "/text/war-and-peace.txt";
    int reps = 3;
    std::string output = "md";
    std::vector<std::string> vocabs;
    app.add_option("-f,--file", text_path, "text to tokenize");
    app.add_option("-r,--repetitions", reps, "timed runs per vocabulary")
        ->check(CLI::PositiveNumber);
    app.add_option("-o,--output", output, "md or json")->check(CLI::IsMember({"md", "json"}));
    app.add_option("vocabs", vocabs, "vocab GGUF files (default: every one in shared/data/vocab)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (vocabs.empty()) {
        for (const char* v :
             {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf",
              "ggml-vocab-falcon.gguf", "ggml-vocab-mpt.gguf", "ggml-vocab-refact.gguf",
              "ggml-vocab-starcoder.gguf", "ggml-vocab-deepseek-llm.gguf",
              "ggml-vocab-deepseek-coder.gguf", "llama3-vocab.gguf", "qwen3-vocab.gguf"}) {
            vocabs.push_back(data + "/vocab/" + v);
        }
    }
    try {
        std::ifstream in(text_path, std::ios::binary);
        if (!in) llm8::fail(llm8::ErrorKind::io, "cannot open " + text_path);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        std::vector<Row> rows;
        for (const std::string& path : vocabs) {
            auto f = llm8::GgufFile::open(path);
            auto vocab = llm8::Vocab::from_gguf(*f);
            Row row;
            row.vocab = base_name(path);
            row.kind = vocab->kind() == llm8::VocabKind::spm ? "SPM" : "BPE";
            row.best_s = 1e30;
            for (int r = 0; r < reps; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                const auto ids = vocab->tokenize(text, true);
                const double s =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                row.n_tokens = ids.size();
                row.best_s = std::min(row.best_s, s);
                row.mean_s += s / reps;
            }
            rows.push_back(row);
            if (output == "md" && rows.size() == 1) {
                std::printf("text: %s, %zu bytes, best of %d runs\n\n",
                            base_name(text_path).c_str(), text.size(), reps);
                std::printf(
                    "| vocab | type | tokens | bytes/token | MB/s (best) | MB/s (mean) |\n");
                std::printf("|---|---|---:|---:|---:|---:|\n");
            }
            if (output == "md") {
                std::printf("| %s | %s | %zu | %.2f | %.2f | %.2f |\n", row.vocab.c_str(),
                            row.kind.c_str(), row.n_tokens, double(text.size()) / row.n_tokens,
                            text.size() / 1e6 / row.best_s, text.size() / 1e6 / row.mean_s);
                std::fflush(stdout);
            }
        }
        if (output == "json") {
            std::printf("{\"text\": \"%s\", \"bytes\": %zu, \"results\": [\n",
                        base_name(text_path).c_str(), text.size());
            for (size_t i = 0; i < rows.size(); ++i) {
                const Row& r = rows[i];
                std::printf(
                    "  {\"vocab\": \"%s\", \"type\": \"%s\", \"tokens\": %zu, "
                    "\"mb_per_s_best\": %.3f, \"mb_per_s_mean\": %.3f}%s\n",
                    r.vocab.c_str(), r.kind.c_str(), r.n_tokens, text.size() / 1e6 / r.best_s,
                    text.size() / 1e6 / r.mean_s, i + 1 < rows.size() ? "," : "");
            }
            std::printf("]}\n");
        }
    } catch (const llm8::Error& e) {
        std::fprintf(stderr, "llm8-bench-tokenizer: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
