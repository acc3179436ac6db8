// llm8-batched-bench: llama-batched-bench's flags and table, over llm8::Context.
//   llm8-batched-bench -m model.gguf -npp 512 -ntg 128 -npl 1,4,16,64 [-c N] [-b 2048] [-ngl 99]
// For each (PP, TG, B): the KV cache is cleared, B sequences of PP random prompt tokens are
// decoded together (batches of at most -b tokens), then TG steps each decode one token of
// every sequence. With -pps the prompt is shared: decoded once in sequence 0 and forked to the
// others. Columns as llama-batched-bench: N_KV tokens in the cache at the end, T_PP / S_PP the
// prompt time and rate, T_TG / S_TG the generation time and rate, T / S the whole.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"

namespace {

std::vector<int> parse_list(const std::string& s, const char* flag) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            const int x = std::stoi(item, &used);
            if (used != item.size() || x < 1) throw std::invalid_argument(item);
            v.push_back(x);
        } catch (const std::exception&) {
            llm8::fail(llm8::ErrorKind::invalid_arg,
                       std::string(flag) + ": '" + s + "' is not a list of positive counts");
        }
    }
    return v;
}

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-batched-bench",
                          "llm8-batched-bench: batched decoding speed, llama-batched-bench style");
    CLI::App& app = args.app();
    std::string model_path, npp = "128,256,512", ntg = "128,256", npl = "1,2,4,8,16,32";
    int n_ctx = 0, n_batch = 2048, ubatch = 512, ngl = -1, threads = 0;
    bool pps = false, verbose = false;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    args.add_int("-c,--ctx-size", n_ctx, 0, 1 << 24,
                 "KV cache tokens for all sequences (0: as the tests need)");
    args.add_int("-b,--batch-size", n_batch, 1, 1 << 20, "logical batch size (accepted; see -ub)");
    args.add_int("--ubatch-size", ubatch, 1, 65536, "-ub: tokens per forward step");
    app.add_option("--npp", npp, "-npp: prompt tokens per sequence, comma separated");
    app.add_option("--ntg", ntg, "-ntg: generated tokens per sequence, comma separated");
    app.add_option("--npl", npl, "-npl: parallel sequences, comma separated");
    app.add_flag("--pps", pps, "-pps: the prompt is shared by all sequences (decoded once, forked)");
    args.add_int("--n-gpu-layers", ngl, -1, 1 << 20, "-ngl: -1 all when a GPU is present, 0 CPU");
    args.add_int("-t,--threads", threads, 0, 1 << 20, "CPU threads (0: all)");
    app.add_flag("-v,--verbose", verbose, "print the per-layer plan");
    args.add_model_flags();
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;
    threads = args.threads(threads);
    try {
        const auto pps_list = parse_list(npp, "-npp"), tgs = parse_list(ntg, "-ntg"),
                   pls = parse_list(npl, "-npl");
        auto model = llm8::Model::load(args.model_params(model_path, ngl));
        int need = 0, max_pl = 0;
        for (int pp : pps_list)
            for (int tg : tgs)
                for (int pl : pls) {
                    need = std::max(need, (pps ? pp : pp * pl) + tg * pl);
                    max_pl = std::max(max_pl, pl);
                }
        if (n_ctx == 0) n_ctx = need;
        if (n_ctx < need)
            llm8::fail(llm8::ErrorKind::invalid_arg,
                       "-c " + std::to_string(n_ctx) + " is too small: the largest test needs " +
                           std::to_string(need) + " tokens of KV cache");
        llm8::Context ctx(model, {n_ctx, max_pl, ubatch, threads});
        std::printf("main: model %s (%s), backend %s, n_ctx %d, n_ubatch %d, KV %s %.1f MiB in "
                    "blocks of %d\n",
                    model->name().c_str(), model->description().c_str(), model->backend().c_str(),
                    n_ctx, ubatch, ctx.kv_memory().type.c_str(),
                    ctx.kv_memory().bytes_total / 1048576.0, ctx.kv_memory().block_size);
        if (verbose) std::printf("%s", ctx.plan_report().c_str());
        std::printf("\n|%6s | %6s | %4s | %6s | %8s | %8s | %8s | %8s | %8s | %8s |\n", "PP", "TG",
                    "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s");
        std::printf("|-------|--------|------|--------|----------|----------|----------|----------|"
                    "----------|----------|\n");
        std::mt19937 rng(42);
        std::uniform_int_distribution<int32_t> tok(0, model->n_vocab() - 1);
        auto run = [&](int pp, int tg, int pl, bool print) {
            ctx.clear();
            llm8::Batch b;
            const double t0 = now();
            const int prompts = pps ? 1 : pl;
            for (int s = 0; s < prompts; ++s)
                for (int i = 0; i < pp; ++i) b.add(tok(rng), i, s, i == pp - 1);
            ctx.decode(b);
            if (pps)
                for (int s = 1; s < pl; ++s) ctx.seq_fork(0, s);
            const double t1 = now();
            for (int i = 0; i < tg; ++i) {
                b.clear();
                for (int s = 0; s < pl; ++s) b.add(tok(rng), pp + i, s, true);
                ctx.decode(b);
            }
            const double t2 = now();
            if (!print) return;
            const int n_kv = (pps ? pp : pl * pp) + pl * tg;
            const double t_pp = t1 - t0, t_tg = t2 - t1;
            std::printf("|%6d | %6d | %4d | %6d | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\n",
                        pp, tg, pl, n_kv, t_pp, double(prompts) * pp / t_pp, t_tg,
                        tg > 0 ? double(pl) * tg / t_tg : 0.0, t_pp + t_tg,
                        double(n_kv) / (t_pp + t_tg));
            std::fflush(stdout);
        };
        run(pps_list[0], std::min(tgs[0], 4), pls[0], false);  // warm-up (graphs, cuBLAS)
        for (int pp : pps_list)
            for (int tg : tgs)
                for (int pl : pls) {
                    if (pl > 1) run(1, 1, pl, false);  // the decode graph of pl sequences
                    run(pp, tg, pl, true);
                }
    } catch (const std::exception& e) {
        return args.report(e);
    }
    return 0;
}
