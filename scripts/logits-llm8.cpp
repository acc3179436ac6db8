// The llm8 side of scripts/logits-compare.sh: logits for every position of a fixed token
// sequence on the CPU backend, raw float32 [n_tokens][n_vocab].
//   logits-llm8 MODEL.gguf TOKENS.txt OUT.f32      (TOKENS.txt: one id per line)
#include <cstdio>
#include <fstream>
#include <vector>

#include "llm8/engine.h"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf TOKENS.txt OUT.f32\n", argv[0]);
        return 2;
    }
    std::vector<int32_t> toks;
    std::ifstream in(argv[2]);
    for (int t; in >> t;) toks.push_back(t);
    if (toks.empty()) return 2;
    try {
        llm8::ModelParams mp;
        mp.path = argv[1];
        mp.n_gpu_layers = 0;
        auto model = llm8::Model::load(mp);
        llm8::SessionParams sp;
        sp.n_ctx = int(toks.size() + 16);
        sp.n_batch = sp.n_ctx;
        llm8::Session s(model, sp);
        s.decode(toks, true);
        std::FILE* f = std::fopen(argv[3], "wb");
        for (size_t i = 0; i < toks.size(); ++i)
            std::fwrite(s.logits(int(i)), sizeof(float), size_t(model->n_vocab()), f);
        std::fclose(f);
        std::printf("llm8: %zu tokens x %d logits\n", toks.size(), model->n_vocab());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "llm8: %s\n", e.what());
        return 1;
    }
    return 0;
}
