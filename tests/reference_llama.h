// A straightforward double-precision Llama-family forward, written for the tests only and
// independent of src/model and src/cpu: it reads tensors through the GGUF reader and
// dequantize_row (both checked on their own), recomputes everything per token with no KV
// cache tricks, and favours obviousness over speed. The engine is compared against it.
// Mixture-of-experts layers run every chosen expert as a plain FFN; deepseek2's latent
// attention is computed the textbook way (keys and values decompressed per head, MHA), not in
// the engine's absorbed form over the latent cache, so the two check each other.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/quants.h"

namespace llm8_test {

class RefLlama {
public:
    explicit RefLlama(const llm8::GgufFile& f) : f_(f) {
        arch_ = f.get_str("general.architecture");
        const std::string a = arch_ == "mistral" ? "mistral" : arch_;
        E_ = int(f.get_int(a + ".embedding_length"));
        L_ = int(f.get_int(a + ".block_count"));
        H_ = int(f.get_int(a + ".attention.head_count"));
        HK_ = int(f.get_int(a + ".attention.head_count_kv", H_));
        hd_ = int(f.get_int(a + ".attention.key_length", E_ / H_));
        F_ = int(f.get_int(a + ".feed_forward_length"));
        rot_ = int(f.get_int(a + ".rope.dimension_count", hd_));
        eps_ = f.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5);
        base_ = f.get_float(a + ".rope.freq_base", 10000.0);
        neox_ = arch_ == "qwen2" || arch_ == "qwen3" || arch_ == "qwen3moe";
        V_ = int(f.find_tensor("token_embd.weight")->ne[1]);
        // Experts
        X_ = int(f.get_int(a + ".expert_count", 0));
        XK_ = int(f.get_int(a + ".expert_used_count", 0));
        XF_ = int(f.get_int(a + ".expert_feed_forward_length", F_));
        dense_lead_ = int(f.get_int(a + ".leading_dense_block_count", 0));
        sigmoid_ = f.get_int(a + ".expert_gating_func", 1) == 2;
        xnorm_ = f.get_bool(a + ".expert_weights_norm", arch_ != "deepseek2");
        xscale_ = f.get_float(a + ".expert_weights_scale", 0.0);
        groups_ = int(f.get_int(a + ".expert_group_count", 0));
        groups_used_ = int(f.get_int(a + ".expert_group_used_count", 0));
        // Latent attention
        mla_ = arch_ == "deepseek2";
        if (mla_) {
            R_ = int(f.get_int(a + ".attention.kv_lora_rank"));
            split_ = f.has(a + ".attention.key_length_mla");
            hd_ = int(
                f.get_int(a + (split_ ? ".attention.key_length_mla" : ".attention.key_length")));
            vd_ = int(f.get_int(
                a + (split_ ? ".attention.value_length_mla" : ".attention.value_length")));
            nope_ = hd_ - rot_;
        }
        // YaRN
        if (f.get_str(a + ".rope.scaling.type", "none") == "yarn") {
            yarn_factor_ = f.get_float(a + ".rope.scaling.factor", 1.0);
            yarn_orig_ = f.get_float(a + ".rope.scaling.original_context_length",
                                     double(f.get_int(a + ".context_length")));
            yarn_log_mul_ = f.get_float(a + ".rope.scaling.yarn_log_multiplier", 0.0);
        }
        // HF DeepSeek-V2: softmax_scale = hd^-0.5 * m^2, m = 0.1 * mscale_all_dim * ln(factor) + 1,
        // where the file stores 0.1 * mscale_all_dim.
        kq_scale_ = 1.0 / std::sqrt(double(hd_));
        if (mla_ && yarn_factor_ > 1.0) {
            const double m = (yarn_log_mul_ > 0 ? 1.0 : rope_mag()) *
                             (1.0 + yarn_log_mul_ * std::log(yarn_factor_));
            kq_scale_ *= m * m;
        }
    }

    int n_vocab() const { return V_; }

    // Logits of every position for the token sequence (positions 0..n-1), in double.
    std::vector<std::vector<double>> forward(const std::vector<int32_t>& toks) const {
        const int n = int(toks.size());
        std::vector<std::vector<double>> x(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t) x[size_t(t)] = row("token_embd.weight", toks[size_t(t)]);
        for (int l = 0; l < L_; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            std::vector<std::vector<double>> xn(static_cast<size_t>(n));
            for (int t = 0; t < n; ++t)
                xn[size_t(t)] = rmsnorm(x[size_t(t)], vec(p + "attn_norm.weight"));
            const auto att = mla_ ? mla_attention(p, xn) : attention(p, xn);
            for (int t = 0; t < n; ++t) {
                auto o = linear(p + "attn_output", att[size_t(t)]);
                for (int i = 0; i < E_; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
                auto h = rmsnorm(x[size_t(t)], vec(p + "ffn_norm.weight"));
                auto d = X_ > 0 && l >= dense_lead_ ? moe(p, h) : ffn(p + "ffn_", "", h);
                for (int i = 0; i < E_; ++i) x[size_t(t)][size_t(i)] += d[size_t(i)];
            }
        }
        std::vector<std::vector<double>> logits(static_cast<size_t>(n));
        const std::string out = f_.find_tensor("output.weight") ? "output" : "token_embd";
        for (int t = 0; t < n; ++t)
            logits[size_t(t)] = linear(out, rmsnorm(x[size_t(t)], vec("output_norm.weight")));
        return logits;
    }

    static double logprob(const std::vector<double>& logits, int target) {
        double mx = -INFINITY, sum = 0;
        for (double v : logits) mx = std::max(mx, v);
        for (double v : logits) sum += std::exp(v - mx);
        return logits[size_t(target)] - mx - std::log(sum);
    }

private:
    using Vec = std::vector<double>;
    using Rows = std::vector<Vec>;

    // Causal softmax attention of query t over keys 0..t: q [H * hd], k [t+1][H * hd] etc.
    Vec attend(const Rows& q, const Rows& k, const Rows& v, int t, int H, int HK, int hd, int vd,
               double scale) const {
        Vec att(size_t(H * vd), 0.0);
        for (int h = 0; h < H; ++h) {
            const int hk = h / (H / HK);
            std::vector<double> sc(static_cast<size_t>(t + 1));
            double mx = -INFINITY;
            for (int j = 0; j <= t; ++j) {
                double d = 0;
                for (int i = 0; i < hd; ++i)
                    d += q[size_t(t)][size_t(h * hd + i)] * k[size_t(j)][size_t(hk * hd + i)];
                sc[size_t(j)] = d * scale;
                mx = std::max(mx, sc[size_t(j)]);
            }
            double sum = 0;
            for (double& e : sc) sum += (e = std::exp(e - mx));
            for (int j = 0; j <= t; ++j)
                for (int i = 0; i < vd; ++i)
                    att[size_t(h * vd + i)] +=
                        sc[size_t(j)] / sum * v[size_t(j)][size_t(hk * vd + i)];
        }
        return att;
    }

    Rows attention(const std::string& p, const Rows& xn) const {
        const int n = int(xn.size());
        Rows q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t) {
            q[size_t(t)] = linear(p + "attn_q", xn[size_t(t)]);
            k[size_t(t)] = linear(p + "attn_k", xn[size_t(t)]);
            v[size_t(t)] = linear(p + "attn_v", xn[size_t(t)]);
            if (f_.find_tensor(p + "attn_q_norm.weight")) {
                head_norm(q[size_t(t)], vec(p + "attn_q_norm.weight"));
                head_norm(k[size_t(t)], vec(p + "attn_k_norm.weight"));
            }
            for (int h = 0; h < H_; ++h) rope(q[size_t(t)].data() + h * hd_, t);
            for (int h = 0; h < HK_; ++h) rope(k[size_t(t)].data() + h * hd_, t);
        }
        Rows out(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t)
            out[size_t(t)] = attend(q, k, v, t, H_, HK_, hd_, hd_, 1.0 / std::sqrt(double(hd_)));
        return out;
    }

    // deepseek2: every head's key [k_nope_h | k_pe] and value decompressed from the latent.
    Rows mla_attention(const std::string& p, const Rows& xn) const {
        const int n = int(xn.size());
        Rows q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t) {
            Vec qt = f_.find_tensor(p + "attn_q_a.weight")
                         ? linear(p + "attn_q_b", rmsnorm(linear(p + "attn_q_a", xn[size_t(t)]),
                                                          vec(p + "attn_q_a_norm.weight")))
                         : linear(p + "attn_q", xn[size_t(t)]);
            const Vec kva = linear(p + "attn_kv_a_mqa", xn[size_t(t)]);
            const Vec c =
                rmsnorm(Vec(kva.begin(), kva.begin() + R_), vec(p + "attn_kv_a_norm.weight"));
            Vec kpe(kva.begin() + R_, kva.end());
            rope(kpe.data(), t);
            k[size_t(t)].assign(size_t(H_ * hd_), 0.0);
            v[size_t(t)].assign(size_t(H_ * vd_), 0.0);
            for (int h = 0; h < H_; ++h) {
                rope(qt.data() + h * hd_ + nope_, t);
                for (int i = 0; i < nope_; ++i) {
                    double acc = 0;
                    if (split_) {  // attn_k_b [nope, R, H]: element (i, r, h)
                        for (int r = 0; r < R_; ++r)
                            acc += row(p + "attn_k_b.weight", h * R_ + r)[size_t(i)] * c[size_t(r)];
                    } else {
                        const Vec w = row(p + "attn_kv_b.weight", h * (nope_ + vd_) + i);
                        for (int r = 0; r < R_; ++r) acc += w[size_t(r)] * c[size_t(r)];
                    }
                    k[size_t(t)][size_t(h * hd_ + i)] = acc;
                }
                for (int i = 0; i < rot_; ++i)
                    k[size_t(t)][size_t(h * hd_ + nope_ + i)] = kpe[size_t(i)];
                for (int j = 0; j < vd_; ++j) {
                    const Vec w = split_
                                      ? row(p + "attn_v_b.weight", h * vd_ + j)
                                      : row(p + "attn_kv_b.weight", h * (nope_ + vd_) + nope_ + j);
                    double acc = 0;
                    for (int r = 0; r < R_; ++r) acc += w[size_t(r)] * c[size_t(r)];
                    v[size_t(t)][size_t(h * vd_ + j)] = acc;
                }
            }
            q[size_t(t)] = qt;
        }
        Rows out(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t)
            out[size_t(t)] = attend(q, k, v, t, H_, H_, hd_, vd_, kq_scale_);
        return out;
    }

    // SwiGLU FFN of tensors <prefix>{gate,up,down}<suffix>.weight; expert >= 0 picks that
    // expert's rows of 3-D tensors.
    Vec ffn(const std::string& pre, const std::string& suf, const Vec& xin, int expert = -1) const {
        auto lin = [&](const std::string& name, const Vec& in) {
            if (expert < 0) return linear(name, in);
            const llm8::GgufTensorInfo* t = f_.find_tensor(name + ".weight");
            Vec y(static_cast<size_t>(t->ne[1]));
            for (int64_t r = 0; r < t->ne[1]; ++r) {
                const Vec w = row(name + ".weight", expert * t->ne[1] + r);
                double acc = 0;
                for (size_t i = 0; i < w.size(); ++i) acc += w[i] * in[i];
                y[size_t(r)] = acc;
            }
            return y;
        };
        Vec g = lin(pre + "gate" + suf, xin);
        const Vec u = lin(pre + "up" + suf, xin);
        for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        return lin(pre + "down" + suf, g);
    }

    Vec moe(const std::string& p, const Vec& xin) const {
        const Vec logit = linear(p + "ffn_gate_inp", xin);
        Vec prob(logit.size());
        const double mx = *std::max_element(logit.begin(), logit.end());
        double sum = 0;
        for (size_t e = 0; e < logit.size(); ++e)
            sum +=
                (prob[e] = sigmoid_ ? 1.0 / (1.0 + std::exp(-logit[e])) : std::exp(logit[e] - mx));
        if (!sigmoid_)
            for (double& pe : prob) pe /= sum;
        Vec sel = prob;
        if (f_.find_tensor(p + "exp_probs_b.bias")) {
            const Vec b = vec(p + "exp_probs_b.bias");
            for (size_t e = 0; e < sel.size(); ++e) sel[e] += b[e];
        }
        if (groups_ > 1) {  // keep the groups_used groups with the best sum of two
            const int per = X_ / groups_;
            std::vector<std::pair<double, int>> gs;
            for (int g = 0; g < groups_; ++g) {
                Vec in(sel.begin() + g * per, sel.begin() + (g + 1) * per);
                std::sort(in.rbegin(), in.rend());
                gs.push_back({-(in[0] + in[1]), g});
            }
            std::stable_sort(gs.begin(), gs.end(),
                             [](const std::pair<double, int>& a, const std::pair<double, int>& b) {
                                 return a.first < b.first;
                             });
            for (size_t r = size_t(groups_used_); r < gs.size(); ++r)
                for (int e = 0; e < per; ++e) sel[size_t(gs[r].second * per + e)] = -INFINITY;
        }
        std::vector<int> ids(static_cast<size_t>(X_));
        for (int e = 0; e < X_; ++e) ids[size_t(e)] = e;
        std::stable_sort(ids.begin(), ids.end(),
                         [&](int a, int b) { return sel[size_t(a)] > sel[size_t(b)]; });
        ids.resize(size_t(XK_));
        double wsum = 0;
        for (int e : ids) wsum += prob[size_t(e)];
        Vec y(size_t(E_), 0.0);
        for (int e : ids) {
            double w = prob[size_t(e)];
            if (xnorm_) w /= wsum;
            if (xscale_ != 0.0) w *= xscale_;
            const Vec d = ffn(p + "ffn_", "_exps", xin, e);
            for (int i = 0; i < E_; ++i) y[size_t(i)] += w * d[size_t(i)];
        }
        if (f_.find_tensor(p + "ffn_gate_shexp.weight")) {
            const Vec d = ffn(p + "ffn_", "_shexp", xin);
            for (int i = 0; i < E_; ++i) y[size_t(i)] += d[size_t(i)];
        }
        return y;
    }

    // YaRN's magnitude when no log multiplier moves it into the softmax scale.
    double rope_mag() const {
        if (yarn_factor_ <= 1.0 || yarn_log_mul_ > 0) return 1.0;
        return 1.0 + 0.1 * std::log(yarn_factor_);
    }

    std::vector<double> row(const std::string& name, int64_t r) const {
        const llm8::GgufTensorInfo* t = f_.find_tensor(name);
        const int64_t ne0 = t->ne[0];
        std::vector<float> tmp(static_cast<size_t>(ne0));
        llm8::dequantize_row(t->type, t->data + size_t(r) * llm8::row_size(t->type, ne0),
                             tmp.data(), ne0);
        return std::vector<double>(tmp.begin(), tmp.end());
    }
    std::vector<double> vec(const std::string& name) const { return row(name, 0); }
    std::vector<double> linear(const std::string& name, const std::vector<double>& xin) const {
        const llm8::GgufTensorInfo* t = f_.find_tensor(name + ".weight");
        std::vector<double> y(static_cast<size_t>(t->ne[1]));
        for (int64_t r = 0; r < t->ne[1]; ++r) {
            auto w = row(name + ".weight", r);
            double acc = 0;
            for (size_t i = 0; i < w.size(); ++i) acc += w[i] * xin[i];
            y[size_t(r)] = acc;
        }
        if (f_.find_tensor(name + ".bias")) {
            auto b = vec(name + ".bias");
            for (size_t i = 0; i < y.size(); ++i) y[i] += b[i];
        }
        return y;
    }
    std::vector<double> rmsnorm(const std::vector<double>& xin,
                                const std::vector<double>& w) const {
        double ss = 0;
        for (double v : xin) ss += v * v;
        const double s = 1.0 / std::sqrt(ss / double(xin.size()) + eps_);
        std::vector<double> y(xin.size());
        for (size_t i = 0; i < xin.size(); ++i) y[i] = xin[i] * s * w[i];
        return y;
    }
    void head_norm(std::vector<double>& xin, const std::vector<double>& w) const {
        for (size_t h = 0; h < xin.size() / size_t(hd_); ++h) {
            std::vector<double> part(xin.begin() + long(h) * hd_, xin.begin() + long(h + 1) * hd_);
            part = rmsnorm(part, w);
            std::copy(part.begin(), part.end(), xin.begin() + long(h) * hd_);
        }
    }
    // Rotates the first rot_ values at v (one head). YaRN: the angle of pair i moves from the
    // original frequency (fast pairs, i below the low correction dim) to the interpolated one
    // (slow pairs, above the high one), linearly in between.
    void rope(double* v, int pos) const {
        double lo = 0, hi = 0;
        if (yarn_factor_ > 1.0) {
            auto dim = [&](double beta) {
                return rot_ * std::log(yarn_orig_ / (beta * 2 * M_PI)) / (2 * std::log(base_));
            };
            lo = std::max(0.0, std::floor(dim(32.0)));
            hi = std::min(double(rot_ - 1), std::ceil(dim(1.0)));
        }
        const double mag = rope_mag();
        for (int i = 0; i < rot_ / 2; ++i) {
            const double orig = pos * std::pow(base_, -2.0 * i / rot_);
            double theta = orig;
            if (yarn_factor_ > 1.0) {
                const double keep =
                    1.0 - std::min(1.0, std::max(0.0, (i - lo) / std::max(0.001, hi - lo)));
                theta = orig / yarn_factor_ * (1.0 - keep) + orig * keep;
            }
            const int a = neox_ ? i : 2 * i, b = neox_ ? i + rot_ / 2 : 2 * i + 1;
            const double x0 = v[a], x1 = v[b];
            v[a] = mag * (x0 * std::cos(theta) - x1 * std::sin(theta));
            v[b] = mag * (x0 * std::sin(theta) + x1 * std::cos(theta));
        }
    }

    const llm8::GgufFile& f_;
    std::string arch_;
    int E_, L_, H_, HK_, hd_, F_, rot_, V_;
    double eps_, base_;
    bool neox_;
    int X_ = 0, XK_ = 0, XF_ = 0, dense_lead_ = 0, groups_ = 0, groups_used_ = 0;
    bool sigmoid_ = false, xnorm_ = false;
    double xscale_ = 0;
    bool mla_ = false, split_ = false;
    int R_ = 0, vd_ = 0, nope_ = 0;
    double yarn_factor_ = 0, yarn_orig_ = 0, yarn_log_mul_ = 0, kq_scale_ = 0;
};

}  // namespace llm8_test
