// The accuracy guard of the 8-bit attention modes (--attn auto): the error measure, the
// calibration at load, the report. The runtime monitor itself runs in Context (context.cpp),
// which calls cpu::attention in FP16 on the inputs of every Nth 8-bit call.
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
    double cos() const;
    double rel_l1() const;
    bool ok(float cos_min, float l1_max) const { return cos() >= cos_min && rel_l1() <= l1_max; }
};

// A paragraph of English prose, numbers and code (a few hundred tokens in any vocabulary).
const char* builtin_attn_calibration_text();

// --attn auto on the CPU: runs `text` (at most 512 tokens) through `f16_model` (every layer
// f16) and, at every layer, also the int8 and sage modes on the same inputs; each layer takes
// the first of int8, sage whose error passes the thresholds, else f16.
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
};

}  // namespace llm8
