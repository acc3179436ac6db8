// The HTTP server's threads. cpp-httplib hands every accepted connection to a task queue and
// serves it on one thread until the connection closes; its own pool has a fixed size, so a
// few hundred idle or half-open connections (a slow client, or an attack) would take every
// thread and queue the live requests behind them until their read timeouts. This pool keeps
// `core` threads and starts more when none is idle, up to `max`; threads above `core` end after
// a few idle seconds. Connections beyond `max` wait in the queue.
#pragma once
#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace llm8_server {

class ElasticPool : public httplib::TaskQueue {
public:
    ElasticPool(size_t core, size_t max) : core_(core ? core : 1), max_(max < core ? core : max) {}
    ~ElasticPool() override { shutdown(); }

    void enqueue(std::function<void()> fn) override {
        std::unique_lock<std::mutex> lk(mu_);
        jobs_.push_back(std::move(fn));
        if (idle_ < jobs_.size() && live_ < max_) {
            ++live_;
            std::thread([this] { work(); }).detach();
        }
        lk.unlock();
        cv_.notify_one();
    }

    void shutdown() override {
        std::unique_lock<std::mutex> lk(mu_);
        stop_ = true;
        cv_.notify_all();
        gone_.wait(lk, [&] { return live_ == 0; });
    }

private:
    void work() {
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            ++idle_;
            const bool got =
                cv_.wait_for(lk, std::chrono::seconds(5), [&] { return stop_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty() && (stop_ || (!got && live_ > core_))) break;
            if (jobs_.empty()) continue;
            std::function<void()> fn = std::move(jobs_.front());
            jobs_.pop_front();
            lk.unlock();
            fn();
            lk.lock();
        }
        --live_;
        gone_.notify_all();
    }

    const size_t core_, max_;
    std::mutex mu_;
    std::condition_variable cv_, gone_;
    std::deque<std::function<void()>> jobs_;
    size_t live_ = 0, idle_ = 0;
    bool stop_ = false;
};

}  // namespace llm8_server
