// llm8-server's scheduler without HTTP, on the embedded stories260K model (CPU): a seeded
// request gives the same text alone and beside 7 others, stop strings and max_tokens end a
// choice, a cancelled request's blocks are freed, a shared prefix is prefilled once, n > 1
// choices, and a full queue refuses.
#include <chrono>
#include <string>
#include <vector>

#include "server/scheduler.h"
#include "test_util.h"

using namespace llm8_server;

namespace {

std::shared_ptr<const llm8::Model> model() {
    static auto m = llm8::Model::load({"", 0});
    return m;
}

std::shared_ptr<Job> make_job(const std::string& prompt, uint64_t seed, int max_tokens,
                              float temp = 0.9f) {
    GenRequest r;
    r.endpoint = Endpoint::completion;
    r.sampling.temperature = temp;
    r.sampling.seed = seed;
    r.max_tokens = max_tokens;
    return std::make_shared<Job>(r, model()->tokenize(prompt, true));
}

struct Result {
    std::vector<std::string> text;
    std::vector<std::string> finish;
    std::string error;
    Usage usage;
};

Result wait(const std::shared_ptr<Job>& job) {
    Result res;
    res.text.resize(size_t(job->request().n));
    res.finish.resize(size_t(job->request().n));
    std::vector<ChoiceText> news;
    while (job->next(&news, std::chrono::seconds(30)) != Job::Wait::done) {
        for (const ChoiceText& c : news) {
            res.text[size_t(c.index)] += c.text;
            if (!c.finish_reason.empty()) res.finish[size_t(c.index)] = c.finish_reason;
        }
        news.clear();
    }
    res.error = job->error();
    res.usage = job->usage();
    return res;
}

SchedulerParams params(int np = 8) {
    SchedulerParams p;
    p.n_parallel = np;
    p.n_ctx_seq = 256;
    p.n_batch = 64;
    p.n_ubatch = 32;
    return p;
}

}  // namespace

TEST(ServerScheduler, SeededTextIsTheSameAloneAndInABatchOfEight) {
    const char* prompts[] = {"Once upon a time",   "The cat",     "Lily and Tom went",
                             "One day a big dog",  "The sun was", "A little bird",
                             "Tim had a red ball", "Mom said"};
    std::vector<std::string> alone;
    for (int i = 0; i < 8; ++i) {
        // A fresh scheduler per request: nothing else runs, nothing is cached.
        Scheduler s(model(), params());
        auto j = make_job(prompts[i], 1000 + uint64_t(i), 48);
        ASSERT_TRUE(s.submit(j));
        const Result r = wait(j);
        ASSERT_EQ(r.error, "");
        alone.push_back(r.text[0]);
    }
    Scheduler s(model(), params());
    std::vector<std::shared_ptr<Job>> jobs;
    for (int i = 0; i < 8; ++i) {
        jobs.push_back(make_job(prompts[i], 1000 + uint64_t(i), 48));
        ASSERT_TRUE(s.submit(jobs.back()));
    }
    for (int i = 0; i < 8; ++i) {
        const Result r = wait(jobs[size_t(i)]);
        EXPECT_EQ(r.text[0], alone[size_t(i)]) << "request " << i;
        EXPECT_EQ(r.finish[0], "length");
        EXPECT_EQ(r.usage.completion_tokens, 48);
    }
    const MetricsSnapshot m = s.metrics();
    EXPECT_EQ(m.requests_finished, 8u);
    EXPECT_GT(m.batch_sequences, 0);
}

TEST(ServerScheduler, StopStringsAndMaxTokens) {
    Scheduler s(model(), params());
    // Greedy stories260K: "Once upon a time, there was a little girl named Lily. ..."
    auto full = make_job("Once upon a time", 1, 30, 0.0f);
    GenRequest r = full->request();
    r.stop = {"girl"};
    auto stopped = std::make_shared<Job>(r, full->prompt());
    ASSERT_TRUE(s.submit(full));
    ASSERT_TRUE(s.submit(stopped));
    const Result a = wait(full), b = wait(stopped);
    EXPECT_EQ(a.finish[0], "length");
    EXPECT_EQ(a.usage.completion_tokens, 30);
    ASSERT_NE(a.text[0].find("girl"), std::string::npos) << a.text[0];
    EXPECT_EQ(b.finish[0], "stop");
    EXPECT_EQ(b.text[0], a.text[0].substr(0, a.text[0].find("girl")));
}

TEST(ServerScheduler, CancelledRequestsFreeTheirBlocks) {
    SchedulerParams p = params(2);
    p.cache_prefixes = false;
    Scheduler s(model(), p);
    auto j = make_job("Once upon a time", 5, 200);
    ASSERT_TRUE(s.submit(j));
    std::vector<ChoiceText> news;
    while (news.size() < 3) j->next(&news, std::chrono::seconds(10));
    EXPECT_GT(s.metrics().kv_blocks_used, 0);
    j->cancel();
    for (int i = 0; i < 200 && s.metrics().kv_blocks_used != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const MetricsSnapshot m = s.metrics();
    EXPECT_EQ(m.kv_blocks_used, 0);
    EXPECT_EQ(m.requests_cancelled, 1u);
    EXPECT_EQ(wait(j).error, "cancelled");
}

TEST(ServerScheduler, ASharedPrefixIsPrefilledOnce) {
    Scheduler s(model(), params(2));
    std::string system = "Once upon a time there was a little girl named Lily. ";
    for (int i = 0; i < 3; ++i) system += system;  // well past one 64-token block
    auto a = make_job(system + "She liked", 1, 4);
    ASSERT_TRUE(s.submit(a));
    const Result ra = wait(a);
    auto b = make_job(system + "He ran", 2, 4);
    ASSERT_TRUE(s.submit(b));
    const Result rb = wait(b);
    const int shared = int(model()->tokenize(system, true).size()) - 2;
    EXPECT_EQ(ra.usage.cached_tokens, 0);
    EXPECT_GE(rb.usage.cached_tokens, shared);
    EXPECT_LT(rb.usage.cached_tokens, rb.usage.prompt_tokens);
    EXPECT_GE(s.metrics().prompt_tokens_reused, uint64_t(shared));
    // Reused KV gives the same text as a fresh prefill.
    Scheduler fresh(model(), params(2));
    auto c = make_job(system + "He ran", 2, 4);
    ASSERT_TRUE(fresh.submit(c));
    EXPECT_EQ(wait(c).text[0], rb.text[0]);
}

TEST(ServerScheduler, SeveralChoicesShareThePrompt) {
    Scheduler s(model(), params(4));
    GenRequest r = make_job("x", 0, 1)->request();
    r.n = 3;
    r.max_tokens = 16;
    r.sampling.seed = 77;
    auto j = std::make_shared<Job>(r, model()->tokenize("Once upon a time", true));
    ASSERT_TRUE(s.submit(j));
    const Result res = wait(j);
    ASSERT_EQ(res.error, "");
    for (int i = 0; i < 3; ++i) EXPECT_EQ(res.finish[size_t(i)], "length");
    EXPECT_EQ(res.usage.completion_tokens, 48);
    EXPECT_EQ(res.usage.prompt_tokens, 5);
    // Choice 0 is the request's own seed: the same text as n = 1.
    auto one = make_job("Once upon a time", 77, 16);
    Scheduler t(model(), params(4));
    ASSERT_TRUE(t.submit(one));
    EXPECT_EQ(wait(one).text[0], res.text[0]);
}

TEST(ServerScheduler, AFullQueueRefuses) {
    SchedulerParams p = params(1);
    p.queue_max = 1;
    Scheduler s(model(), p);
    std::vector<std::shared_ptr<Job>> jobs;
    int refused = 0;
    for (int i = 0; i < 6; ++i) {
        jobs.push_back(make_job("Once", uint64_t(i), 64));
        if (!s.submit(jobs.back())) ++refused;
    }
    EXPECT_GE(refused, 3);
    EXPECT_EQ(s.metrics().requests_rejected, uint64_t(refused));
    for (auto& j : jobs) j->cancel();
}
