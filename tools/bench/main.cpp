// llm8-bench: llama-bench's interface and table, plus a rate column (GB/s for token
// generation: weights plus the KV cache read per token; TFLOP/s, or GFLOP/s below 1 TFLOP/s,
// for prompt processing).
//   llm8-bench -m model.gguf -p 512 -n 128 -d 0,4096 -r 5 [-ngl 0,99] [-t 1,2] [-b 256,512]
//              [-ub 128,512] [-o md|csv|json]
// As llama-bench, -m -p -n -d -ngl -t -b -ub take comma-separated lists and every combination
// is a row. -b splits the prompt into decode calls, -ub is the tokens per forward pass (llm8's
// SessionParams::n_batch). Columns threads (CPU), n_batch and n_ubatch appear as in
// llama-bench: threads for the CPU backend, the others when not the default.
// Tests: ppP = P prompt tokens in one go (batches of -b/-ub); tgN = N single-token decode steps;
// "@ dD" = after filling the context with D tokens (not timed). Tokens are random ids. Each
// test runs once untimed as a warm-up, then -r times; t/s is the mean +/- sd of the runs.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "model/llama.h"

namespace {

// "1,2,4" -> {1, 2, 4}; each value within [lo, hi]. Errors name the flag as typed.
std::vector<int> parse_list(const std::string& s, const std::string& flag, int lo, int hi) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        errno = 0;
        const long x = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
            llm8::fail(llm8::ErrorKind::invalid_arg,
                       flag + " " + s + ": expected a comma-separated list of integers from " +
                           std::to_string(lo) + " to " + std::to_string(hi));
        v.push_back(int(x));
    }
    if (v.empty()) llm8::fail(llm8::ErrorKind::invalid_arg, flag + ": expected at least one value");
    return v;
}

struct Result {
    std::string model, backend, test;
    std::string type_kv = "f16";  // the K and V cache type (they must agree)
    double size_gib = 0, params_b = 0;
    int ngl = 0, threads = 0, n_batch = 0, n_ubatch = 0, n_prompt = 0, n_gen = 0, depth = 0;
    std::vector<double> ts;
    double mean = 0, sd = 0, rate = 0;
    const char* rate_unit = "";
};

std::string fmt(const char* f, double a, double b = 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf, f, a, b);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-bench",
                          "llm8-bench: prompt processing and generation speed, llama-bench style");
    CLI::App& app = args.app();
    std::vector<std::string> models;
    std::string p_list = "512", n_list = "128", d_list = "0", output = "md", ngl_list = "-1",
                t_list = "0", b_list = "2048", ub_list = "512";
    int reps = 5;
    app.add_option("-m,--model", models, "GGUF model(s) (default: embedded stories260K)");
    app.add_option("-p,--n-prompt", p_list, "prompt lengths, comma separated (0: none)");
    app.add_option("-n,--n-gen", n_list, "generation lengths, comma separated (0: none)");
    app.add_option("-d,--n-depth", d_list, "context depths, comma separated");
    args.add_int("-r,--repetitions", reps, 1, 1000, "timed runs per test");
    app.add_option("--n-gpu-layers", ngl_list,
                   "-ngl: list; -1 all when a GPU is present, 0 CPU, > 0 the GPU");
    app.add_option("-b,--batch-size", b_list, "list: prompt tokens per decode call");
    app.add_option("--ubatch-size", ub_list, "-ub: list: tokens per forward pass");
    app.add_option("-t,--threads", t_list, "list: CPU threads (0: all)");
    app.add_option("-o,--output", output, "md, csv or json")
        ->check(CLI::IsMember({"md", "csv", "json"}));
    args.add_model_flags();
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;
    try {
        const auto ps = parse_list(p_list, "-p", 0, 1 << 20),
                   ns = parse_list(n_list, "-n", 0, 1 << 20),
                   ds = parse_list(d_list, "-d", 0, 1 << 24),
                   ngls = parse_list(ngl_list, "-ngl", -1, 1 << 20),
                   bs = parse_list(b_list, "-b", 1, 1 << 20),
                   ubs = parse_list(ub_list, "-ub", 1, 65536);
        std::vector<int> ts_list;
        for (int t : parse_list(t_list, "-t", 0, 1 << 20)) ts_list.push_back(args.threads(t));
        const bool show_batch = bs.size() > 1 || bs[0] != 2048;
        const bool show_ubatch = ubs.size() > 1 || ubs[0] != 512;
        if (models.empty()) models.push_back("");
        std::vector<Result> results;
        bool header = false;
        for (const std::string& path : models)
            for (const int ngl : ngls) {
                auto model = llm8::Model::load(args.model_params(path, ngl));
                args.lock_memory();
                const llm8::HParams& hp = model->impl().hp;
                const double weight_bytes = double(model->size_bytes());
                // A decode step reads every weight once, except an untied embedding (one row).
                const llm8::LlamaModel& lm = model->impl();
                const double emb_bytes = double(lm.tok_embd.row_bytes) * double(lm.tok_embd.ne1);
                const double step_bytes = weight_bytes - (lm.tied_output ? 0.0 : emb_bytes);
                // Matrix flops per prompt token (the output projection runs for the last token
                // only).
                const double layer_params = double(hp.n_embd) * (hp.q_dim() + 2.0 * hp.kv_dim()) +
                                            double(hp.q_dim()) * hp.n_embd +
                                            3.0 * hp.n_embd * double(hp.n_ff);
                const double out_flops = 2.0 * hp.n_embd * double(hp.n_vocab);
                const double kv_elem = model->kv_int8() ? 1.0 + 4.0 / hp.head_dim
                                       : model->on_gpu() ? 2.0 : 4.0;
                std::mt19937 rng(42);
                std::uniform_int_distribution<int32_t> tok(0, model->n_vocab() - 1);
                struct Test {
                    int p, n, d, threads, b, ub;
                };
                std::vector<Test> tests;
                for (int th : ts_list)
                    for (int b : bs)
                        for (int ub : ubs)
                            for (int d : ds) {
                                for (int p : ps)
                                    if (p > 0) tests.push_back({p, 0, d, th, b, ub});
                                for (int n : ns)
                                    if (n > 0) tests.push_back({0, n, d, th, b, ub});
                            }
                for (const Test& t : tests) {
                    const int n_ctx = t.d + std::max(t.p, t.n) + 1;
                    llm8::Session s(model, {n_ctx, t.ub, t.threads});
                    std::vector<int32_t> depth(static_cast<size_t>(t.d)),
                        prompt(static_cast<size_t>(t.p));
                    for (auto& x : depth) x = tok(rng);
                    for (auto& x : prompt) x = tok(rng);
                    Result r;
                    r.model = model->description();
                    r.backend = model->on_gpu() ? "CUDA" : "CPU";
                    r.type_kv = model->kv_int8() ? "int8" : model->on_gpu() ? "f16" : "f32";
                    r.size_gib = weight_bytes / double(1ull << 30);
                    r.params_b = double(model->n_params()) / 1e9;
                    r.ngl = model->on_gpu() ? hp.n_layer : 0;
                    r.threads = t.threads > 0
                                    ? t.threads  // 0: all cores, shown as the count
                                    : int(std::max(1u, std::thread::hardware_concurrency()));
                    r.n_batch = t.b;
                    r.n_ubatch = t.ub;
                    r.n_prompt = t.p;
                    r.n_gen = t.n;
                    r.depth = t.d;
                    r.test = t.p ? "pp" + std::to_string(t.p) : "tg" + std::to_string(t.n);
                    if (t.d) r.test += " @ d" + std::to_string(t.d);
                    for (int rep = -1; rep < reps; ++rep) {  // rep -1: warm-up
                        s.clear();
                        for (size_t i = 0; i < depth.size(); i += size_t(t.b))
                            s.decode(depth.data() + i, std::min(depth.size() - i, size_t(t.b)));
                        const auto t0 = std::chrono::steady_clock::now();
                        if (t.p) {
                            for (size_t i = 0; i < prompt.size(); i += size_t(t.b))
                                s.decode(prompt.data() + i,
                                         std::min(prompt.size() - i, size_t(t.b)));
                        } else {
                            int32_t x = tok(rng);
                            for (int i = 0; i < t.n; ++i) {
                                s.decode(&x, 1);
                                x = int32_t((x + 7919) % model->n_vocab());
                            }
                        }
                        const double sec =
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                                .count();
                        if (rep >= 0) r.ts.push_back((t.p ? t.p : t.n) / sec);
                    }
                    double sum = 0, sum2 = 0;
                    for (double x : r.ts) sum += x;
                    r.mean = sum / double(r.ts.size());
                    for (double x : r.ts) sum2 += (x - r.mean) * (x - r.mean);
                    r.sd = r.ts.size() > 1 ? std::sqrt(sum2 / double(r.ts.size() - 1)) : 0.0;
                    const double kv_row =
                        2.0 * hp.n_layer * hp.kv_dim() * kv_elem;  // K and V bytes per cached token
                    if (t.n) {
                        // Bytes a decode step must read: every weight once, and the cache so far.
                        const double bytes = step_bytes + kv_row * (t.d + t.n / 2.0);
                        r.rate = bytes * r.mean / 1e9;
                        r.rate_unit = "GB/s";
                    } else {
                        // 2 flops per layer weight per token, plus attention: QK^T and PV over the
                        // causal prefix, plus the output projection of the last token.
                        const double mat = 2.0 * hp.n_layer * layer_params * t.p + out_flops;
                        const double keys = double(t.p) * (t.d + (t.p + 1) / 2.0);
                        const double att = 4.0 * hp.n_layer * double(hp.q_dim()) * keys;
                        r.rate = (mat + att) * r.mean / t.p / 1e12;
                        r.rate_unit = "TFLOP/s";
                        if (r.rate < 1.0) {  // CPU rates: "0.0 TFLOP/s" says nothing
                            r.rate *= 1e3;
                            r.rate_unit = "GFLOP/s";
                        }
                    }
                    results.push_back(r);
                    const bool cpu = !model->on_gpu();
                    // llama-bench's type_k / type_v columns, shown when the cache is not F16.
                    const bool show_kv = model->kv_int8();
                    if (output == "md" && !header) {
                        header = true;
                        std::printf(
                            "| model | size | params | backend | ngl |%s%s%s%s test | t/s | rate |\n",
                            cpu ? " threads |" : "", show_batch ? " n_batch |" : "",
                            show_ubatch ? " n_ubatch |" : "", show_kv ? " type_k | type_v |" : "");
                        std::printf(
                            "| --- | ---: | ---: | --- | --: |%s%s%s%s ---: | ---: | ---: |\n",
                            cpu ? " ---: |" : "", show_batch ? " ---: |" : "",
                            show_ubatch ? " ---: |" : "", show_kv ? " --- | --- |" : "");
                    }
                    if (output == "md") {
                        std::string extra;
                        if (cpu) extra += " " + std::to_string(r.threads) + " |";
                        if (show_batch) extra += " " + std::to_string(r.n_batch) + " |";
                        if (show_ubatch) extra += " " + std::to_string(r.n_ubatch) + " |";
                        if (show_kv) extra += " " + r.type_kv + " | " + r.type_kv + " |";
                        std::printf("| %s | %s | %s | %s | %d |%s %s | %s | %s |\n",
                                    r.model.c_str(), fmt("%.2f GiB", r.size_gib).c_str(),
                                    fmt("%.2f B", r.params_b).c_str(), r.backend.c_str(), r.ngl,
                                    extra.c_str(), r.test.c_str(),
                                    fmt("%.2f ± %.2f", r.mean, r.sd).c_str(),
                                    (std::string(r.rate_unit) == "GB/s"
                                         ? fmt("%.0f GB/s", r.rate)
                                         : fmt("%.1f ", r.rate) + r.rate_unit)
                                        .c_str());
                    }
                    std::fflush(stdout);
                }
            }
        if (output == "csv") {
            std::printf(
                "model,size_gib,params_b,backend,ngl,threads,n_batch,n_ubatch,type_k,type_v,test,"
                "n_prompt,n_gen,n_depth,avg_ts,stddev_ts,rate,rate_unit\n");
            for (const Result& r : results)
                std::printf(
                    "\"%s\",%.4f,%.4f,%s,%d,%d,%d,%d,%s,%s,\"%s\",%d,%d,%d,%.4f,%.4f,%.4f,%s\n",
                    r.model.c_str(), r.size_gib, r.params_b, r.backend.c_str(), r.ngl, r.threads,
                    r.n_batch, r.n_ubatch, r.type_kv.c_str(), r.type_kv.c_str(), r.test.c_str(),
                    r.n_prompt, r.n_gen, r.depth, r.mean, r.sd, r.rate, r.rate_unit);
        } else if (output == "json") {
            std::printf("[\n");
            for (size_t i = 0; i < results.size(); ++i) {
                const Result& r = results[i];
                std::printf(
                    "  {\"model\": \"%s\", \"size_gib\": %.4f, \"params_b\": %.4f, \"backend\": "
                    "\"%s\", "
                    "\"ngl\": %d, \"threads\": %d, \"n_batch\": %d, \"n_ubatch\": %d, "
                    "\"type_k\": \"%s\", \"type_v\": \"%s\", "
                    "\"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": "
                    "%d, "
                    "\"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"rate\": %.4f, \"rate_unit\": \"%s\", "
                    "\"samples_ts\": [",
                    r.model.c_str(), r.size_gib, r.params_b, r.backend.c_str(), r.ngl, r.threads,
                    r.n_batch, r.n_ubatch, r.type_kv.c_str(), r.type_kv.c_str(), r.test.c_str(),
                    r.n_prompt, r.n_gen, r.depth, r.mean, r.sd, r.rate, r.rate_unit);
                for (size_t k = 0; k < r.ts.size(); ++k)
                    std::printf("%s%.4f", k ? ", " : "", r.ts[k]);
                std::printf("]}%s\n", i + 1 < results.size() ? "," : "");
            }
            std::printf("]\n");
        }
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
