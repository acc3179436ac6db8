// llm8-server: an OpenAI-compatible HTTP server (llama-server's flags and extra endpoints) on
// cpp-httplib. This file is the HTTP layer only: routes, authentication, limits, streaming;
// request.* parses and validates bodies, scheduler.* batches the requests over one Context,
// response.* writes the answers.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <httplib.h>
#include <random>
#include <string>
#include <thread>

#include "common/args.h"
#include "common/error.h"
#include "llm8/engine.h"
#include "server/http_pool.h"
#include "server/request.h"
#include "server/response.h"
#include "server/scheduler.h"
#include "tokenizer/chat_template.h"

namespace {

using namespace llm8_server;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct Server {
    std::shared_ptr<const llm8::Model> model;
    std::unique_ptr<Scheduler> sched;
    std::string model_name, chat_template, api_key;
    Limits lim;
    Defaults def;
    bool log = true;
    std::mt19937_64 rng{std::random_device{}()};
    std::mutex rng_mu;

    uint64_t random() {
        std::lock_guard<std::mutex> lk(rng_mu);
        return rng();
    }
    std::string new_id(const char* prefix) {
        static const char* hex = "0123456789abcdef";
        std::string id = prefix;
        uint64_t a = random(), b = random();
        for (int i = 0; i < 16; ++i, a >>= 4) id += hex[a & 15];
        for (int i = 0; i < 8; ++i, b >>= 4) id += hex[b & 15];
        return id;
    }
};

void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(error_json(e), "application/json");
}

// Runs a handler, turning every exception into an OpenAI error answer.
template <typename F>
void guarded(httplib::Response& res, F&& fn) {
    try {
        fn();
    } catch (const ApiError& e) {
        send_error(res, e);
    } catch (const llm8::Error& e) {
        const bool client = e.kind() == llm8::ErrorKind::invalid_arg;
        send_error(res, ApiError(client ? 400 : 500, e.what(), "",
                                 client ? "invalid_request_error" : "server_error"));
    } catch (const std::bad_alloc&) {
        send_error(res, ApiError(503, "out of memory for this request", "", "server_error"));
    } catch (const std::exception& e) {
        send_error(res,
                   ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"));
    }
}

std::vector<int32_t> prompt_tokens(const Server& sv, const GenRequest& r) {
    std::vector<int32_t> ids;
    if (r.endpoint == Endpoint::chat) {
        const std::string text = llm8::render_chat_template(sv.chat_template, r.messages, true);
        ids = sv.model->tokenize(text, true, true);
    } else if (r.prompt_is_tokens) {
        ids = r.prompt_tokens;
    } else {
        ids = sv.model->tokenize(r.prompt, true, true);
    }
    if (ids.empty())
        throw ApiError(400, "the prompt is empty (and the model adds no BOS token)",
                       r.endpoint == Endpoint::chat ? "messages" : "prompt");
    const int n_ctx = sv.sched->n_ctx_seq();
    if (int64_t(ids.size()) >= n_ctx)
        throw ApiError(400,
                       "the prompt is " + std::to_string(ids.size()) +
                           " tokens; the context per sequence is " + std::to_string(n_ctx) +
                           " (llm8-server -c), which leaves no room for an answer",
                       r.endpoint == Endpoint::chat ? "messages" : "prompt", "",
                       "context_length_exceeded");
    return ids;
}

void generate(Server& sv, const httplib::Request& req, httplib::Response& res, Endpoint ep) {
    GenRequest r = ep == Endpoint::chat ? parse_chat_request(req.body, sv.lim, sv.def)
                                        : parse_completion_request(req.body, sv.lim, sv.def);
    std::vector<int32_t> prompt = prompt_tokens(sv, r);
    if (!r.seed_given) r.sampling.seed = sv.random();
    const bool chat = ep == Endpoint::chat;
    const bool logprobs = r.logprobs;
    const bool stream = r.stream, include_usage = r.include_usage;
    const int n = r.n;
    auto job = std::make_shared<Job>(std::move(r), std::move(prompt));
    if (!sv.sched->submit(job))
        throw ApiError(503, "the server is busy: its request queue is full; retry later", "",
                       "unavailable_error", "queue_full");
    ResponseMeta meta{sv.new_id(chat ? "chatcmpl-" : "cmpl-"), int64_t(std::time(nullptr)),
                      sv.model_name};

    if (!stream) {
        std::vector<ChoiceText> choices(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) choices[size_t(i)].index = i;
        std::vector<ChoiceText> news;
        while (job->next(&news, std::chrono::seconds(1)) != Job::Wait::done) {
            for (ChoiceText& c : news) {
                ChoiceText& a = choices[size_t(c.index)];
                a.text += c.text;
                a.logprobs.insert(a.logprobs.end(), c.logprobs.begin(), c.logprobs.end());
                if (!c.finish_reason.empty()) a.finish_reason = c.finish_reason;
            }
            news.clear();
        }
        const std::string err = job->error();
        if (!err.empty()) throw ApiError(job->error_status(), err, "", "server_error");
        const json body = chat ? chat_response(meta, choices, job->usage(), logprobs)
                               : completion_response(meta, choices, job->usage(), logprobs);
        res.set_content(dump(body), "application/json");
        return;
    }

    // Server-sent events. A comment line goes out while nothing else does, so that a client
    // that went away is found within a second or two (its job is then cancelled and its KV
    // blocks freed) even while the request waits in the queue.
    auto first = std::make_shared<std::vector<bool>>(size_t(n), true);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, meta, chat, logprobs, include_usage, first](size_t, httplib::DataSink& sink) {
            std::vector<ChoiceText> news;
            const Job::Wait w = job->next(&news, std::chrono::milliseconds(1000));
            if (w == Job::Wait::timeout) {
                static const char ping[] = ": ping\n\n";
                return sink.write(ping, sizeof ping - 1);
            }
            for (const ChoiceText& c : news) {
                const bool f = (*first)[size_t(c.index)];
                (*first)[size_t(c.index)] = false;
                const std::string ev = sse_event(chat ? chat_chunk(meta, c, f, logprobs)
                                                      : completion_chunk(meta, c, logprobs));
                if (!sink.write(ev.data(), ev.size())) return false;
            }
            if (w != Job::Wait::done) return true;
            std::string tail;
            const std::string err = job->error();
            if (!err.empty())
                tail +=
                    sse_event(error_object(ApiError(job->error_status(), err, "", "server_error")));
            else if (include_usage)
                tail += sse_event(usage_chunk(meta, chat, job->usage()));
            tail += kSseDone;
            if (!sink.write(tail.data(), tail.size())) return false;
            sink.done();
            return true;
        },
        [job](bool) { job->cancel(); });
}

json model_json(const Server& sv) {
    return {{"id", sv.model_name},
            {"object", "model"},
            {"created", 0},
            {"owned_by", "llm8"},
            {"meta",
             {{"n_vocab", sv.model->n_vocab()},
              {"n_ctx_train", sv.model->n_ctx_train()},
              {"n_ctx_seq", sv.sched->n_ctx_seq()},
              {"n_parallel", sv.sched->n_parallel()},
              {"n_params", sv.model->n_params()},
              {"size", sv.model->size_bytes()},
              {"description", sv.model->description()},
              {"backend", sv.model->backend()},
              {"chat_template", sv.chat_template}}}};
}

void routes(httplib::Server& http, Server& sv) {
    using httplib::Request;
    using httplib::Response;
    http.Get("/health", [](const Request&, Response& res) {
        res.set_content("{\"status\":\"ok\"}", "application/json");
    });
    http.Get("/metrics", [&sv](const Request&, Response& res) {
        res.set_content(prometheus_text(sv.sched->metrics()), "text/plain; version=0.0.4");
    });
    auto models = [&sv](const Request&, Response& res) {
        const json body = {{"object", "list"}, {"data", json::array({model_json(sv)})}};
        res.set_content(dump(body), "application/json");
    };
    http.Get("/v1/models", models);
    http.Get("/models", models);
    auto chat = [&sv](const Request& req, Response& res) {
        guarded(res, [&] { generate(sv, req, res, Endpoint::chat); });
    };
    auto completion = [&sv](const Request& req, Response& res) {
        guarded(res, [&] { generate(sv, req, res, Endpoint::completion); });
    };
    http.Post("/v1/chat/completions", chat);
    http.Post("/chat/completions", chat);
    http.Post("/v1/completions", completion);
    http.Post("/completions", completion);
    http.Post("/tokenize", [&sv](const Request& req, Response& res) {
        guarded(res, [&] {
            const TokenizeRequest t = parse_tokenize_request(req.body, sv.lim);
            const std::vector<int32_t> ids = sv.model->tokenize(t.content, t.add_special, true);
            json toks = json::array();
            for (int32_t id : ids) {
                if (t.with_pieces)
                    toks.push_back({{"id", id}, {"piece", sv.model->token_to_piece(id, true)}});
                else
                    toks.push_back(id);
            }
            res.set_content(dump({{"tokens", toks}}), "application/json");
        });
    });
    http.Post("/detokenize", [&sv](const Request& req, Response& res) {
        guarded(res, [&] {
            const std::vector<int32_t> ids = parse_detokenize_request(req.body, sv.lim);
            res.set_content(dump({{"content", sv.model->detokenize(ids)}}), "application/json");
        });
    });
}

// cpp-httplib listens with a backlog of 5 (compiled into Debian's library): a burst of
// connections overflows it and the kernel drops their SYNs (clients retry after a second, then
// three...). Listening again on the bound socket raises the backlog.
class HttpServer : public httplib::Server {
public:
    void raise_backlog() {
        const socket_t fd = svr_sock_;
        if (fd != INVALID_SOCKET) ::listen(fd, SOMAXCONN);
    }
};

// SIGINT/SIGTERM: the handler (which may run on any thread: OpenBLAS starts its threads
// before main) only writes the signal to a pipe; a waiter thread reads it and stops the HTTP
// server once one listens (main then returns and every destructor runs), or exits at once
// before that (a model still loading).
std::atomic<httplib::Server*> g_http{nullptr};
int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
    const unsigned char b = static_cast<unsigned char>(sig);
    const ssize_t r = write(g_signal_pipe[1], &b, 1);
    (void)r;
}

void handle_signals() {
    if (pipe(g_signal_pipe) != 0) return;
    std::thread([] {
        unsigned char sig = 0;
        while (read(g_signal_pipe[0], &sig, 1) != 1) {
        }
        if (httplib::Server* http = g_http.load()) {
            http->stop();
        } else {
            std::_Exit(128 + sig);
        }
    }).detach();
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    llm8_tools::Args args("llm8-server",
                          "llm8-server: an OpenAI-compatible HTTP server with continuous batching");
    CLI::App& app = args.app();
    std::string model_path, host = "127.0.0.1", api_key, alias, chat_template;
    int port = 8080, n_parallel = 4, n_ctx = 0, n_batch = 2048, n_ubatch = 512, n_threads = 0;
    int n_gpu_layers = -1, n_predict = -1, timeout = 60, threads_http = -1, queue_max = 64;
    int64_t seed = -1, max_body = 8 << 20;
    bool no_prefix_cache = false, metrics_flag = false, cont_batching = true;
    llm8::SamplerParams sp;
    constexpr int64_t kMaxCtx = 1 << 24;
    app.add_option("-m,--model", model_path, "GGUF model (default: embedded stories260K)");
    app.add_option("--host", host, "address to listen on [127.0.0.1]");
    args.add_int("--port", port, 0, 65535, "port to listen on (0: any free port)");
    args.add_int("--parallel", n_parallel, 1, 256, "-np: sequences generating at once");
    auto* ctx_opt = args.add_int("-c,--ctx-size", n_ctx, 0, kMaxCtx,
                                 "context per sequence (default 4096 capped at the model's; 0: "
                                 "the model's); the KV cache holds -np times this");
    args.add_int("-b,--batch-size", n_batch, 1, kMaxCtx,
                 "prompt tokens per step, all sequences (2048, as llama-server)");
    args.add_int("--ubatch-size", n_ubatch, 1, kMaxCtx,
                 "-ub: prompt tokens per step of one sequence");
    args.add_int("-t,--threads", n_threads, 0, 1 << 20, "CPU threads (0: all)");
    args.add_int("--n-gpu-layers", n_gpu_layers, -1, 1 << 20,
                 "-ngl: layers on the GPU (-1: all when a GPU is present, 0: CPU)");
    args.add_int("-n,--n-predict", n_predict, -1, kMaxCtx,
                 "default max_tokens (-1: until end of text or the context is full)");
    args.add_int64("-s,--seed", seed, -1, INT64_MAX,
                   "default seed of requests that give none (-1: a random seed per request)");
    args.add_float("--temp", sp.temperature, 0, 100, "default temperature (0: greedy)");
    args.add_int("--top-k", sp.top_k, 0, 1 << 30, "default top-k (0: off)");
    args.add_float("--top-p", sp.top_p, 0, 1, "default top-p (1: off)");
    args.add_float("--min-p", sp.min_p, 0, 1, "default min-p (0: off)");
    args.add_float("--repeat-penalty", sp.repeat_penalty, 0.01, 100,
                   "default repetition penalty (1: off)");
    args.add_int("--repeat-last-n", sp.penalty_last_n, -1, kMaxCtx,
                 "default penalty window (0: off, -1: all)");
    args.add_float("--presence-penalty", sp.presence_penalty, -2, 2, "default presence penalty");
    args.add_float("--frequency-penalty", sp.frequency_penalty, -2, 2, "default frequency penalty");
    app.add_option("--api-key", api_key,
                   "require 'Authorization: Bearer KEY' on every endpoint but /health");
    app.add_option("-a,--alias", alias, "model name in answers and /v1/models");
    app.add_option("--chat-template", chat_template,
                   "chat template name (default: recognised from the model, else chatml)");
    args.add_int("--timeout", timeout, 1, 86400, "seconds to wait for a client's bytes [60]");
    args.add_int("--threads-http", threads_http, -1, 65536,
                 "most connections served at once (-1: 1024)");
    args.add_int("--max-queue", queue_max, 1, 1 << 20,
                 "requests waiting for a sequence beyond which new ones get 503");
    args.add_int64("--max-body", max_body, 1024, int64_t(1) << 32,
                   "largest request body in bytes (413 beyond)");
    app.add_flag("--no-prefix-cache", no_prefix_cache,
                 "free finished sequences at once instead of keeping them for prefix reuse");
    app.add_flag("--metrics", metrics_flag, "accepted: /metrics is always on");
    app.add_flag("--cont-batching", cont_batching, "-cb: accepted: batching is always continuous");
    args.add_model_flags();
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;

    handle_signals();
    try {
        signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not a signal
        // Every connection is a socket: use the hard limit on open files, not the soft one.
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        n_threads = args.threads(n_threads);
        Server sv;
        sv.log = !args.common.log_disable;
        sv.api_key = api_key;
        sv.model = llm8::Model::load(args.model_params(model_path, n_gpu_layers));
        args.lock_memory();
        if (ctx_opt->count() == 0) n_ctx = std::min(4096, sv.model->n_ctx_train());
        if (n_ctx == 0) n_ctx = sv.model->n_ctx_train();
        if (n_ctx > sv.model->n_ctx_train())
            args.warn("-c " + std::to_string(n_ctx) + " is more than the " +
                      std::to_string(sv.model->n_ctx_train()) +
                      " tokens the model was trained on: expect worse text past that point");
        sv.chat_template = llm8::choose_chat_template(chat_template, sv.model->chat_template());
        sv.model_name = !alias.empty()       ? alias
                        : model_path.empty() ? std::string("stories260K")
                                             : model_path.substr(model_path.find_last_of('/') + 1);
        SchedulerParams spar;
        spar.n_parallel = n_parallel;
        spar.n_ctx_seq = n_ctx;
        spar.n_batch = n_batch;
        spar.n_ubatch = n_ubatch;
        spar.n_threads = n_threads;
        spar.queue_max = queue_max;
        spar.cache_prefixes = !no_prefix_cache;
        sv.sched = std::make_unique<Scheduler>(sv.model, spar);
        sv.lim.n_vocab = sv.model->n_vocab();
        sv.lim.max_tokens = n_ctx;
        sv.lim.max_n = n_parallel;
        sv.lim.max_text = size_t(max_body);
        sv.def.sampling = sp;
        sv.def.seed_fixed = seed >= 0;
        if (seed >= 0) sv.def.sampling.seed = uint64_t(seed);
        sv.def.max_tokens = n_predict;

        HttpServer http;
        const size_t max_conn = threads_http > 0 ? size_t(threads_http) : 1024;
        http.new_task_queue = [max_conn] {
            return new ElasticPool(std::min<size_t>(8, max_conn), max_conn);
        };
        http.set_read_timeout(timeout, 0);
        http.set_write_timeout(timeout, 0);
        http.set_keep_alive_max_count(100);
        http.set_tcp_nodelay(true);  // headers and body (and each SSE event) go out at once
        http.set_payload_max_length(size_t(max_body));
        http.set_pre_routing_handler([&sv](const httplib::Request& req, httplib::Response& res) {
            if (sv.api_key.empty() || req.path == "/health")
                return httplib::Server::HandlerResponse::Unhandled;
            std::string given;
            const std::string auth = req.get_header_value("Authorization");
            if (auth.compare(0, 7, "Bearer ") == 0) given = auth.substr(7);
            if (constant_time_equal(given, sv.api_key))
                return httplib::Server::HandlerResponse::Unhandled;
            send_error(res,
                       ApiError(401, "invalid or missing API key: send 'Authorization: Bearer KEY'",
                                "", "authentication_error", "invalid_api_key"));
            return httplib::Server::HandlerResponse::Handled;
        });
        // Every answer of 400 or more passes here: errors that cpp-httplib itself produced (no
        // such route, body too large, a malformed request line) get OpenAI's error body too.
        http.set_error_handler([&sv](const httplib::Request& req, httplib::Response& res) {
            sv.sched->count_http_error();
            if (!res.body.empty()) return;
            std::string msg, type = "invalid_request_error";
            if (res.status == 404) {
                msg = "no endpoint " + req.method + " " + req.path.substr(0, 200);
                type = "not_found_error";
            } else if (res.status == 413) {
                msg = "the request body is larger than the server's limit (--max-body)";
            } else {
                msg = "HTTP " + std::to_string(res.status) + ": the request could not be read";
            }
            res.set_content(error_json(ApiError(res.status, msg, "", type)), "application/json");
        });
        if (sv.log)
            http.set_logger([&args](const httplib::Request& req, const httplib::Response& res) {
                args.info(req.method + " " + req.path.substr(0, 200) + " " +
                          std::to_string(res.status));
            });
        routes(http, sv);
        int bound = port;
        if (port == 0)
            bound = http.bind_to_any_port(host);
        else if (!http.bind_to_port(host, port))
            bound = -1;
        if (bound < 0)
            llm8::fail(llm8::ErrorKind::io, "cannot listen on " + host + ":" +
                                                std::to_string(port) +
                                                " (in use, or not an address of this machine)");
        http.raise_backlog();
        char line[512];
        std::snprintf(line, sizeof line,
                      "model %s (%s), backend %s, %d sequences of %d tokens, listening on "
                      "http://%s:%d",
                      sv.model_name.c_str(), sv.model->description().c_str(),
                      sv.model->backend().c_str(), n_parallel, n_ctx, host.c_str(), bound);
        // Always printed (tests and scripts read the port from it), even with --log-disable.
        std::fprintf(stderr, "llm8-server: %s\n", line);
        std::fflush(stderr);
        g_http = &http;
        http.listen_after_bind();
        g_http = nullptr;
        args.info("stopped");
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
