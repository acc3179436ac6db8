// llm8-perplexity: llama-perplexity's protocol and output.
//   llm8-perplexity -m MODEL.gguf -f wiki.test.raw -c 512 [--chunks 40]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "runtime/perplexity.h"

int main(int argc, char** argv) {
    auto args = llm8_tools::normalize_llama_args(argc, argv);
    CLI::App app{"llm8-perplexity: perplexity of a model over a text file"};
    std::string model_path, file;
    int n_ctx = 512, n_chunks = -1, n_batch = 512, n_threads = 0, n_gpu_layers = -1;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("-f,--file", file, "text file")->required();
    app.add_option("-c,--ctx-size", n_ctx, "tokens per chunk")->check(CLI::Range(4, 1 << 20));
    app.add_option("--chunks", n_chunks, "chunks to score (-1: all)");
    app.add_option("-b,--batch-size", n_batch, "tokens per forward pass")
        ->check(CLI::PositiveNumber);
    app.add_option("-t,--threads", n_threads, "CPU threads (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--n-gpu-layers", n_gpu_layers,
                   "-ngl: layers on the GPU (-1: all when a GPU is present, 0: CPU)");
    try {
        app.parse(args.argc(), args.argv());
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        using clk = std::chrono::steady_clock;
        auto model = llm8::Model::load({model_path, n_gpu_layers});
        std::ifstream f(file, std::ios::binary);
        if (!f) llm8::fail(llm8::ErrorKind::io, "cannot open text file '" + file + "'");
        std::stringstream ss;
        ss << f.rdbuf();
        std::fprintf(stderr, "perplexity: model %s (%s), backend %s\n", model->name().c_str(),
                     model->description().c_str(), model->backend().c_str());
        std::fprintf(stderr, "perplexity: tokenizing the input ..\n");
        const auto t0 = clk::now();
        const std::vector<int32_t> tokens = model->tokenize(ss.str(), true);
        std::fprintf(stderr, "perplexity: tokenization took %.3f ms (%zu tokens)\n",
                     std::chrono::duration<double, std::milli>(clk::now() - t0).count(),
                     tokens.size());
        const int max_chunks = int(tokens.size() / size_t(n_ctx));
        const int chunks = n_chunks > 0 ? std::min(n_chunks, max_chunks) : max_chunks;
        std::fprintf(stderr,
                     "perplexity: calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d\n",
                     chunks, n_ctx, n_batch);
        auto t_prev = clk::now();
        const auto r = llm8::perplexity(
            model, tokens, n_ctx, n_chunks, n_batch, n_threads, [&](int i, double ppl) {
                if (i == 0) {
                    const double s = std::chrono::duration<double>(clk::now() - t_prev).count();
                    std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n",
                                 s, s * chunks / 60.0);
                }
                std::printf("[%d]%.4f,", i + 1, ppl);
                std::fflush(stdout);
            });
        std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        return 0;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "llm8-perplexity: error: %s\n", e.what());
        return 1;
    }
}
