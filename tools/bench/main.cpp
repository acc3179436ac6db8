// llm8-bench: llama-bench's interface and table, plus a rate column (GB/s for token
// generation: weights plus the KV cache read per token; TFLOP/s for prompt processing).
//   llm8-bench -m model.gguf -p 512 -n 128 -d 0,4096 -r 5 [-ngl 99] [-o md|csv|json]
// Tests: ppP = P prompt tokens in one go (batches of -ub); tgN = N single-token decode steps;
// "@ dD" = after filling the context with D tokens (not timed). Tokens are random ids. Each
// test runs once untimed as a warm-up, then -r times; t/s is the mean +/- sd of the runs.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "model/llama.h"

namespace {

std::vector<int> parse_list(const std::string& s, const char* flag) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            const int x = std::stoi(item, &used);
            if (used != item.size() || x < 0) throw std::invalid_argument(item);
            v.push_back(x);
        } catch (const std::exception&) {
            llm8::fail(llm8::ErrorKind::invalid_arg,
                       std::string(flag) + ": '" + s + "' is not a list of counts");
        }
    }
    return v;
}

struct Result {
    std::string model, backend, test;
    double size_gib = 0, params_b = 0;
    int ngl = 0, n_prompt = 0, n_gen = 0, depth = 0;
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
    auto args = llm8_tools::normalize_llama_args(argc, argv);
    CLI::App app{"llm8-bench: prompt processing and generation speed, llama-bench style"};
    std::vector<std::string> models;
    std::string p_list = "512", n_list = "128", d_list = "0", output = "md", ctk = "f16",
                ctv = "f16";
    int reps = 5, ngl = -1, ubatch = 512, threads = 0, flash = 1;
    app.add_option("-m,--model", models, "GGUF model(s) (default: embedded stories260K)");
    app.add_option("-p,--n-prompt", p_list, "prompt lengths, comma separated (0: none)");
    app.add_option("-n,--n-gen", n_list, "generation lengths, comma separated (0: none)");
    app.add_option("-d,--n-depth", d_list, "context depths, comma separated");
    app.add_option("-r,--repetitions", reps, "timed runs per test")->check(CLI::Range(1, 1000));
    app.add_option("--n-gpu-layers", ngl, "-ngl: -1 all when a GPU is present, 0 CPU");
    app.add_option("--ubatch-size,-b", ubatch, "-ub: tokens per forward pass")
        ->check(CLI::Range(1, 65536));
    app.add_option("-t,--threads", threads, "CPU threads (0: all)")->check(CLI::NonNegativeNumber);
    app.add_option("--flash-attn", flash,
                   "-fa: accepted for compatibility; llm8's attention is always the fused kernel");
    app.add_option("--cache-type-k", ctk, "-ctk: K cache type (f16)");
    app.add_option("--cache-type-v", ctv, "-ctv: V cache type (f16)");
    app.add_option("-o,--output", output, "md, csv or json")
        ->check(CLI::IsMember({"md", "csv", "json"}));
    try {
        app.parse(args.argc(), args.argv());
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        if (ctk != "f16" || ctv != "f16")
            llm8::fail(llm8::ErrorKind::unsupported,
                       "cache type " + ctk + "/" + ctv + " is not supported yet (f16 only)");
        const auto ps = parse_list(p_list, "-p"), ns = parse_list(n_list, "-n"),
                   ds = parse_list(d_list, "-d");
        if (models.empty()) models.push_back("");
        std::vector<Result> results;
        for (const std::string& path : models) {
            auto model = llm8::Model::load({path, ngl});
            const llm8::HParams& hp = model->impl().hp;
            const double weight_bytes = double(model->size_bytes());
            // A decode step reads every weight once, except an untied embedding (one row).
            const llm8::LlamaModel& lm = model->impl();
            const double emb_bytes = double(lm.tok_embd.row_bytes) * double(lm.tok_embd.ne1);
            const double step_bytes = weight_bytes - (lm.tied_output ? 0.0 : emb_bytes);
            // Matrix flops per prompt token (the output projection runs for the last token only).
            const double layer_params = double(hp.n_embd) * (hp.q_dim() + 2.0 * hp.kv_dim()) +
                                        double(hp.q_dim()) * hp.n_embd +
                                        3.0 * hp.n_embd * double(hp.n_ff);
            const double out_flops = 2.0 * hp.n_embd * double(hp.n_vocab);
            const double kv_elem = model->on_gpu() ? 2.0 : 4.0;
            std::mt19937 rng(42);
            std::uniform_int_distribution<int32_t> tok(0, model->n_vocab() - 1);
            struct Test {
                int p, n, d;
            };
            std::vector<Test> tests;
            for (int d : ds) {
                for (int p : ps)
                    if (p > 0) tests.push_back({p, 0, d});
                for (int n : ns)
                    if (n > 0) tests.push_back({0, n, d});
            }
            for (const Test& t : tests) {
                const int n_ctx = t.d + std::max(t.p, t.n) + 1;
                llm8::Session s(model, {n_ctx, ubatch, threads});
                std::vector<int32_t> depth(static_cast<size_t>(t.d)),
                    prompt(static_cast<size_t>(t.p));
                for (auto& x : depth) x = tok(rng);
                for (auto& x : prompt) x = tok(rng);
                Result r;
                r.model = model->description();
                r.backend = model->on_gpu() ? "CUDA" : "CPU";
                r.size_gib = weight_bytes / double(1ull << 30);
                r.params_b = double(model->n_params()) / 1e9;
                r.ngl = model->on_gpu() ? hp.n_layer : 0;
                r.n_prompt = t.p;
                r.n_gen = t.n;
                r.depth = t.d;
                r.test = t.p ? "pp" + std::to_string(t.p) : "tg" + std::to_string(t.n);
                if (t.d) r.test += " @ d" + std::to_string(t.d);
                for (int rep = -1; rep < reps; ++rep) {  // rep -1: warm-up
                    s.clear();
                    if (t.d) s.decode(depth);
                    const auto t0 = std::chrono::steady_clock::now();
                    if (t.p) {
                        s.decode(prompt);
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
                }
                results.push_back(r);
                if (output == "md" && results.size() == 1) {
                    std::printf("| model | size | params | backend | ngl | test | t/s | rate |\n");
                    std::printf("| --- | ---: | ---: | --- | --: | ---: | ---: | ---: |\n");
                }
                if (output == "md")
                    std::printf(
                        "| %s | %s | %s | %s | %d | %s | %s | %s |\n", r.model.c_str(),
                        fmt("%.2f GiB", r.size_gib).c_str(), fmt("%.2f B", r.params_b).c_str(),
                        r.backend.c_str(), r.ngl, r.test.c_str(),
                        fmt("%.2f ± %.2f", r.mean, r.sd).c_str(),
                        fmt(r.rate_unit[0] == 'G' ? "%.0f GB/s" : "%.1f TFLOP/s", r.rate).c_str());
                std::fflush(stdout);
            }
        }
        if (output == "csv") {
            std::printf(
                "model,size_gib,params_b,backend,ngl,test,n_prompt,n_gen,n_depth,avg_ts,stddev_ts,"
                "rate,rate_unit\n");
            for (const Result& r : results)
                std::printf("\"%s\",%.4f,%.4f,%s,%d,\"%s\",%d,%d,%d,%.4f,%.4f,%.4f,%s\n",
                            r.model.c_str(), r.size_gib, r.params_b, r.backend.c_str(), r.ngl,
                            r.test.c_str(), r.n_prompt, r.n_gen, r.depth, r.mean, r.sd, r.rate,
                            r.rate_unit);
        } else if (output == "json") {
            std::printf("[\n");
            for (size_t i = 0; i < results.size(); ++i) {
                const Result& r = results[i];
                std::printf(
                    "  {\"model\": \"%s\", \"size_gib\": %.4f, \"params_b\": %.4f, \"backend\": "
                    "\"%s\", "
                    "\"ngl\": %d, \"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": "
                    "%d, "
                    "\"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"rate\": %.4f, \"rate_unit\": \"%s\", "
                    "\"samples_ts\": [",
                    r.model.c_str(), r.size_gib, r.params_b, r.backend.c_str(), r.ngl,
                    r.test.c_str(), r.n_prompt, r.n_gen, r.depth, r.mean, r.sd, r.rate,
                    r.rate_unit);
                for (size_t k = 0; k < r.ts.size(); ++k)
                    std::printf("%s%.4f", k ? ", " : "", r.ts[k]);
                std::printf("]}%s\n", i + 1 < results.size() ? "," : "");
            }
            std::printf("]\n");
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "llm8-bench: error: %s\n", e.what());
        return 1;
    }
}
