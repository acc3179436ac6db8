// A straightforward double-precision Llama-family forward, written for the tests only and
// independent of src/model and src/cpu: it reads tensors through the GGUF reader and
// dequantize_row (both checked on their own), recomputes everything per token with no KV
// cache tricks, and favours obviousness over speed. The engine is compared against it.
#pragma once
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
        neox_ = arch_ == "qwen2" || arch_ == "qwen3";
        V_ = int(f.find_tensor("token_embd.weight")->ne[1]);
    }

    int n_vocab() const { return V_; }

    // Logits of every position for the token sequence (positions 0..n-1), in double.
    std::vector<std::vector<double>> forward(const std::vector<int32_t>& toks) const {
        const int n = int(toks.size());
        std::vector<std::vector<double>> x(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t) x[size_t(t)] = row("token_embd.weight", toks[size_t(t)]);
        for (int l = 0; l < L_; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            const size_t nn = static_cast<size_t>(n);
            std::vector<std::vector<double>> q(nn), k(nn), v(nn);
            for (int t = 0; t < n; ++t) {
                auto xn = rmsnorm(x[size_t(t)], vec(p + "attn_norm.weight"));
                q[size_t(t)] = linear(p + "attn_q", xn);
                k[size_t(t)] = linear(p + "attn_k", xn);
                v[size_t(t)] = linear(p + "attn_v", xn);
                if (f_.find_tensor(p + "attn_q_norm.weight")) {
                    head_norm(q[size_t(t)], vec(p + "attn_q_norm.weight"));
                    head_norm(k[size_t(t)], vec(p + "attn_k_norm.weight"));
                }
                rope(q[size_t(t)], t);
                rope(k[size_t(t)], t);
            }
            for (int t = 0; t < n; ++t) {
                std::vector<double> att(size_t(H_ * hd_), 0.0);
                for (int h = 0; h < H_; ++h) {
                    const int hk = h / (H_ / HK_);
                    std::vector<double> s(static_cast<size_t>(t + 1));
                    double mx = -INFINITY;
                    for (int j = 0; j <= t; ++j) {
                        double d = 0;
                        for (int i = 0; i < hd_; ++i)
                            d += q[size_t(t)][size_t(h * hd_ + i)] *
                                 k[size_t(j)][size_t(hk * hd_ + i)];
                        s[size_t(j)] = d / std::sqrt(double(hd_));
                        mx = std::max(mx, s[size_t(j)]);
                    }
                    double sum = 0;
                    for (double& e : s) sum += (e = std::exp(e - mx));
                    for (int j = 0; j <= t; ++j)
                        for (int i = 0; i < hd_; ++i)
                            att[size_t(h * hd_ + i)] +=
                                s[size_t(j)] / sum * v[size_t(j)][size_t(hk * hd_ + i)];
                }
                auto o = linear(p + "attn_output", att);
                for (int i = 0; i < E_; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
                auto xn = rmsnorm(x[size_t(t)], vec(p + "ffn_norm.weight"));
                auto g = linear(p + "ffn_gate", xn);
                auto u = linear(p + "ffn_up", xn);
                for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
                auto d = linear(p + "ffn_down", g);
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
    void rope(std::vector<double>& xin, int pos) const {
        for (size_t h = 0; h < xin.size() / size_t(hd_); ++h) {
            double* v = xin.data() + h * size_t(hd_);
            for (int i = 0; i < rot_ / 2; ++i) {
                const double theta = pos * std::pow(base_, -2.0 * i / rot_);
                const int a = neox_ ? i : 2 * i, b = neox_ ? i + rot_ / 2 : 2 * i + 1;
                const double x0 = v[a], x1 = v[b];
                v[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
                v[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
            }
        }
    }

    const llm8::GgufFile& f_;
    std::string arch_;
    int E_, L_, H_, HK_, hd_, F_, rot_, V_;
    double eps_, base_;
    bool neox_;
};

}  // namespace llm8_test
