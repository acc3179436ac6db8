// llm8-cli: generate text from a prompt, with llama.cpp's flags.
//   llm8-cli [-m MODEL.gguf] -p "Once upon a time" -n 64 --temp 0
//   llm8-cli -m chat.gguf -cnv [-sys "You are ..."] [--chat-template chatml]
// With no -m, the stories260K model linked into llm8 is used.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "llm8/sampling.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/token_streamer.h"

namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// "TOKEN(+|-)BIAS", as llama.cpp's --logit-bias (e.g. "15043+1", "29871-inf").
void parse_logit_bias(const std::string& s, std::map<int32_t, float>& out) {
    const size_t k = s.find_first_of("+-", 1);
    if (k == std::string::npos)
        llm8::fail(llm8::ErrorKind::invalid_arg, "--logit-bias '" + s + "': expected TOKEN+BIAS");
    try {
        size_t used = 0;
        const int id = std::stoi(s.substr(0, k), &used);
        if (used != k) throw std::invalid_argument("id");
        std::string v = s.substr(k);
        const float b = (v == "-inf" || v == "-INF") ? -INFINITY : std::stof(v);
        out[id] = b;
    } catch (const std::exception&) {
        llm8::fail(llm8::ErrorKind::invalid_arg, "--logit-bias '" + s + "': expected TOKEN+BIAS");
    }
}

struct Timing {
    double prompt_ms = 0, gen_ms = 0;
    size_t prompt_tokens = 0;
    int gen_tokens = 0;
};

// Feeds `toks`, then samples up to `limit` tokens, streaming their text to stdout. Returns the
// generated text. Stops at end of generation (unless ignore_eos) or a full context.
std::string generate(llm8::Session& session, llm8::Sampler& sampler, const llm8::Model& model,
                     const std::vector<int32_t>& toks, int limit, bool ignore_eos, Timing& tm) {
    if (session.n_past() + int(toks.size()) >= session.n_ctx())
        llm8::fail(llm8::ErrorKind::invalid_arg,
                   "prompt of " + std::to_string(toks.size()) +
                       " tokens does not fit the context of " + std::to_string(session.n_ctx()) +
                       " (" + std::to_string(session.n_past()) + " used; raise -c)");
    for (int32_t t : toks) sampler.accept(t);
    if (limit <= 0) {  // -n 0: evaluate the prompt only
        const auto t0 = clock_type::now();
        session.decode(toks);
        tm.prompt_ms += ms_since(t0);
        tm.prompt_tokens += toks.size();
        return "";
    }
    // The forward pass ends in the sampler: on a GPU only the token id comes back.
    const auto t_prompt = clock_type::now();
    int32_t tok = session.decode_sample(toks, sampler);
    tm.prompt_ms += ms_since(t_prompt);
    tm.prompt_tokens += toks.size();

    llm8::TokenStreamer streamer(model.vocab());
    std::string text;
    const auto t_gen = clock_type::now();
    for (int n = 1;; ++n) {
        ++tm.gen_tokens;
        if (!ignore_eos && model.is_eog(tok)) break;
        sampler.accept(tok);
        const std::string piece = streamer.push(tok);
        text += piece;
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        if (n >= limit || session.n_past() >= session.n_ctx()) break;
        tok = session.decode_sample(&tok, 1, sampler);
    }
    const std::string rest = streamer.flush();
    text += rest;
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    tm.gen_ms += ms_since(t_gen);
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    auto args = llm8_tools::normalize_llama_args(argc, argv);
    CLI::App app{"llm8-cli: text generation with a GGUF model"};
    std::string model_path, prompt, prompt_file;
    int n_predict = 128, n_ctx = 0, n_threads = 0, n_batch = 512, n_gpu_layers = -1;
    int64_t seed = -1;
    bool ignore_eos = false, verbose_prompt = false, conversation = false;
    std::string system_prompt, chat_template;
    std::vector<std::string> logit_bias;
    llm8::SamplerParams sp;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("-p,--prompt", prompt, "prompt text");
    app.add_option("-f,--file", prompt_file, "read the prompt from a file");
    app.add_option("-n,--n-predict", n_predict,
                   "tokens to generate (-1: until end of text or full context)");
    auto* ctx_opt =
        app.add_option("-c,--ctx-size", n_ctx,
                       "context size (default 4096 capped at the model's; 0: the model's)")
            ->check(CLI::NonNegativeNumber);
    app.add_option("-b,--batch-size", n_batch, "prompt tokens per forward pass")
        ->check(CLI::PositiveNumber);
    app.add_option("-t,--threads", n_threads, "CPU threads (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("-s,--seed", seed, "RNG seed (-1: random)");
    app.add_option("--temp", sp.temperature, "temperature (0: greedy)");
    app.add_option("--top-k", sp.top_k, "top-k (0: off)");
    app.add_option("--top-p", sp.top_p, "top-p (1: off)");
    app.add_option("--min-p", sp.min_p, "min-p (0: off)");
    app.add_option("--repeat-penalty", sp.repeat_penalty, "repetition penalty (1: off)");
    app.add_option("--repeat-last-n", sp.penalty_last_n, "penalty window (0: off, -1: all)");
    app.add_option("--presence-penalty", sp.presence_penalty, "presence penalty");
    app.add_option("--frequency-penalty", sp.frequency_penalty, "frequency penalty");
    app.add_option("-l,--logit-bias", logit_bias, "TOKEN+BIAS or TOKEN-BIAS (repeatable)");
    app.add_flag("--ignore-eos", ignore_eos, "keep generating after end of text");
    app.add_flag("--verbose-prompt", verbose_prompt, "print the prompt's token ids");
    app.add_flag("-i,--conversation", conversation,
                 "chat mode (-cnv): read user turns from stdin, answer with the chat template");
    app.add_option("--system-prompt", system_prompt, "system message for chat mode (-sys)");
    app.add_option("--chat-template", chat_template,
                   "chat template name (default: recognised from the model, else chatml)");
    app.add_option("--n-gpu-layers", n_gpu_layers,
                   "-ngl: layers on the GPU (-1: all when a GPU is present, 0: CPU)");
    try {
        app.parse(args.argc(), args.argv());
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    try {
        if (!prompt_file.empty()) {
            std::ifstream f(prompt_file, std::ios::binary);
            if (!f)
                llm8::fail(llm8::ErrorKind::io, "cannot open prompt file '" + prompt_file + "'");
            std::stringstream ss;
            ss << f.rdbuf();
            prompt = ss.str();
        }
        for (const auto& s : logit_bias) parse_logit_bias(s, sp.logit_bias);
        sp.seed = seed < 0 ? std::random_device{}() : uint64_t(seed);

        const auto t_load = clock_type::now();
        auto model = llm8::Model::load({model_path, n_gpu_layers});
        // As llama.cpp: 4096 unless asked (a 128K-context model would otherwise take its whole
        // KV cache up front).
        if (ctx_opt->count() == 0) n_ctx = std::min(4096, model->n_ctx_train());
        llm8::Session session(model, {n_ctx, n_batch, n_threads});
        const double load_ms = ms_since(t_load);
        std::fprintf(stderr, "llm8: model %s (%s), %d layers, context %d, backend %s, seed %llu\n",
                     model->name().c_str(), model->description().c_str(), model->n_layer(),
                     session.n_ctx(), model->backend().c_str(),
                     static_cast<unsigned long long>(sp.seed));

        llm8::Sampler sampler(sp, model->n_vocab());
        Timing tm;
        const int limit = n_predict < 0 ? session.n_ctx() : n_predict;

        if (conversation) {
            const std::string tmpl =
                llm8::choose_chat_template(chat_template, model->chat_template());
            std::fprintf(stderr, "llm8: chat template %s; type a message, end with Ctrl-D\n",
                         tmpl.c_str());
            std::vector<llm8::ChatMessage> msgs;
            if (!system_prompt.empty() || !prompt.empty())
                msgs.push_back({"system", system_prompt.empty() ? prompt : system_prompt});
            std::string shown;  // the rendered conversation already in the context
            std::string line;
            while (true) {
                std::fputs("\n> ", stdout);
                std::fflush(stdout);
                if (!std::getline(std::cin, line)) break;
                if (line.empty()) continue;
                msgs.push_back({"user", line});
                const std::string full = llm8::render_chat_template(tmpl, msgs, true);
                // Only the new text goes through the model; the rest is in the KV cache.
                const std::string delta =
                    full.compare(0, shown.size(), shown) == 0 ? full.substr(shown.size()) : full;
                if (delta.size() == full.size() && !shown.empty()) session.clear();
                const bool first = session.n_past() == 0;
                const std::vector<int32_t> toks = model->tokenize(delta, first, true);
                const std::string reply =
                    generate(session, sampler, *model, toks, limit, false, tm);
                msgs.push_back({"assistant", reply});
                shown = llm8::render_chat_template(tmpl, msgs, false);
                std::fputs("\n", stdout);
            }
        } else {
            std::vector<int32_t> toks = model->tokenize(prompt, true);
            if (toks.empty())
                llm8::fail(llm8::ErrorKind::invalid_arg,
                           "empty prompt and the model adds no BOS token");
            if (verbose_prompt) {
                std::fprintf(stderr, "prompt tokens:");
                for (int32_t t : toks) std::fprintf(stderr, " %d", t);
                std::fprintf(stderr, "\n");
            }
            if (int(toks.size()) >= session.n_ctx())
                llm8::fail(llm8::ErrorKind::invalid_arg,
                           "prompt of " + std::to_string(toks.size()) +
                               " tokens does not fit the context of " +
                               std::to_string(session.n_ctx()) + " (raise -c)");
            std::fputs(prompt.c_str(), stdout);
            std::fflush(stdout);
            generate(session, sampler, *model, toks, limit, ignore_eos, tm);
            std::fputs("\n", stdout);
        }
        std::fprintf(stderr, "\nllm8: load time    = %10.2f ms\n", load_ms);
        std::fprintf(stderr,
                     "llm8: prompt eval  = %10.2f ms / %5zu tokens (%10.2f tokens per second)\n",
                     tm.prompt_ms, tm.prompt_tokens,
                     tm.prompt_tokens * 1000.0 / std::max(tm.prompt_ms, 1e-3));
        std::fprintf(stderr,
                     "llm8: generation   = %10.2f ms / %5d tokens (%10.2f tokens per second)\n",
                     tm.gen_ms, tm.gen_tokens, tm.gen_tokens * 1000.0 / std::max(tm.gen_ms, 1e-3));
        return 0;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "\nllm8-cli: error: %s\n", e.what());
        return 1;
    }
}
