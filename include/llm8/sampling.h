// Token sampling. The CPU chain below is the reference: every other sampler (the GPU kernels)
// must draw from exactly the distribution it defines.
//
// Chain order (fixed; each stage sees the previous stage's output):
//   1. logit bias      logit[id] += bias (a bias of -inf bans the token)
//   2. penalties       over the last `penalty_last_n` accepted tokens, per distinct token:
//                      repetition (logit > 0 ? logit / r : logit * r), then
//                      frequency (- count * f) and presence (- p) as in llama.cpp / OpenAI
//   3. greedy          if temperature <= 0: the argmax (ties: lowest id), done
//   4. temperature     logit / T
//   5. top-k           keep the k largest (k <= 0 or k >= n_vocab: keep all; ties: lower id)
//   6. softmax
//   7. top-p           keep the most probable tokens, in order of probability (ties: lower id),
//                      until their mass reaches p (p >= 1: keep all); the token that crosses p
//                      is kept
//   8. min-p           keep tokens with prob >= min_p * max prob (min_p <= 0: keep all)
//   9. draw            renormalize, then inverse CDF in token-id order with one uniform u from
//                      Philox4x32-10(seed, draw index)
// NaN logits count as -inf. A row with no finite logit is an error (llm8::Error), never a
// silent token.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

namespace llm8 {

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;  // 1: off
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    int32_t penalty_last_n = 64;  // 0: off, -1: the whole history
    std::map<int32_t, float> logit_bias;
    uint64_t seed = 0;
};

class Sampler {
public:
    Sampler(const SamplerParams& params, int32_t n_vocab);

    // Draws a token from logits[n_vocab] (not modified). Does not record it: call accept().
    int32_t sample(const float* logits);
    // Records a token for the penalties (prompt tokens too, as llama.cpp does).
    void accept(int32_t token);
    void reset();  // clears the history and the draw counter

    // The distribution of step 9 for these logits and the current history: probs[n_vocab],
    // zero for every filtered token. Used by tests and by the GPU sampler's checks.
    std::vector<double> distribution(const float* logits) const;

    const SamplerParams& params() const { return params_; }
    uint64_t draws() const { return n_draws_; }
    // The tokens the penalties look at now (the last penalty_last_n accepted), oldest first.
    std::vector<int32_t> penalty_window() const;
    // Counts a draw made elsewhere with this sampler's parameters (the GPU sampler), so the
    // next draw uses the next Philox counter, as if sample() had been called.
    void count_external_draw() { ++n_draws_; }

private:
    void apply_bias_and_penalties(std::vector<float>& l) const;

    SamplerParams params_;
    int32_t n_vocab_;
    std::vector<int32_t> history_;
    uint64_t n_draws_ = 0;
};

// Greedy pick: the index of the largest value, ties to the lowest index, NaN ignored; -1 when
// every value is NaN or -inf.
int32_t argmax(const float* x, int32_t n);

}  // namespace llm8

// The GPU sampler's C API (plain C, usable from other engines): see llm8/sampling_cuda.h.
#include "llm8/sampling_cuda.h"

namespace llm8 {

// The GPU sampler's row parameters for these chain parameters and Philox draw index. The
// penalty window and logit bias travel as separate arrays: their begin/count fields are 0 here.
llm8_sampling_row_params gpu_row_params(const SamplerParams& p, uint64_t draw_index);

}  // namespace llm8
