// The continuous-batching scheduler (scheduler.h).
#include "server/scheduler.h"

#include <algorithm>
#include <cmath>

#include "llm8/sampling.h"
#include "server/stop_strings.h"
#include "tokenizer/token_streamer.h"
#include "tokenizer/vocab.h"

namespace llm8_server {

using clock_type = std::chrono::steady_clock;

// ---- Job ----------------------------------------------------------------------------------------

Job::Job(GenRequest req, std::vector<int32_t> prompt)
    : req_(std::move(req)), prompt_(std::move(prompt)) {}

Job::Wait Job::next(std::vector<ChoiceText>* out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return !news_.empty() || done_; });
    if (!news_.empty()) {
        while (!news_.empty()) {
            out->push_back(std::move(news_.front()));
            news_.pop_front();
        }
        return Wait::news;
    }
    return done_ ? Wait::done : Wait::timeout;
}

void Job::cancel() {
    cancelled_ = true;
}

std::string Job::error() const {
    std::lock_guard<std::mutex> lk(mu_);
    return error_;
}

int Job::error_status() const {
    std::lock_guard<std::mutex> lk(mu_);
    return error_status_;
}

Usage Job::usage() const {
    std::lock_guard<std::mutex> lk(mu_);
    return usage_;
}

void Job::push(ChoiceText c) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        news_.push_back(std::move(c));
    }
    cv_.notify_all();
}

void Job::finish(const Usage& u) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        usage_ = u;
        done_ = true;
    }
    cv_.notify_all();
}

void Job::fail(int status, const std::string& msg) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (done_) return;
        error_ = msg;
        error_status_ = status;
        done_ = true;
    }
    cv_.notify_all();
}

// ---- Scheduler
// ------------------------------------------------------------------------------------

struct Scheduler::Seq {
    int id = -1;               // Context sequence id
    std::shared_ptr<Job> job;  // null for a cached prefix
    int choice = 0;
    std::vector<int32_t> tokens;  // prompt, then generated; tokens[0, n_past) are in the cache
    int n_prompt = 0;
    int n_past = 0;
    int n_gen = 0;
    int prefill_start = 0;       // where this sequence's own prefill began (its chunk boundaries)
    int32_t pending = -1;        // sampled, to be fed in the next decode pass
    std::vector<int> child_ids;  // choices 1..n-1, forked when the prompt is in
    std::unique_ptr<llm8::Sampler> sampler;
    std::unique_ptr<llm8::TokenStreamer> streamer;
    std::unique_ptr<StopMatcher> stop;
    bool done = false;  // finished this step: cache or free it at the end of the step
    bool keep = false;  // done, and worth keeping as a prefix
};

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, size_t n_b) {
    const size_t n = std::min(a.size(), n_b);
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

// Log-softmax of the row at `tok` and the k most likely tokens (ties: lower id).
TokenLogprob logprobs_of(const llm8::Model& model, const float* logits, int32_t tok, int k) {
    const int V = model.n_vocab();
    float mx = -INFINITY;
    for (int i = 0; i < V; ++i)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < V; ++i)
        if (std::isfinite(logits[i])) sum += std::exp(double(logits[i]) - mx);
    const double lse = double(mx) + std::log(sum);
    auto lp = [&](int32_t id) {
        return std::isfinite(logits[id]) ? float(double(logits[id]) - lse) : -INFINITY;
    };
    TokenLogprob out;
    out.token = model.token_to_piece(tok);
    out.logprob = lp(tok);
    if (k > 0) {
        auto val = [logits](int32_t i) { return std::isnan(logits[i]) ? -INFINITY : logits[i]; };
        std::vector<int32_t> ids(static_cast<size_t>(V));
        for (int32_t i = 0; i < V; ++i) ids[size_t(i)] = i;
        k = std::min(k, V);
        std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
            return val(a) > val(b) || (val(a) == val(b) && a < b);
        });
        for (int i = 0; i < k; ++i)
            out.top.push_back({model.token_to_piece(ids[size_t(i)]), lp(ids[size_t(i)])});
    }
    return out;
}

}  // namespace

Scheduler::Scheduler(std::shared_ptr<const llm8::Model> model, const SchedulerParams& params)
    : model_(std::move(model)), params_(params) {
    if (params_.n_parallel < 1) params_.n_parallel = 1;
    if (params_.n_ctx_seq <= 0) params_.n_ctx_seq = model_->n_ctx_train();
    params_.n_ubatch = std::max(1, std::min(params_.n_ubatch, params_.n_batch));
    n_ids_ = params_.cache_prefixes ? 2 * params_.n_parallel : params_.n_parallel;
    llm8::ContextParams cp;
    cp.n_ctx = params_.n_ctx_seq * params_.n_parallel;
    cp.n_seq_max = n_ids_;
    cp.n_batch = std::max(params_.n_batch, params_.n_parallel);
    cp.n_threads = params_.n_threads;
    ctx_ = std::make_unique<llm8::Context>(model_, cp);
    id_used_.assign(size_t(n_ids_), 0);
    stats_.n_parallel = params_.n_parallel;
    snapshot(0, 0, 0);
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& j : queue_) j->fail(503, "the server is shutting down");
    for (auto& s : seqs_)
        if (s->job) s->job->fail(503, "the server is shutting down");
}

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (int(queue_.size()) >= params_.queue_max) {
            ++stats_.requests_rejected;
            return false;
        }
        queue_.push_back(job);
        ++stats_.requests_total;
        stats_.queue_length = int(queue_.size());
    }
    cv_.notify_all();
    return true;
}

MetricsSnapshot Scheduler::metrics() const {
    std::lock_guard<std::mutex> lk(mu_);
    MetricsSnapshot s = stats_;
    s.queue_length = int(queue_.size());
    return s;
}

void Scheduler::count_http_error() {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.http_errors;
}

void Scheduler::snapshot(int batch_tokens, int batch_seqs, double seconds) {
    const llm8::KvMemory mem = ctx_->kv_memory();
    int running = 0;
    for (const auto& s : seqs_) running += s->done ? 0 : 1;
    std::lock_guard<std::mutex> lk(mu_);
    if (batch_seqs > 0) {
        stats_.batch_tokens = batch_tokens;
        stats_.batch_sequences = batch_seqs;
    } else if (seqs_.empty()) {
        stats_.batch_tokens = stats_.batch_sequences = 0;
    }
    stats_.busy_seconds += seconds;
    stats_.sequences_running = running;
    stats_.cached_prefixes = int(cached_.size());
    stats_.kv_blocks_total = mem.n_blocks;
    stats_.kv_blocks_used = mem.blocks_used;
    stats_.kv_blocks_shared = mem.blocks_shared;
    stats_.kv_block_size = mem.block_size;
}

int Scheduler::free_seq_id() {
    for (;;) {
        for (int i = 0; i < n_ids_; ++i)
            if (!id_used_[size_t(i)]) {
                id_used_[size_t(i)] = 1;
                return i;
            }
        if (cached_.empty()) return -1;  // cannot happen: running sequences <= n_parallel
        evict_oldest_cached();
    }
}

void Scheduler::evict_oldest_cached() {
    Seq& s = *cached_.front();
    ctx_->seq_remove(s.id);
    id_used_[size_t(s.id)] = 0;
    cached_.erase(cached_.begin());
}

void Scheduler::admit(const std::shared_ptr<Job>& job) {
    const GenRequest& r = job->request();
    auto s = std::make_unique<Seq>();
    s->id = free_seq_id();
    s->job = job;
    s->tokens = job->prompt();
    s->n_prompt = int(s->tokens.size());
    for (int i = 1; i < r.n; ++i) s->child_ids.push_back(free_seq_id());
    // The longest prefix of the prompt already in the cache, from a running or a finished
    // sequence; at least the last prompt token is computed again (its logits are needed).
    size_t best = 0;
    int src = -1;
    auto consider = [&](const Seq& o) {
        const size_t l = common_prefix(s->tokens, o.tokens, size_t(o.n_past));
        if (l > best) {
            best = l;
            src = o.id;
        }
    };
    for (const auto& o : seqs_) consider(*o);
    for (const auto& o : cached_) consider(*o);
    const int reuse = int(std::min(best, size_t(std::max(0, s->n_prompt - 1))));
    if (src >= 0 && reuse > 0) {
        ctx_->seq_fork(src, s->id);
        ctx_->seq_truncate(s->id, reuse);
        s->n_past = reuse;
    }
    s->prefill_start = s->n_past;
    s->sampler = std::make_unique<llm8::Sampler>(r.sampling, model_->n_vocab());
    s->streamer = std::make_unique<llm8::TokenStreamer>(model_->vocab());
    s->stop = std::make_unique<StopMatcher>(r.stop);
    Progress& p = progress_[job.get()];
    p.remaining = r.n;
    p.usage.prompt_tokens = s->n_prompt;
    p.usage.cached_tokens = s->n_past;
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.prompt_tokens += uint64_t(s->n_prompt);
        stats_.prompt_tokens_reused += uint64_t(s->n_past);
    }
    seqs_.push_back(std::move(s));
}

void Scheduler::seq_ended(const Job* job, int n_gen, bool dropped) {
    auto p = progress_.find(job);
    if (p == progress_.end()) return;
    p->second.usage.completion_tokens += n_gen;
    p->second.dropped |= dropped;
    if (--p->second.remaining > 0) return;
    const Progress done = p->second;
    progress_.erase(p);
    std::lock_guard<std::mutex> lk(mu_);
    if (done.failed)
        ++stats_.requests_failed;
    else if (done.dropped)
        ++stats_.requests_cancelled;
    else
        ++stats_.requests_finished;
}

void Scheduler::drop_cancelled() {
    for (auto it = seqs_.begin(); it != seqs_.end();) {
        Seq& s = **it;
        if (!s.job || !s.job->cancelled()) {
            ++it;
            continue;
        }
        // Freed at once: the blocks go back to the pool for the next step.
        ctx_->seq_remove(s.id);
        id_used_[size_t(s.id)] = 0;
        for (int c : s.child_ids) {
            id_used_[size_t(c)] = 0;
            seq_ended(s.job.get(), 0, true);  // the choices that never started
        }
        s.job->fail(499, "cancelled");
        seq_ended(s.job.get(), s.n_gen, true);
        it = seqs_.erase(it);
    }
}

void Scheduler::fail_job(const std::shared_ptr<Job>& job, int status, const std::string& msg) {
    job->fail(status, msg);
    job->cancel();  // drop_cancelled frees its sequences
    auto p = progress_.find(job.get());
    if (p != progress_.end()) p->second.failed = true;
}

void Scheduler::make_room(int blocks_needed) {
    for (;;) {
        const llm8::KvMemory m = ctx_->kv_memory();
        if (m.n_blocks - m.blocks_used >= blocks_needed || cached_.empty()) return;
        evict_oldest_cached();
    }
}

void Scheduler::on_logits(Seq& s, const float* logits) {
    const GenRequest& r = s.job->request();
    const int32_t tok = s.sampler->sample(logits);
    std::optional<TokenLogprob> lp;
    if (r.logprobs) lp = logprobs_of(*model_, logits, tok, r.top_logprobs);
    on_token(s, tok, std::move(lp));
}

void Scheduler::on_token(Seq& s, int32_t tok, std::optional<TokenLogprob> lp) {
    const GenRequest& r = s.job->request();
    ChoiceText c;
    c.index = s.choice;
    if (lp) c.logprobs.push_back(std::move(*lp));
    ++s.n_gen;
    {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.generated_tokens;
    }
    std::string reason;
    if (!r.ignore_eos && model_->is_eog(tok)) {
        reason = "stop";
        c.logprobs.clear();  // the end-of-text token is not part of the answer
    } else {
        s.sampler->accept(tok);
        c.text = s.stop->push(s.streamer->push(tok));
        if (s.stop->stopped())
            reason = "stop";
        else if (r.max_tokens > 0 && s.n_gen >= r.max_tokens)
            reason = "length";
        else if (s.n_past >= params_.n_ctx_seq)  // no room to feed the token back
            reason = "length";
    }
    if (reason.empty()) {
        s.pending = tok;
        s.tokens.push_back(tok);
        if (!c.text.empty() || !c.logprobs.empty()) s.job->push(std::move(c));
        return;
    }
    if (!s.stop->stopped()) {
        c.text += s.stop->push(s.streamer->flush());
        c.text += s.stop->flush();
    }
    c.finish_reason = reason;
    s.job->push(std::move(c));
    s.done = true;
    s.keep = params_.cache_prefixes && s.n_past > 0;
    s.pending = -1;
    auto p = progress_.find(s.job.get());
    const bool last = p != progress_.end() && p->second.remaining == 1;
    Usage u;
    if (last) {
        u = p->second.usage;
        u.completion_tokens += s.n_gen;
    }
    seq_ended(s.job.get(), s.n_gen, false);  // counted before the client can see the end
    if (last) s.job->finish(u);
}

void Scheduler::sample(Seq& s, const float* logits) {
    try {
        on_logits(s, logits);
    } catch (const std::exception& e) {  // a row without a finite logit: this request only
        if (!s.done) fail_job(s.job, 500, std::string("sampling failed: ") + e.what());
    }
}

void Scheduler::loop() {
    for (;;) {
        std::vector<std::shared_ptr<Job>> admitted;
        {
            std::unique_lock<std::mutex> lk(mu_);
            if (seqs_.empty())
                cv_.wait_for(lk, std::chrono::milliseconds(100),
                             [&] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            int used = 0;
            for (uint8_t u : id_used_) used += u;
            int running = used - int(cached_.size());
            while (!queue_.empty()) {
                const std::shared_ptr<Job>& j = queue_.front();
                if (j->cancelled()) {
                    ++stats_.requests_cancelled;
                    queue_.pop_front();
                    continue;
                }
                if (running + j->request().n > params_.n_parallel) break;
                running += j->request().n;
                admitted.push_back(j);
                queue_.pop_front();
            }
            stats_.queue_length = int(queue_.size());
        }
        for (const auto& j : admitted) {
            try {
                admit(j);
            } catch (const std::exception& e) {
                j->fail(500, std::string("cannot start the request: ") + e.what());
            }
        }
        drop_cancelled();
        if (seqs_.empty()) {
            snapshot(0, 0, 0);
            continue;
        }
        step();
    }
}

void Scheduler::step() {
    const auto t0 = clock_type::now();
    const int bs = ctx_->kv_memory().block_size;
    auto blocks_for = [bs](int len, int n) {
        const int have = (len + bs - 1) / bs, want = (len + n + bs - 1) / bs;
        return want - have + (len % bs != 0 ? 1 : 0);  // + a copy of a shared tail block
    };
    int step_tokens = 0, step_seqs = 0;

    // 1. One token of every generating sequence.
    llm8::Batch dec;
    std::vector<Seq*> dec_seqs;
    int blocks = 0;
    for (auto& sp : seqs_) {
        Seq& s = *sp;
        if (s.done || s.pending < 0) continue;
        dec.add(s.pending, s.n_past, s.id, true);
        dec_seqs.push_back(&s);
        blocks += blocks_for(s.n_past, 1);
    }
    if (!dec_seqs.empty()) {
        make_room(blocks);
        // Every row samples where the logits are (on a GPU model: one launch on the device,
        // only token ids come back), unless a request wants logprobs, which are taken from the
        // logits on the host.
        bool host = false;
        std::vector<llm8::Sampler*> samplers;
        for (Seq* s : dec_seqs) {
            host = host || s->job->request().logprobs;
            samplers.push_back(s->sampler.get());
        }
        bool ran = false;
        std::vector<int32_t> toks;
        try {
            if (host)
                ctx_->decode(dec);
            else
                toks = ctx_->decode_sample_rows(dec, samplers);
            ran = true;
        } catch (const std::exception& e) {
            for (Seq* s : dec_seqs)
                fail_job(s->job, 500, std::string("generation failed: ") + e.what());
        }
        for (size_t i = 0; ran && i < dec_seqs.size(); ++i) {
            Seq& s = *dec_seqs[i];
            s.pending = -1;
            ++s.n_past;
            if (host) {
                sample(s, ctx_->logits(int(i)));
            } else if (toks[i] < 0) {
                fail_job(s.job, 500, "sampling failed: sampler: every logit is NaN or -inf");
            } else {
                try {
                    on_token(s, toks[i], std::nullopt);
                } catch (const std::exception& e) {
                    if (!s.done) fail_job(s.job, 500, std::string("sampling failed: ") + e.what());
                }
            }
        }
        step_tokens += int(dec.size());
        step_seqs += int(dec_seqs.size());
    }

    // 2. Prompt chunks, oldest request first, n_batch tokens in all; each sequence's chunks
    // start at multiples of n_ubatch from where its prefill began, whatever else runs.
    llm8::Batch pre;
    struct Chunk {
        Seq* s;
        int n;
    };
    std::vector<Chunk> chunks;
    int budget = params_.n_batch;
    blocks = 0;
    for (auto& sp : seqs_) {
        Seq& s = *sp;
        if (s.done || s.n_past >= s.n_prompt || (s.job && s.job->cancelled())) continue;
        const int ub = params_.n_ubatch;
        const int n = std::min(s.n_prompt - s.n_past, ub - (s.n_past - s.prefill_start) % ub);
        if (n > budget) continue;
        for (int i = 0; i < n; ++i)
            pre.add(s.tokens[size_t(s.n_past + i)], s.n_past + i, s.id,
                    s.n_past + i + 1 == s.n_prompt);
        chunks.push_back({&s, n});
        budget -= n;
        blocks += blocks_for(s.n_past, n);
    }
    if (!chunks.empty()) {
        make_room(blocks);
        try {
            ctx_->decode(pre);
            int row = 0;
            for (const Chunk& ch : chunks) {
                Seq& s = *ch.s;
                s.n_past += ch.n;
                row += ch.n;
                if (s.n_past < s.n_prompt) continue;
                const float* logits = ctx_->logits(row - 1);
                // The prompt is in: the other choices share it and draw their first token
                // from the same logits.
                std::vector<std::unique_ptr<Seq>> kids;
                for (size_t k = 0; k < s.child_ids.size(); ++k) {
                    auto c = std::make_unique<Seq>();
                    c->id = s.child_ids[k];
                    c->job = s.job;
                    c->choice = int(k) + 1;
                    c->tokens = s.tokens;
                    c->n_prompt = s.n_prompt;
                    c->n_past = s.n_past;
                    c->prefill_start = s.prefill_start;
                    llm8::SamplerParams p = s.job->request().sampling;
                    p.seed += uint64_t(k) + 1;
                    c->sampler = std::make_unique<llm8::Sampler>(p, model_->n_vocab());
                    c->streamer = std::make_unique<llm8::TokenStreamer>(model_->vocab());
                    c->stop = std::make_unique<StopMatcher>(s.job->request().stop);
                    ctx_->seq_fork(s.id, c->id);
                    kids.push_back(std::move(c));
                }
                s.child_ids.clear();
                sample(s, logits);
                for (auto& c : kids) {
                    sample(*c, logits);
                    seqs_.push_back(std::move(c));  // after the loop's end: not visited twice
                }
            }
        } catch (const std::exception& e) {
            for (const Chunk& ch : chunks)
                if (!ch.s->done)
                    fail_job(ch.s->job, 500, std::string("prompt processing failed: ") + e.what());
        }
        step_tokens += int(pre.size());
        step_seqs += int(chunks.size());
    }

    // 3. Finished sequences: kept as prefixes for later requests, or freed.
    for (auto it = seqs_.begin(); it != seqs_.end();) {
        Seq& s = **it;
        if (!s.done) {
            ++it;
            continue;
        }
        if (s.keep) {
            s.job.reset();
            s.tokens.resize(size_t(s.n_past));
            s.sampler.reset();
            s.streamer.reset();
            s.stop.reset();
            cached_.push_back(std::move(*it));
        } else {
            ctx_->seq_remove(s.id);
            id_used_[size_t(s.id)] = 0;
        }
        it = seqs_.erase(it);
    }
    drop_cancelled();
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.steps += (dec_seqs.empty() ? 0 : 1) + (chunks.empty() ? 0 : 1);
    }
    snapshot(step_tokens, step_seqs, std::chrono::duration<double>(clock_type::now() - t0).count());
}

}  // namespace llm8_server
