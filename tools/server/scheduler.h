// llm8-server's scheduler: continuous batching over one llm8::Context.
//
// One thread owns the Context. Each step it (1) drops the sequences of cancelled requests
// (their KV blocks are freed at once), (2) admits queued requests while sequences are free,
// sharing the longest cached prefix of each new prompt by forking the sequence that holds it,
// (3) runs one forward pass with the next token of every generating sequence, then (4) one
// with prompt chunks of at most n_ubatch tokens per sequence (n_batch in all), so a long
// prompt never stalls the streams for more than a chunk. Every sequence samples with its own
// llm8::Sampler (its request's parameters and seed); the decode pass samples all its rows
// where the logits are (Context::decode_sample_rows: on a GPU model one launch of the GPU
// sampler, and only token ids cross to the host), except in steps where a request wants
// logprobs, whose logits come to the host.
//
// Decode and prefill run as separate passes so that a decoding sequence's logits do not depend
// on what else is in the step: on the CPU a decode pass of up to 8 sequences computes each
// token's dot products alone (cpu::matmul_rows), so a seeded request gives the same text alone
// or beside others. (Larger decode passes, and the GPU's batched kernels, may differ in the
// last bits of a logit, so a token can differ where two candidates are within rounding.)
//
// Finished sequences stay in the cache as prefixes for later requests (a shared system prompt
// is prefilled once) until their blocks or sequence ids are needed, oldest first.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "llm8/engine.h"
#include "server/request.h"
#include "server/response.h"

namespace llm8_server {

// A request in flight: the HTTP handler waits on it, the scheduler fills it.
class Job {
public:
    Job(GenRequest req, std::vector<int32_t> prompt);

    const GenRequest& request() const { return req_; }
    const std::vector<int32_t>& prompt() const { return prompt_; }

    // ---- the HTTP side
    enum class Wait { news, timeout, done };
    // Waits up to `timeout` for generated text; moves it into *out (appends). `done` once
    // every choice finished or the job failed (error() says why) and all news was taken.
    Wait next(std::vector<ChoiceText>* out, std::chrono::milliseconds timeout);
    void cancel();  // the client went away
    std::string error() const;
    int error_status() const;
    Usage usage() const;

    // ---- the scheduler side
    bool cancelled() const { return cancelled_.load(); }
    void push(ChoiceText c);
    void finish(const Usage& u);
    void fail(int status, const std::string& msg);

private:
    GenRequest req_;
    std::vector<int32_t> prompt_;
    std::atomic<bool> cancelled_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<ChoiceText> news_;
    bool done_ = false;
    std::string error_;
    int error_status_ = 500;
    Usage usage_;
};

struct SchedulerParams {
    int n_parallel = 4;  // sequences generating at once (-np)
    int n_ctx_seq = 0;   // tokens per sequence (-c); 0: the model's training context
    int n_batch = 2048;  // prompt tokens per step, all sequences together (-b)
    int n_ubatch = 512;  // prompt tokens per step of one sequence (-ub)
    int n_threads = 0;
    int queue_max = 64;  // queued requests beyond which submit() refuses (503)
    bool cache_prefixes = true;
};

class Scheduler {
public:
    Scheduler(std::shared_ptr<const llm8::Model> model, const SchedulerParams& params);
    ~Scheduler();

    // Queues a job (its prompt checked against the context by the caller). False when the
    // queue is full.
    bool submit(const std::shared_ptr<Job>& job);
    MetricsSnapshot metrics() const;
    void count_http_error();
    int n_ctx_seq() const { return params_.n_ctx_seq; }
    int n_parallel() const { return params_.n_parallel; }

private:
    struct Seq;
    // A job's bookkeeping while any of its choices runs.
    struct Progress {
        int remaining = 0;  // choices not finished
        bool failed = false;
        bool dropped = false;  // a sequence was dropped: cancelled (or failed)
        Usage usage;
    };
    void loop();
    void step();
    void admit(const std::shared_ptr<Job>& job);
    void drop_cancelled();
    void make_room(int blocks_needed);
    int free_seq_id();
    void evict_oldest_cached();
    void on_logits(Seq& s, const float* logits);
    // The sequence's next token (and its logprobs when the request asked for them).
    void on_token(Seq& s, int32_t tok, std::optional<TokenLogprob> lp);
    void sample(Seq& s, const float* logits);
    void seq_ended(const Job* job, int n_gen, bool dropped);
    void fail_job(const std::shared_ptr<Job>& job, int status, const std::string& msg);
    void snapshot(int batch_tokens, int batch_seqs, double seconds);

    std::shared_ptr<const llm8::Model> model_;
    SchedulerParams params_;
    std::unique_ptr<llm8::Context> ctx_;
    int n_ids_ = 0;  // sequence ids: n_parallel running + as many cached prefixes

    std::vector<std::unique_ptr<Seq>> seqs_;    // running sequences, admission order
    std::vector<std::unique_ptr<Seq>> cached_;  // finished, kept as prefixes (oldest first)
    std::vector<uint8_t> id_used_;
    std::map<const Job*, Progress> progress_;

    mutable std::mutex mu_;  // queue_, stop_, stats_
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    bool stop_ = false;
    MetricsSnapshot stats_;
    std::thread thread_;
};

}  // namespace llm8_server
