#include "runtime/attn_guard.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "cpu/ops.h"

namespace llm8 {

void AttnErrorAcc::add(const float* got, const float* ref, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const double a = got[i], b = ref[i];
        ab += a * b;
        aa += a * a;
        bb += b * b;
        l1 += std::fabs(a - b);
        l1_ref += std::fabs(b);
    }
}

double AttnErrorAcc::cos() const {
    if (aa == 0 && bb == 0) return 1.0;
    if (aa == 0 || bb == 0) return 0.0;
    return ab / std::sqrt(aa * bb);
}

double AttnErrorAcc::rel_l1() const {
    return l1_ref > 0 ? l1 / l1_ref : (l1 > 0 ? INFINITY : 0.0);
}

const char* builtin_attn_calibration_text() {
    // Written for llm8: varied prose, a list, numbers and a little code, so that the attention
    // of every layer sees long-range and local patterns alike.
    return "The old lighthouse stood at the edge of the harbour for more than two hundred years. "
           "Every evening the keeper climbed the one hundred and twelve steps, trimmed the wick "
           "and wound the clockwork that turned the lens. Ships from Lisbon, Bergen and Boston "
           "read its signal: two long flashes, one short, then darkness for nine seconds.\n\n"
           "In 1891 the harbour board voted to replace the oil lamp with an electric one. The "
           "minutes of the meeting list the costs: 340 pounds for the generator, 95 for the "
           "cable, 12 for the new lens mount, and a note that the keeper, Thomas Hale, objected "
           "because \"a lamp that cannot be mended by hand is a lamp that will fail at sea\".\n\n"
           "Steps to restart the beacon after a power cut:\n"
           "1. Check the fuse board in the lower room.\n"
           "2. Switch the generator to manual and wait for 50 hertz.\n"
           "3. Start the motor; the lens must turn once every 12 seconds.\n\n"
           "def flash_pattern(t):\n"
           "    phase = t % 12.0\n"
           "    if phase < 1.5 or 2.0 <= phase < 3.5:\n"
           "        return 'long'\n"
           "    if 4.0 <= phase < 4.5:\n"
           "        return 'short'\n"
           "    return 'dark'\n\n"
           "Today the light is automatic. Visitors may climb the tower on Sundays between April "
           "and October, and the keeper's log, with its careful columns of wind, weather and "
           "passing ships, is kept in the town museum next to the original brass lens.";
}

namespace {

// The calibration text (at most 512 tokens) through `model` in one step, `hook` after every
// layer's attention.
void run_calibration(const std::shared_ptr<const Model>& model, const std::string& text,
                     std::function<void(Context&, int, const AttnParams&)> hook) {
    std::vector<int32_t> tokens = model->tokenize(text, true);
    const int cap = std::min(512, model->n_ctx_train());
    if (tokens.size() > size_t(cap)) tokens.resize(size_t(cap));
    if (tokens.size() < 8)
        fail(ErrorKind::invalid_arg, "the calibration text is too short (" +
                                         std::to_string(tokens.size()) +
                                         " tokens, at least 8; --attn-calib)");
    Context ctx(model, {int(tokens.size()), 1, int(tokens.size()), 0});
    ContextHooks::set_attn_hook(
        ctx, [&ctx, &hook](int il, const AttnParams& ap) { hook(ctx, il, ap); });
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i)
        b.add(tokens[i], int32_t(i), 0, i + 1 == tokens.size());
    ctx.decode(b);
}

}  // namespace

std::vector<float> calibrate_k_mean(const std::shared_ptr<const Model>& f16_model,
                                    const std::string& text) {
    const int n_layer = f16_model->n_layer();
    std::vector<float> mean;
    run_calibration(f16_model, text, [&](Context& ctx, int il, const AttnParams& ap) {
        const int kv_dim = ap.kv.kv_dim;
        const std::vector<float> keys = ContextHooks::layer_keys(ctx, ap, 0);
        const int n = int(keys.size() / size_t(kv_dim));
        if (mean.empty()) mean.assign(size_t(n_layer) * size_t(kv_dim), 0.0f);
        std::vector<double> acc(size_t(kv_dim), 0.0);
        for (int j = 0; j < n; ++j) {
            const float* k = keys.data() + int64_t(j) * kv_dim;
            for (int c = 0; c < kv_dim; ++c) acc[size_t(c)] += k[c];
        }
        for (int c = 0; c < kv_dim; ++c)
            mean[size_t(il) * size_t(kv_dim) + size_t(c)] = float(acc[size_t(c)] / n);
    });
    return mean;
}

std::vector<AttnCalibration> calibrate_attention(const std::shared_ptr<const Model>& f16_model,
                                                 const std::string& text, float cos_min,
                                                 float l1_max) {
    const int n_layer = f16_model->n_layer();
    std::vector<AttnErrorAcc> e8(static_cast<size_t>(n_layer)), es(static_cast<size_t>(n_layer));
    run_calibration(f16_model, text, [&](Context& ctx, int il, const AttnParams& ap) {
        ContextHooks::compare_attention(ctx, ap, AttnMode::int8, e8[size_t(il)]);
        ContextHooks::compare_attention(ctx, ap, AttnMode::sage, es[size_t(il)]);
    });
    std::vector<AttnCalibration> r(static_cast<size_t>(n_layer));
    for (int il = 0; il < n_layer; ++il) {
        AttnCalibration& c = r[size_t(il)];
        c.int8_cos = e8[size_t(il)].cos();
        c.int8_l1 = e8[size_t(il)].rel_l1();
        c.sage_cos = es[size_t(il)].cos();
        c.sage_l1 = es[size_t(il)].rel_l1();
        const bool ok8 = e8[size_t(il)].ok(cos_min, l1_max),
                   oks = es[size_t(il)].ok(cos_min, l1_max);
        if (f16_model->on_gpu())
            c.mode = oks ? "sage" : ok8 ? "int8" : "f16";
        else
            c.mode = ok8 ? "int8" : oks ? "sage" : "f16";
    }
    return r;
}

std::string attn_guard_report(const Model& model, const std::vector<AttnLayerStats>& stats) {
    std::string out;
    char line[256];
    const ModelParams& mp = model.params();
    const auto& cal = model.attn_calibration();
    std::snprintf(line, sizeof(line),
                  "attention guard: --attn %s, thresholds cosine >= %.8g, relative L1 <= %.8g, "
                  "monitor every %d calls\n",
                  model.attn().c_str(), double(mp.attn_cos_min), double(mp.attn_l1_max),
                  mp.attn_monitor);
    out += line;
    const std::vector<std::string> modes = model.layer_attn();
    out +=
        "  layer  mode   calibration: int8 cos / L1       sage cos / L1      "
        "monitor: calls checks  mean L1   max L1   min cos  fallback\n";
    for (size_t il = 0; il < modes.size(); ++il) {
        std::string cal_s = "           -                        -        ";
        if (il < cal.size()) {
            const AttnCalibration& c = cal[il];
            if (!c.note.empty()) {
                cal_s = c.note;
            } else {
                std::snprintf(line, sizeof(line), "%10.6f / %-8.5f  %10.6f / %-8.5f", c.int8_cos,
                              c.int8_l1, c.sage_cos, c.sage_l1);
                cal_s = line;
            }
        }
        std::string mon = "";
        std::string mode = modes[il];
        if (il < stats.size()) {
            const AttnLayerStats& s = stats[il];
            mode = s.mode;
            if (s.calls > 0) {
                std::snprintf(line, sizeof(line), "%9lld %6lld  %8.5f  %8.5f  %8.6f  %s",
                              (long long)s.calls, (long long)s.checks, s.mean_l1, s.max_l1,
                              s.min_cos, s.fell_back ? "yes: f16 now" : "no");
                mon = line;
            }
        }
        std::snprintf(line, sizeof(line), "  %5zu  %-5s  %s   %s\n", il, mode.c_str(),
                      cal_s.c_str(), mon.c_str());
        out += line;
    }
    return out;
}

}  // namespace llm8
