// The reference side of scripts/logits-compare.sh: llama.cpp's logits for every position of a
// fixed token sequence, on the CPU, written as raw float32 [n_tokens][n_vocab]. Built against
// llama.cpp's own headers and library (outside this repository; only to measure llm8).
//   logits-llamacpp MODEL.gguf TOKENS.txt OUT.f32      (TOKENS.txt: one id per line)
#include <llama.h>

#include <cstdio>
#include <fstream>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf TOKENS.txt OUT.f32\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> toks;
    std::ifstream in(argv[2]);
    for (int t; in >> t;) toks.push_back(t);
    if (toks.empty()) return 2;
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = false;  // no repacked CPU weights (plain kernels)
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = uint32_t(toks.size() + 16);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = cp.n_threads_batch = 2;
    // llm8's CPU backend keeps K/V in float32: so does the reference (llama.cpp's default is
    // F16), and no flash attention (whose CPU path rounds to F16 too).
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_batch b = llama_batch_init(int32_t(toks.size()), 0, 1);
    for (size_t i = 0; i < toks.size(); ++i) {
        b.token[i] = toks[i];
        b.pos[i] = llama_pos(i);
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = int32_t(toks.size());
    if (llama_decode(ctx, b) != 0) return 1;
    std::FILE* f = std::fopen(argv[3], "wb");
    for (size_t i = 0; i < toks.size(); ++i)
        std::fwrite(llama_get_logits_ith(ctx, int32_t(i)), sizeof(float), size_t(n_vocab), f);
    std::fclose(f);
    std::printf("llama.cpp: %zu tokens x %d logits\n", toks.size(), n_vocab);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
