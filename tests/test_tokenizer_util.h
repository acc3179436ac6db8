// Helpers for the tokenizer tests: llama.cpp's test vectors and vocab loading.
#pragma once
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace llm8_test {

inline std::string vocab_dir() {
    return shared_data() + "/vocab";
}

// NAME.gguf.inp holds cases each followed by "\n__ggml_vocab_test__\n"; NAME.gguf.out holds
// one line of space-separated ids per case. Returns (text, ids) pairs.
inline std::vector<std::pair<std::string, std::vector<int32_t>>> read_vocab_cases(
    const std::string& inp_path, const std::string& out_path) {
    const std::string inp = read_file(inp_path);
    const std::string out = read_file(out_path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    size_t pos = 0;
    for (;;) {
        const size_t hit = inp.find(sep, pos);
        if (hit == std::string::npos) break;
        texts.push_back(inp.substr(pos, hit - pos));
        pos = hit + sep.size();
    }
    std::vector<std::vector<int32_t>> ids;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream ls(line);
        std::vector<int32_t> row;
        int32_t id;
        while (ls >> id) row.push_back(id);
        ids.push_back(std::move(row));
    }
    std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
    for (size_t i = 0; i < texts.size() && i < ids.size(); ++i) {
        cases.emplace_back(texts[i], ids[i]);
    }
    EXPECT_EQ(texts.size(), ids.size()) << inp_path;
    return cases;
}

inline std::shared_ptr<const llm8::Vocab> load_vocab(const std::string& path) {
    auto f = llm8::GgufFile::open(path);
    return llm8::Vocab::from_gguf(*f);
}

inline std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

}  // namespace llm8_test
