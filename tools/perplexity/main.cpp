// llm8-perplexity: llama-perplexity's protocol and output.
//   llm8-perplexity -m MODEL.gguf -f wiki.test.raw -c 512 [--chunks 40]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "runtime/perplexity.h"

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-perplexity",
                          "llm8-perplexity: perplexity of a model over a text file");
    CLI::App& app = args.app();
    std::string model_path, file;
    int n_ctx = 512, n_chunks = -1, n_batch = 512, n_threads = 0, n_gpu_layers = -1;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("-f,--file", file, "text file")->required();
    args.add_int("-c,--ctx-size", n_ctx, 4, 1 << 20, "tokens per chunk");
    args.add_int("--chunks", n_chunks, -1, 1 << 30, "chunks to score (-1: all)");
    args.add_int("-b,--batch-size", n_batch, 1, 1 << 20, "tokens per forward pass");
    int n_ubatch = 512;
    args.add_int("--ubatch-size", n_ubatch, 1, 1 << 20,
                 "-ub: as llama.cpp's physical batch; a forward pass takes min(-b, -ub) tokens");
    args.add_int("-t,--threads", n_threads, 0, 1 << 20, "CPU threads (0: all)");
    args.add_int("--n-gpu-layers", n_gpu_layers, -1, 1 << 20,
                 "-ngl: layers on the GPU (-1: all when a GPU is present, 0: CPU)");
    args.add_model_flags();
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;
    try {
        using clk = std::chrono::steady_clock;
        n_threads = args.threads(n_threads);
        n_batch = std::min(n_batch, n_ubatch);
        const std::string text = llm8_tools::read_text_file("-f", file, "text file");
        auto model = llm8::Model::load(args.model_params(model_path, n_gpu_layers));
        args.lock_memory();
        if (n_ctx > model->n_ctx_train())
            args.warn("-c " + std::to_string(n_ctx) + " is more than the " +
                      std::to_string(model->n_ctx_train()) +
                      " tokens the model was trained on: the perplexity will suffer");
        if (!args.common.log_disable)
            std::fprintf(stderr, "perplexity: model %s (%s), backend %s\n", model->name().c_str(),
                         model->description().c_str(), model->backend().c_str());
        if (!args.common.log_disable) std::fprintf(stderr, "perplexity: tokenizing the input ..\n");
        const auto t0 = clk::now();
        const std::vector<int32_t> tokens = model->tokenize(text, true);
        if (!args.common.log_disable)
            std::fprintf(stderr, "perplexity: tokenization took %.3f ms (%zu tokens)\n",
                         std::chrono::duration<double, std::milli>(clk::now() - t0).count(),
                         tokens.size());
        const int max_chunks = int(tokens.size() / size_t(n_ctx));
        const int chunks = n_chunks > 0 ? std::min(n_chunks, max_chunks) : max_chunks;
        if (!args.common.log_disable)
            std::fprintf(
                stderr,
                "perplexity: calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d\n",
                chunks, n_ctx, n_batch);
        auto t_prev = clk::now();
        // The running values on stdout are the progress when stdout is the terminal; the
        // line (with an ETA) is for runs whose stdout goes to a file or a pipe.
        llm8_tools::Progress bar(args.progress_enabled() && !isatty(STDOUT_FILENO), "perplexity",
                                 0.0);
        const auto r = llm8::perplexity(
            model, tokens, n_ctx, n_chunks, n_batch, n_threads, [&](int i, double ppl) {
                bar.update(i + 1, chunks, "chunks");
                if (i == 0) {
                    const double s = std::chrono::duration<double>(clk::now() - t_prev).count();
                    if (!args.common.log_disable)
                        std::fprintf(stderr,
                                     "perplexity: %.2f seconds per pass - ETA %.2f minutes\n", s,
                                     s * chunks / 60.0);
                }
                std::printf("[%d]%.4f,", i + 1, ppl);
                std::fflush(stdout);
            });
        bar.finish();
        std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
