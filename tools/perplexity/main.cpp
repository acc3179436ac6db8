// llm8-perplexity: llama-perplexity's protocol and output.
//   llm8-perplexity -m MODEL.gguf -f wiki.test.raw -c 512 [--chunks 40]
//   ... --kl-divergence-base BASE.kld             also save the reference log-probabilities
//   llm8-perplexity -m OTHER.gguf --kl-divergence-base BASE.kld --kl-divergence
//                                                   compare against them (KLD, same top, dp)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "runtime/perplexity.h"

namespace {

// llama-perplexity's --kl-divergence report: running values per chunk, then the statistics.
int kl_report(const std::shared_ptr<const llm8::Model>& model, const std::string& base,
              const llm8::KlBaseInfo& info, int n_chunks, int n_batch, int n_threads,
              const llm8_tools::Args& args) {
    const int chunks = n_chunks > 0 ? std::min(n_chunks, info.n_chunks) : info.n_chunks;
    if (!args.common.log_disable)
        std::fprintf(stderr, "kl-divergence: %d chunks of %d tokens from %s\n", chunks, info.n_ctx,
                     base.c_str());
    std::printf("chunk    mean KLD\n");
    const auto st =
        llm8::kl_divergence(model, base, n_chunks, n_batch, n_threads, [&](int i, double kld) {
            std::printf("%5d %11.6f\n", i + 1, kld);
            std::fflush(stdout);
        });
    using S = llm8::KlStats;
    const auto& k = st.kld_sorted;
    const auto& d = st.dp_sorted;
    const double ratio = std::exp(st.ln_ratio);
    std::printf("\n====== Perplexity statistics ======\n");
    std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", st.ppl.ppl, st.ppl.ppl_err);
    std::printf("Mean PPL(base)                : %10.6f ± %10.6f\n", st.ppl_base, st.ppl_base_err);
    std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * st.cor);
    std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", st.ln_ratio, st.ln_ratio_err);
    std::printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", ratio,
                ratio * st.ln_ratio_err);
    std::printf("Mean PPL(Q)-PPL(base)         : %10.6f\n", st.ppl.ppl - st.ppl_base);
    std::printf("\n====== KL divergence statistics ======\n");
    std::printf("Mean    KLD: %10.6f ± %10.6f\n", st.kld, st.kld_err);
    std::printf("Maximum KLD: %10.6f\n", k.back());
    const std::pair<const char*, double> kq[] = {
        {"99.9%   KLD", 0.999}, {"99.0%   KLD", 0.99}, {"Median  KLD", 0.5},  {"10.0%   KLD", 0.1},
        {" 5.0%   KLD", 0.05},  {" 1.0%   KLD", 0.01}, {" 0.1%   KLD", 0.001}};
    for (const auto& q : kq) std::printf("%s: %10.6f\n", q.first, S::quantile(k, q.second));
    std::printf("Minimum KLD: %10.6f\n", k.front());
    std::printf("\n====== Token probability statistics ======\n");
    std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * st.dp, 100.0 * st.dp_err);
    std::printf("Maximum Δp: %6.3f%%\n", 100.0 * d.back());
    const std::pair<const char*, double> dq[] = {
        {"99.9%   Δp", 0.999}, {"99.0%   Δp", 0.99}, {"95.0%   Δp", 0.95}, {"90.0%   Δp", 0.90},
        {"75.0%   Δp", 0.75},  {"Median  Δp", 0.5},  {"25.0%   Δp", 0.25}, {"10.0%   Δp", 0.10},
        {" 5.0%   Δp", 0.05},  {" 1.0%   Δp", 0.01}, {" 0.1%   Δp", 0.001}};
    for (const auto& q : dq)
        std::printf("%s: %6.3f%%\n", q.first, 100.0 * S::quantile(d, q.second));
    std::printf("Minimum Δp: %6.3f%%\n", 100.0 * d.front());
    std::printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * st.dp_rms, 100.0 * st.dp_rms_err);
    std::printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * st.same_top, 100.0 * st.same_top_err);
    if (args.common.attn_report)
        std::fputs(llm8::attn_guard_report(*model, st.ppl.attn_stats).c_str(), stderr);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-perplexity",
                          "llm8-perplexity: perplexity of a model over a text file");
    CLI::App& app = args.app();
    std::string model_path, file;
    int n_ctx = 512, n_chunks = -1, n_batch = 512, n_threads = 0, n_gpu_layers = -1;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("-f,--file", file, "text file (not needed with --kl-divergence)");
    std::string kl_base;
    bool kl = false;
    app.add_option("--kl-divergence-base", kl_base,
                   "file of reference log-probabilities: written by a perplexity run, read by "
                   "--kl-divergence");
    app.add_flag("--kl-divergence", kl,
                 "compare with --kl-divergence-base (its tokens and -c): KL divergence, same "
                 "top token, probability change");
    CLI::Option* ctx_opt = args.add_int("-c,--ctx-size", n_ctx, 4, 1 << 20, "tokens per chunk");
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
        if (kl && kl_base.empty())
            throw llm8::Error(llm8::ErrorKind::invalid_arg,
                              "--kl-divergence needs --kl-divergence-base FILE (the reference)");
        if (!kl && file.empty())
            throw llm8::Error(llm8::ErrorKind::invalid_arg, "-f FILE is required (the text)");
        n_threads = args.threads(n_threads);
        n_batch = std::min(n_batch, n_ubatch);
        llm8::KlBaseInfo base_info;
        if (kl) {
            base_info =
                llm8::read_kl_base_info(kl_base);  // before the model: a bad file fails fast
            if (ctx_opt->count() > 0 && n_ctx != base_info.n_ctx)
                throw llm8::Error(llm8::ErrorKind::invalid_arg,
                                  "-c " + std::to_string(n_ctx) + ": the base " + kl_base +
                                      " was made with -c " + std::to_string(base_info.n_ctx));
            n_ctx = base_info.n_ctx;
            if (!file.empty())
                args.warn("-f is ignored with --kl-divergence (the base holds the tokens)");
        }
        const std::string text = kl ? "" : llm8_tools::read_text_file("-f", file, "text file");
        auto model = llm8::Model::load(args.model_params(model_path, n_gpu_layers));
        args.lock_memory();
        if (n_ctx > model->n_ctx_train())
            args.warn("-c " + std::to_string(n_ctx) + " is more than the " +
                      std::to_string(model->n_ctx_train()) +
                      " tokens the model was trained on: the perplexity will suffer");
        if (!args.common.log_disable)
            std::fprintf(stderr, "perplexity: model %s (%s), backend %s\n", model->name().c_str(),
                         model->description().c_str(), model->backend().c_str());
        if (kl) return kl_report(model, kl_base, base_info, n_chunks, n_batch, n_threads, args);
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
        auto on_chunk = [&](int i, double ppl) {
            bar.update(i + 1, chunks, "chunks");
            if (i == 0) {
                const double s = std::chrono::duration<double>(clk::now() - t_prev).count();
                if (!args.common.log_disable)
                    std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n",
                                 s, s * chunks / 60.0);
            }
            std::printf("[%d]%.4f,", i + 1, ppl);
            std::fflush(stdout);
        };
        const auto r = kl_base.empty() ? llm8::perplexity(model, tokens, n_ctx, n_chunks, n_batch,
                                                          n_threads, on_chunk)
                                       : llm8::save_kl_base(model, tokens, n_ctx, n_chunks, n_batch,
                                                            n_threads, kl_base, on_chunk);
        bar.finish();
        std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        if (args.common.attn_report)
            std::fputs(llm8::attn_guard_report(*model, r.attn_stats).c_str(), stderr);
        if (!kl_base.empty())
            args.info("saved the reference log-probabilities of " + std::to_string(r.n_chunks) +
                      " chunks (" + std::to_string(r.n_scored) + " positions) to " + kl_base);
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
