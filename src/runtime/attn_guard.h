// The accuracy guard of the 8-bit attention modes (--attn auto): the error measure, the
// calibration at load, the report. The runtime monitor itself runs in Context (context.cpp),
// which runs FP16 attention (CPU, or GPU on the device) on the inputs of every Nth 8-bit call.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/attn_params.h"
#include "llm8/engine.h"

namespace llm8 {

// Cosine similarity and relative L1 error (sum |a - b| / sum |b|) of an output against the
// FP16 one, accumulated over any number of pieces (double sums).
struct AttnErrorAcc {
    double ab = 0, aa = 0, bb = 0, l1 = 0, l1_ref = 0;
    void add(const float* got, const float* ref, size_t n);
    // The same five sums computed elsewhere (cuda::attention_compare), added.
    void add(const double sums[5]) {
        ab += sums[0], aa += sums[1], bb += sums[2], l1 += sums[3], l1_ref += sums[4];
    }
    double cos() const;
    double rel_l1() const;
    bool ok(float cos_min, float l1_max) const { return cos() >= cos_min && rel_l1() <= l1_max; }
};

// A paragraph of English prose, numbers and code (a few hundred tokens in any vocabulary).
const char* builtin_attn_calibration_text();

// --attn auto (CPU or GPU model): runs `text` (at most 512 tokens) through `f16_model` (every layer
// f16) and, at every layer, also the int8 and sage modes on the same inputs; each layer takes
// the faster of the two whose error passes the thresholds, else f16: sage first on the GPU
// (sage's kernel measured faster than int8's, docs/benchmarks.md), int8 first on the CPU.
std::vector<AttnCalibration> calibrate_attention(const std::shared_ptr<const Model>& f16_model,
                                                 const std::string& text, float cos_min,
                                                 float l1_max);

// The INT8 cache's K smoothing mean per layer ([n_layer][kv_dim]): the mean of the keys of the
// calibration text through `f16_model` (whose cache must be the plain one).
std::vector<float> calibrate_k_mean(const std::shared_ptr<const Model>& f16_model,
                                    const std::string& text);

// Internal access to a Context for the calibration: a hook called after every layer's
// attention with its parameters (output included).
struct ContextHooks {
    static void set_attn_hook(Context& c, std::function<void(int, const AttnParams&)> hook);
    // Runs `mode` on the inputs of the call `ap` (the hook's) and adds its error against
    // ap.out (CPU or GPU context alike).
    static void compare_attention(Context& c, const AttnParams& ap, AttnMode mode,
                                  AttnErrorAcc& acc);
    // Sequence seq's keys of the hook's layer, [kv_len][kv_dim] floats (the plain cache).
    static std::vector<float> layer_keys(Context& c, const AttnParams& ap, int seq);
};

}  // namespace llm8
