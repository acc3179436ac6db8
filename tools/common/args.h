// Shared by the tools: llama.cpp's flag spellings and error reporting.
//
// llama.cpp uses single-dash multi-letter flags (-ngl, -fa, -ctk, -ub, -cnv); CLI11 reads
// "-ngl" as "-n -g -l", so such flags are rewritten to their long names before parsing.
#pragma once
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace llm8_tools {

struct Argv {
    std::vector<std::string> storage;
    std::vector<char*> ptrs;
    int argc() const { return int(ptrs.size()); }
    char** argv() { return ptrs.data(); }
};

inline Argv normalize_llama_args(int argc, char** argv) {
    static const char* kMap[][2] = {
        {"-ngl", "--n-gpu-layers"},  {"-fa", "--flash-attn"},  {"-ctk", "--cache-type-k"},
        {"-ctv", "--cache-type-v"},  {"-ub", "--ubatch-size"}, {"-cnv", "--conversation"},
        {"-sys", "--system-prompt"}, {"-mg", "--main-gpu"},    {"-ns", "--n-sequences"},
    };
    Argv out;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        for (const auto& m : kMap)
            if (a == m[0]) a = m[1];
        out.storage.push_back(a);
    }
    for (auto& s : out.storage) out.ptrs.push_back(&s[0]);
    return out;
}

}  // namespace llm8_tools
