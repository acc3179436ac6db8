// The CPU reference sampler chain (order and tie rules documented in include/llm8/sampling.h).
// Written for clarity over speed: a full sort where the GPU kernels use rejection sampling;
// at 32K-152K tokens it costs well under a millisecond, beside a CPU forward pass of many.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "llm8/sampling.h"
#include "sampling/philox.h"

namespace llm8 {

int32_t argmax(const float* x, int32_t n) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; ++i) {
        if (std::isnan(x[i]) || x[i] == -INFINITY) continue;
        if (best < 0 || x[i] > x[best]) best = i;
    }
    return best;
}

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab) {
    if (n_vocab <= 0) fail(ErrorKind::invalid_arg, "sampler: vocabulary size must be > 0");
    if (std::isnan(params.temperature)) fail(ErrorKind::invalid_arg, "sampler: temperature is NaN");
    if (!(params.top_p >= 0.0f)) fail(ErrorKind::invalid_arg, "sampler: top-p must be >= 0");
    if (!(params.min_p >= 0.0f && params.min_p <= 1.0f))
        fail(ErrorKind::invalid_arg, "sampler: min-p must be in [0, 1]");
    if (!(params.repeat_penalty > 0.0f))
        fail(ErrorKind::invalid_arg, "sampler: repeat penalty must be > 0");
    if (std::isnan(params.frequency_penalty) || std::isnan(params.presence_penalty))
        fail(ErrorKind::invalid_arg, "sampler: penalties must be numbers");
    if (params.penalty_last_n < -1)
        fail(ErrorKind::invalid_arg, "sampler: penalty window must be >= -1");
    for (const auto& kv : params.logit_bias)
        if (kv.first < 0 || kv.first >= n_vocab || std::isnan(kv.second))
            fail(ErrorKind::invalid_arg, "sampler: logit bias for token " +
                                             std::to_string(kv.first) + " is out of range or NaN");
}

void Sampler::accept(int32_t token) {
    history_.push_back(token);
}

std::vector<int32_t> Sampler::penalty_window() const {
    const bool any = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                     params_.presence_penalty != 0.0f;
    if (!any || params_.penalty_last_n == 0) return {};
    const size_t window = params_.penalty_last_n < 0
                              ? history_.size()
                              : std::min(history_.size(), size_t(params_.penalty_last_n));
    return std::vector<int32_t>(history_.end() - long(window), history_.end());
}

void Sampler::reset() {
    history_.clear();
    n_draws_ = 0;
}

void Sampler::apply_bias_and_penalties(std::vector<float>& l) const {
    for (const auto& kv : params_.logit_bias) l[size_t(kv.first)] += kv.second;
    const bool any_penalty = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                             params_.presence_penalty != 0.0f;
    if (!any_penalty || params_.penalty_last_n == 0 || history_.empty()) return;
    const size_t window = params_.penalty_last_n < 0
                              ? history_.size()
                              : std::min(history_.size(), size_t(params_.penalty_last_n));
    std::unordered_map<int32_t, int> count;
    for (size_t i = history_.size() - window; i < history_.size(); ++i) ++count[history_[i]];
    for (const auto& kv : count) {
        if (kv.first < 0 || kv.first >= n_vocab_) continue;
        float& x = l[size_t(kv.first)];
        x = x > 0 ? x / params_.repeat_penalty : x * params_.repeat_penalty;
        x -= float(kv.second) * params_.frequency_penalty + params_.presence_penalty;
    }
}

std::vector<double> Sampler::distribution(const float* logits) const {
    const size_t V = size_t(n_vocab_);
    std::vector<float> l(logits, logits + V);
    for (float& x : l)
        if (std::isnan(x)) x = -INFINITY;
    apply_bias_and_penalties(l);
    for (float& x : l)
        if (std::isnan(x)) x = -INFINITY;  // inf - inf from a penalty
    std::vector<double> probs(V, 0.0);

    if (params_.temperature <= 0.0f) {
        const int32_t id = argmax(l.data(), n_vocab_);
        if (id < 0) fail(ErrorKind::runtime, "sampler: every logit is NaN or -inf");
        probs[size_t(id)] = 1.0;
        return probs;
    }

    // Candidates: finite logits; if any is +inf, the limit distribution is uniform over those.
    std::vector<int32_t> ids;
    bool has_pos_inf = false;
    for (size_t i = 0; i < V; ++i) has_pos_inf |= l[i] == INFINITY;
    for (size_t i = 0; i < V; ++i)
        if (has_pos_inf ? l[i] == INFINITY : l[i] != -INFINITY) ids.push_back(int32_t(i));
    if (ids.empty()) fail(ErrorKind::runtime, "sampler: every logit is NaN or -inf");
    std::vector<double> z(V, 0.0);  // tempered logits of the candidates
    for (int32_t i : ids)
        z[size_t(i)] = has_pos_inf ? 0.0 : double(l[size_t(i)]) / params_.temperature;

    auto by_value = [&](int32_t a, int32_t b) {
        return z[size_t(a)] > z[size_t(b)] || (z[size_t(a)] == z[size_t(b)] && a < b);
    };
    if (params_.top_k > 0 && size_t(params_.top_k) < ids.size()) {
        std::nth_element(ids.begin(), ids.begin() + params_.top_k, ids.end(), by_value);
        ids.resize(size_t(params_.top_k));
    }
    std::sort(ids.begin(), ids.end(), by_value);  // descending probability, ties by id

    double mx = z[size_t(ids[0])], sum = 0;
    for (int32_t i : ids) sum += (probs[size_t(i)] = std::exp(z[size_t(i)] - mx));
    for (int32_t i : ids) probs[size_t(i)] /= sum;

    if (params_.top_p < 1.0f) {
        double cum = 0;
        size_t keep = 0;
        while (keep < ids.size()) {
            cum += probs[size_t(ids[keep])];
            ++keep;
            if (cum >= double(params_.top_p)) break;
        }
        for (size_t j = keep; j < ids.size(); ++j) probs[size_t(ids[j])] = 0.0;
        ids.resize(keep);
    }
    if (params_.min_p > 0.0f) {
        const double thr = double(params_.min_p) * probs[size_t(ids[0])];
        size_t keep = 0;
        while (keep < ids.size() && probs[size_t(ids[keep])] >= thr) ++keep;
        for (size_t j = keep; j < ids.size(); ++j) probs[size_t(ids[j])] = 0.0;
        ids.resize(keep);
    }
    sum = 0;
    for (int32_t i : ids) sum += probs[size_t(i)];
    for (int32_t i : ids) probs[size_t(i)] /= sum;
    return probs;
}

int32_t Sampler::sample(const float* logits) {
    const std::vector<double> probs = distribution(logits);
    const double u = double(philox_draw(params_.seed, n_draws_++));
    double cum = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < n_vocab_; ++i) {
        if (probs[size_t(i)] <= 0) continue;
        cum += probs[size_t(i)];
        last = i;
        if (u < cum) return i;
    }
    return last;  // u beyond the rounded total: the last kept token
}

llm8_sampling_row_params gpu_row_params(const SamplerParams& sp, uint64_t draw_index) {
    llm8_sampling_row_params p{};
    p.temperature = sp.temperature;
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    p.repeat_penalty = sp.repeat_penalty;
    p.frequency_penalty = sp.frequency_penalty;
    p.presence_penalty = sp.presence_penalty;
    p.seed = sp.seed;
    p.draw_index = draw_index;
    return p;
}

}  // namespace llm8
