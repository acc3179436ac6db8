// The MoE router and routed FFN (cpu/moe.h). Tokens are grouped by expert so that each
// expert's three matrices are read once per step, whatever the number of its tokens: for a
// decode step that is n_used experts of n_expert (Qwen3-30B-A3B: 8 of 128) per layer.
#include "cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cpu/ops.h"

namespace llm8 {
namespace cpu {

void moe_route(const MoeRouteParams& p) {
    const int X = p.n_expert, K = p.n_used;
    std::vector<float> prob(static_cast<size_t>(X)), sel(static_cast<size_t>(X));
    std::vector<int> order(static_cast<size_t>(X));
    for (int t = 0; t < p.n_tokens; ++t) {
        const float* lg = p.logits + int64_t(t) * X;
        if (p.gating == ExpertGating::softmax) {
            const float mx = *std::max_element(lg, lg + X);
            double sum = 0;
            for (int e = 0; e < X; ++e) sum += (prob[size_t(e)] = std::exp(lg[e] - mx));
            for (float& v : prob) v = float(v / sum);
        } else {
            for (int e = 0; e < X; ++e) prob[size_t(e)] = 1.0f / (1.0f + std::exp(-lg[e]));
        }
        for (int e = 0; e < X; ++e) sel[size_t(e)] = prob[size_t(e)] + (p.bias ? p.bias[e] : 0.0f);
        if (p.n_groups > 1) {
            // A group's score: the sum of its two best selection scores.
            const int per = X / p.n_groups;
            std::vector<float> score(size_t(p.n_groups));
            for (int g = 0; g < p.n_groups; ++g) {
                std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
                std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
                score[size_t(g)] = v[0] + v[1];
            }
            std::vector<int> gs(size_t(p.n_groups));
            std::iota(gs.begin(), gs.end(), 0);
            std::stable_sort(gs.begin(), gs.end(),
                             [&](int a, int b) { return score[size_t(a)] > score[size_t(b)]; });
            for (size_t r = size_t(p.n_groups_used); r < gs.size(); ++r)
                for (int e = gs[r] * per; e < (gs[r] + 1) * per; ++e) sel[size_t(e)] = -INFINITY;
        }
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int a, int b) {
            return sel[size_t(a)] > sel[size_t(b)] || (sel[size_t(a)] == sel[size_t(b)] && a < b);
        });
        int32_t* ids = p.ids + int64_t(t) * K;
        float* w = p.weights + int64_t(t) * K;
        double sum = 0;
        for (int k = 0; k < K; ++k) {
            ids[k] = order[size_t(k)];
            w[k] = prob[size_t(order[size_t(k)])];
            sum += w[k];
        }
        const double div = p.norm ? std::max(sum, 6.103515625e-5) : 1.0;
        for (int k = 0; k < K; ++k) w[k] = float(w[k] / div * p.scale);
    }
}

void moe_ffn(const MoeFfnParams& p) {
    const int64_t E = p.gate.ne0, F = p.n_ff, n = p.n_tokens;
    const int64_t n_expert = p.gate.ne1 / F;
    // Each expert's (token, weight) pairs, tokens ascending.
    std::vector<std::vector<std::pair<int, float>>> users(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < n; ++t)
        for (int k = 0; k < p.n_used; ++k) {
            const int32_t e = p.ids[t * p.n_used + k];
            users[size_t(e)].push_back({int(t), p.weights[t * p.n_used + k]});
        }
    auto matmul = [&](const WeightView& w, const float* x, int64_t rows, float* y) {
        if (p.rows_path)
            matmul_rows(w, x, rows, y);
        else
            cpu::matmul(w, x, rows, y);
    };
    std::fill(p.y, p.y + n * E, 0.0f);
    std::vector<float> xe, g, u, d;
    for (int64_t e = 0; e < n_expert; ++e) {
        const auto& us = users[size_t(e)];
        if (us.empty()) continue;
        const int64_t m = int64_t(us.size());
        xe.resize(size_t(m * E));
        g.resize(size_t(m * F));
        u.resize(size_t(m * F));
        d.resize(size_t(m * E));
        for (int64_t i = 0; i < m; ++i)
            std::copy_n(p.x + int64_t(us[size_t(i)].first) * E, E, xe.data() + i * E);
        matmul(p.gate.rows(e * F, F), xe.data(), m, g.data());
        matmul(p.up.rows(e * F, F), xe.data(), m, u.data());
        swiglu(g.data(), u.data(), m * F);
        matmul(p.down.rows(e * E, E), g.data(), m, d.data());
        for (int64_t i = 0; i < m; ++i) {
            float* yt = p.y + int64_t(us[size_t(i)].first) * E;
            const float wt = us[size_t(i)].second;
            const float* dt = d.data() + i * E;
            for (int64_t c = 0; c < E; ++c) yt[c] += wt * dt[c];
        }
    }
}

}  // namespace cpu
}  // namespace llm8
