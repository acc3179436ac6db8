// Greedy next token of the embedded model, through the installed public headers only.
#include <cstdio>

#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "llm8/version.h"

int main() {
    auto model = llm8::Model::load({"", 0});
    llm8::Session s(model, {64});
    s.decode(model->tokenize("Once upon a", true));
    const int32_t tok = llm8::argmax(s.logits(), model->n_vocab());
    std::printf("llm8 %s: next token '%s'\n", LLM8_VERSION, model->token_to_piece(tok).c_str());
    return 0;
}
