// llm8-cli: generate text from a prompt, with llama.cpp's flags.
//   llm8-cli [-m MODEL.gguf] -p "Once upon a time" -n 64 --temp 0
//   llm8-cli -m chat.gguf -cnv [-sys "You are ..."] [--chat-template chatml]
// With no -m, the stories260K model linked into llm8 is used.
//
// A full context is shifted as llama-cli does: in plain generation the first --keep tokens of
// the prompt stay and half of the rest is dropped (the kept tokens are evaluated again: llm8's
// cache cannot re-rotate keys); in chat mode the oldest turns after the system prompt are
// dropped. --no-context-shift (and -n -2) stop at a full context instead.
#include <unistd.h>

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

struct GenOptions {
    int limit = 0;  // tokens to generate; < 0: no limit
    bool ignore_eos = false;
    bool context_shift = false;  // shift a full context (plain mode) instead of stopping
    int n_keep = 0;              // tokens kept at the start on a shift
};

// Feeds `toks`, then samples up to `limit` tokens, streaming their text to stdout. Returns the
// generated text. Stops at end of generation (unless ignore_eos), at the limit, or at a full
// context (after saying so) unless the context is shifted. `history` holds the tokens in the
// KV cache and is kept in step.
std::string generate(llm8::Session& session, llm8::Sampler& sampler, const llm8::Model& model,
                     const std::vector<int32_t>& toks, const GenOptions& opt,
                     std::vector<int32_t>& history, const llm8_tools::Args& args, Timing& tm) {
    if (session.n_past() + int(toks.size()) >= session.n_ctx())
        llm8::fail(llm8::ErrorKind::invalid_arg,
                   "prompt of " + std::to_string(toks.size()) +
                       " tokens does not fit the context of " + std::to_string(session.n_ctx()) +
                       " (" + std::to_string(session.n_past()) + " used; raise -c)");
    for (int32_t t : toks) sampler.accept(t);
    history.insert(history.end(), toks.begin(), toks.end());
    if (opt.limit == 0) {  // -n 0: evaluate the prompt only
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
    static bool shift_noted = false;
    const auto t_gen = clock_type::now();
    for (int n = 1;; ++n) {
        ++tm.gen_tokens;
        if (!opt.ignore_eos && model.is_eog(tok)) break;
        sampler.accept(tok);
        const std::string piece = streamer.push(tok);
        text += piece;
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        if (opt.limit > 0 && n >= opt.limit) break;
        if (session.n_past() >= session.n_ctx()) {
            const int keep = std::min(opt.n_keep, session.n_past() - 2);
            if (!opt.context_shift || keep < 0) {
                std::fflush(stdout);
                std::fprintf(stderr, "\n%s: context full (%d tokens): generation stopped\n",
                             args.tool().c_str(), session.n_ctx());
                break;
            }
            // llama-cli's shift: keep the first n_keep tokens, drop half of the rest.
            const int discard = (session.n_past() - keep) / 2;
            if (!shift_noted) {
                std::fflush(stdout);
                if (!args.common.log_disable) std::fputc('\n', stderr);
                args.info("context full (" + std::to_string(session.n_ctx()) +
                          " tokens): context shift, keeping the first " + std::to_string(keep) +
                          " and dropping the next " + std::to_string(discard) +
                          " (--keep, --no-context-shift)");
                shift_noted = true;
            }
            history.erase(history.begin() + keep, history.begin() + keep + discard);
            session.clear();
            session.decode(history);
        }
        history.push_back(tok);
        tok = session.decode_sample(&tok, 1, sampler);
    }
    const std::string rest = streamer.flush();
    text += rest;
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    tm.gen_ms += ms_since(t_gen);
    return text;
}

const char *kColorPrompt = "\033[33m", *kColorInput = "\033[32m", *kColorReset = "\033[0m";

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-cli", "llm8-cli: text generation with a GGUF model");
    CLI::App& app = args.app();
    std::string model_path, prompt, prompt_file;
    int n_predict = 128, n_ctx = 0, n_threads = 0, n_batch = 512, n_gpu_layers = -1, n_keep = 0;
    int64_t seed = -1;
    bool ignore_eos = false, verbose_prompt = false, conversation = false, no_context_shift = false;
    std::string system_prompt, chat_template;
    std::vector<std::string> logit_bias;
    llm8::SamplerParams sp;
    constexpr int64_t kMaxCtx = 1 << 24;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("-p,--prompt", prompt, "prompt text");
    app.add_option("-f,--file", prompt_file, "read the prompt from a file");
    args.add_int("-n,--n-predict", n_predict, -2, kMaxCtx,
                 "tokens to generate (-1: until end of text, -2: until the context is full)");
    auto* ctx_opt =
        args.add_int("-c,--ctx-size", n_ctx, 0, kMaxCtx,
                     "context size (default 4096 capped at the model's; 0: the model's)");
    args.add_int("-b,--batch-size", n_batch, 1, kMaxCtx, "prompt tokens per forward pass");
    int n_ubatch = 512;
    args.add_int("--ubatch-size", n_ubatch, 1, kMaxCtx,
                 "-ub: as llama.cpp's physical batch; a forward pass takes min(-b, -ub) tokens");
    args.add_int("-t,--threads", n_threads, 0, 1 << 20, "CPU threads (0: all)");
    args.add_int64("-s,--seed", seed, -1, INT64_MAX, "RNG seed (-1: random)");
    args.add_float("--temp", sp.temperature, -1, 100, "temperature (<= 0: greedy)");
    args.add_int("--top-k", sp.top_k, 0, 1 << 30, "top-k (0: off)");
    args.add_float("--top-p", sp.top_p, 0, 1, "top-p (1: off)");
    args.add_float("--min-p", sp.min_p, 0, 1, "min-p (0: off)");
    args.add_float("--repeat-penalty", sp.repeat_penalty, 0.01, 100, "repetition penalty (1: off)");
    args.add_int("--repeat-last-n", sp.penalty_last_n, -1, kMaxCtx,
                 "penalty window (0: off, -1: all)");
    args.add_float("--presence-penalty", sp.presence_penalty, -100, 100, "presence penalty");
    args.add_float("--frequency-penalty", sp.frequency_penalty, -100, 100, "frequency penalty");
    app.add_option("-l,--logit-bias", logit_bias, "TOKEN+BIAS or TOKEN-BIAS (repeatable)");
    app.add_flag("--ignore-eos", ignore_eos, "keep generating after end of text");
    app.add_flag("--verbose-prompt", verbose_prompt, "print the prompt's token ids");
    app.add_flag("-i,--conversation,--interactive", conversation,
                 "chat mode (-cnv): read user turns from stdin, answer with the chat template");
    app.add_option("--system-prompt", system_prompt, "system message for chat mode (-sys)");
    app.add_option("--chat-template", chat_template,
                   "chat template name (default: recognised from the model, else chatml)");
    args.add_int("--keep", n_keep, -1, kMaxCtx,
                 "prompt tokens kept when the context is shifted (-1: all)");
    app.add_flag("--no-context-shift", no_context_shift,
                 "stop at a full context instead of dropping old tokens");
    args.add_int("--n-gpu-layers", n_gpu_layers, -1, 1 << 20,
                 "-ngl: layers on the GPU (-1: all when a GPU is present, 0: CPU)");
    args.add_model_flags();
    args.add_prompt_flags();
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;

    try {
        if (!prompt_file.empty())
            prompt = llm8_tools::read_text_file("-f", prompt_file, "prompt file");
        else if (args.common.escape)
            prompt = llm8_tools::process_escapes(prompt);
        if (args.common.escape) system_prompt = llm8_tools::process_escapes(system_prompt);
        for (const auto& s : logit_bias) parse_logit_bias(s, sp.logit_bias);
        sp.seed = seed < 0 ? std::random_device{}() : uint64_t(seed);
        n_threads = args.threads(n_threads);

        const auto t_load = clock_type::now();
        auto model = llm8::Model::load(args.model_params(model_path, n_gpu_layers));
        args.lock_memory();
        // As llama.cpp: 4096 unless asked (a 128K-context model would otherwise take its whole
        // KV cache up front).
        if (ctx_opt->count() == 0) n_ctx = std::min(4096, model->n_ctx_train());
        if (n_ctx > model->n_ctx_train())
            args.warn("-c " + std::to_string(n_ctx) + " is more than the " +
                      std::to_string(model->n_ctx_train()) +
                      " tokens the model was trained on: expect worse text past that point");
        llm8::Session session(model, {n_ctx, std::min(n_batch, n_ubatch), n_threads});
        const double load_ms = ms_since(t_load);
        char line[512];
        std::snprintf(
            line, sizeof line, "model %s (%s), %d layers, context %d, backend %s, seed %llu",
            model->name().c_str(), model->description().c_str(), model->n_layer(), session.n_ctx(),
            model->backend().c_str(), static_cast<unsigned long long>(sp.seed));
        args.info(line);

        llm8::Sampler sampler(sp, model->n_vocab());
        Timing tm;
        const bool color = args.common.color && isatty(STDOUT_FILENO);
        GenOptions opt;
        opt.limit = n_predict == -2 ? -1 : n_predict;
        opt.ignore_eos = ignore_eos;
        opt.context_shift = !no_context_shift && n_predict != -2;
        std::vector<int32_t> history;  // the tokens in the KV cache

        if (conversation) {
            const std::string tmpl =
                llm8::choose_chat_template(chat_template, model->chat_template());
            args.info("chat template " + tmpl + "; type a message, end with Ctrl-D");
            std::vector<llm8::ChatMessage> msgs;
            if (!system_prompt.empty() || !prompt.empty())
                msgs.push_back({"system", system_prompt.empty() ? prompt : system_prompt});
            const size_t first_turn = msgs.size();
            // Room kept free for a reply when old turns are dropped.
            const int reserve = std::max(
                1, std::min(opt.limit > 0 ? opt.limit : session.n_ctx() / 4, session.n_ctx() / 2));
            opt.context_shift = false;  // turns are dropped instead
            bool shift_noted = false;
            std::string shown;  // the rendered conversation already in the context
            std::string user;
            while (true) {
                std::fputs("\n> ", stdout);
                if (color) std::fputs(kColorInput, stdout);
                std::fflush(stdout);
                const bool got = bool(std::getline(std::cin, user));
                if (color) std::fputs(kColorReset, stdout);
                if (!got) break;
                if (user.empty()) continue;
                msgs.push_back({"user", user});
                std::string full = llm8::render_chat_template(tmpl, msgs, true);
                // Only the new text goes through the model; the rest is in the KV cache.
                std::string delta =
                    full.compare(0, shown.size(), shown) == 0 ? full.substr(shown.size()) : full;
                if (delta.size() == full.size() && !shown.empty()) {
                    session.clear();
                    history.clear();
                }
                std::vector<int32_t> toks = model->tokenize(delta, session.n_past() == 0, true);
                if (session.n_past() + int(toks.size()) + reserve > session.n_ctx()) {
                    // Context shift: drop the oldest turns after the system prompt until the
                    // conversation and a reply fit, then evaluate it again from the start.
                    while (true) {
                        full = llm8::render_chat_template(tmpl, msgs, true);
                        toks = model->tokenize(full, true, true);
                        if (int(toks.size()) + reserve <= session.n_ctx() ||
                            msgs.size() - first_turn <= 1)
                            break;
                        const size_t n_drop = msgs.size() - first_turn >= 3 &&
                                                      msgs[first_turn + 1].role == "assistant"
                                                  ? 2
                                                  : 1;
                        msgs.erase(msgs.begin() + long(first_turn),
                                   msgs.begin() + long(first_turn + n_drop));
                    }
                    if (!shift_noted) {
                        std::fflush(stdout);
                        args.info("context full (" + std::to_string(session.n_ctx()) +
                                  " tokens): context shift, dropping the oldest turns" +
                                  (first_turn ? " after the system prompt" : std::string()));
                        shift_noted = true;
                    }
                    session.clear();
                    history.clear();
                }
                const std::string reply =
                    generate(session, sampler, *model, toks, opt, history, args, tm);
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
            // --keep counts prompt tokens after BOS, as llama.cpp's n_keep.
            const int bos = model->vocab_adds_bos() ? 1 : 0;
            opt.n_keep = n_keep < 0 ? int(toks.size()) : std::min(int(toks.size()), n_keep + bos);
            if (color) std::fputs(kColorPrompt, stdout);
            std::fputs(prompt.c_str(), stdout);
            if (color) std::fputs(kColorReset, stdout);
            std::fflush(stdout);
            generate(session, sampler, *model, toks, opt, history, args, tm);
            std::fputs("\n", stdout);
        }
        if (!args.common.log_disable) {
            std::fprintf(stderr, "\nllm8: load time    = %10.2f ms\n", load_ms);
            std::fprintf(
                stderr, "llm8: prompt eval  = %10.2f ms / %5zu tokens (%10.2f tokens per second)\n",
                tm.prompt_ms, tm.prompt_tokens,
                tm.prompt_tokens * 1000.0 / std::max(tm.prompt_ms, 1e-3));
            std::fprintf(
                stderr, "llm8: generation   = %10.2f ms / %5d tokens (%10.2f tokens per second)\n",
                tm.gen_ms, tm.gen_tokens, tm.gen_tokens * 1000.0 / std::max(tm.gen_ms, 1e-3));
        }
        if (args.common.attn_report) std::fputs(session.context().attn_report().c_str(), stderr);
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
