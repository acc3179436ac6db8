// SageAttention and INT-FlashAttention on the CPU (src/common/attn_recipe.h has the recipes).
// Work is split as in cpu::attention: first every (sequence, KV head)'s keys and values and
// every (sequence, head)'s queries are quantized, then each (query row, head) runs the online
// softmax over 64-key blocks, the structure of the GPU kernels, so that the FP16 / INT8 rounding
// of P happens against the same running maximum. Over the INT8 cache (-ctk int8) the keys are
// taken as stored (smoothed at write time, one scale per key) and V keeps its per-key scales;
// int8 mode then folds them into P before P's 1/127 step (see attention_8bit).
#include "cpu/attn_8bit.h"

#include <algorithm>
#include <cmath>

#include "common/attn_recipe.h"
#include "common/error.h"
#include "cpu/ops.h"
#include "gguf/quants.h"

namespace llm8 {
namespace cpu {

namespace {

float round_f16(float x) {
    return fp16_to_fp32(fp32_to_fp16(x));
}

const float* key_row(const AttnParams& p, const float* pool, int s, int j, int hk) {
    return pool + p.kv.row(s, j) * p.kv.kv_dim + int64_t(hk) * p.head_dim;
}

void check(const AttnParams& p) {
    if (p.kv.type != KvType::f32 && p.kv.type != KvType::i8)
        fail(ErrorKind::invalid_arg, "CPU attention: the cache must be f32 or int8");
    if (p.mode != AttnMode::sage && p.mode != AttnMode::int8)
        fail(ErrorKind::invalid_arg, "CPU 8-bit attention: mode must be sage or int8");
}

// The INT8 cache: K already smoothed and quantized per key; V per key, to FP16 (sage) or kept
// INT8 with its per-key scales (int8).
void prepare_from_i8_cache(const AttnParams& p, int s, int hk, Kv8& out) {
    const int hd = p.head_dim, n = p.kv_len[s], n_kv = p.n_head_kv;
    const int8_t* kpool = static_cast<const int8_t*>(p.kv.k);
    const int8_t* vpool = static_cast<const int8_t*>(p.kv.v);
    out.mean.assign(size_t(hd), 0.0f);
    out.k_group = 1;
    out.k.resize(size_t(n) * size_t(hd));
    out.k_scale.resize(size_t(n));
    const bool sage = p.mode == AttnMode::sage;
    out.v16.clear();
    out.v8.clear();
    out.v_scale.clear();
    out.v_token_scale.clear();
    if (sage)
        out.v16.resize(size_t(n) * size_t(hd));
    else {
        out.v8.resize(size_t(n) * size_t(hd));
        out.v_token_scale.resize(size_t(n));
    }
    for (int j = 0; j < n; ++j) {
        const int64_t row = p.kv.row(s, j);
        const int8_t* kj = kpool + row * p.kv.kv_dim + int64_t(hk) * hd;
        const int8_t* vj = vpool + row * p.kv.kv_dim + int64_t(hk) * hd;
        std::copy_n(kj, hd, out.k.begin() + int64_t(j) * hd);
        out.k_scale[size_t(j)] = p.kv.k_scale[row * n_kv + hk];
        const float vs = p.kv.v_scale[row * n_kv + hk];
        if (sage) {
            for (int c = 0; c < hd; ++c)
                out.v16[size_t(j) * size_t(hd) + size_t(c)] = round_f16(float(vj[c]) * vs);
        } else {
            std::copy_n(vj, hd, out.v8.begin() + int64_t(j) * hd);
            out.v_token_scale[size_t(j)] = vs;
        }
    }
}

}  // namespace

void quantize_kv_row_i8(const float* k, const float* v, const float* k_mean, int kv_dim,
                        int head_dim, int8_t* k8, float* ks, int8_t* v8, float* vs) {
    for (int h = 0; h * head_dim < kv_dim; ++h) {
        const int o = h * head_dim;
        float ka = 0.0f, va = 0.0f;
        for (int c = 0; c < head_dim; ++c) {
            ka = std::max(ka, std::fabs(k[o + c] - k_mean[o + c]));
            va = std::max(va, std::fabs(v[o + c]));
        }
        const float ki = i8_inv_scale(ka), vi = i8_inv_scale(va);
        ks[h] = i8_scale(ka);
        vs[h] = i8_scale(va);
        for (int c = 0; c < head_dim; ++c) {
            k8[o + c] = quantize_i8(k[o + c] - k_mean[o + c], ki);
            v8[o + c] = quantize_i8(v[o + c], vi);
        }
    }
}

void prepare_kv_8bit(const AttnParams& p, int s, int hk, Kv8& out) {
    check(p);
    const int hd = p.head_dim, n = p.kv_len[s];
    out.n_keys = n;
    out.head_dim = hd;
    if (p.kv.type == KvType::i8) {
        prepare_from_i8_cache(p, s, hk, out);
        return;
    }
    const float* kpool = static_cast<const float*>(p.kv.k);
    const float* vpool = static_cast<const float*>(p.kv.v);
    out.n_keys = n;
    out.head_dim = hd;
    // The mean in the GPU's order, so that both quantize the same floats: a sum per 64-key
    // block (keys in order), the blocks' sums added in order, one division.
    out.mean.assign(size_t(hd), 0.0f);
    std::vector<float> part(static_cast<size_t>(hd));
    for (int j0 = 0; j0 < n; j0 += kAttnKeyBlock) {
        std::fill(part.begin(), part.end(), 0.0f);
        for (int j = j0; j < std::min(n, j0 + kAttnKeyBlock); ++j) {
            const float* kj = key_row(p, kpool, s, j, hk);
            for (int c = 0; c < hd; ++c) part[size_t(c)] += kj[c];
        }
        for (int c = 0; c < hd; ++c) out.mean[size_t(c)] += part[size_t(c)];
    }
    for (int c = 0; c < hd && n > 0; ++c) out.mean[size_t(c)] /= float(n);
    // Smoothed K, one scale per 64 keys (sage) or per key (int8).
    out.k.resize(size_t(n) * size_t(hd));
    const bool sage = p.mode == AttnMode::sage;
    const int group = sage ? kSageKRows : 1;
    out.k_group = group;
    out.k_scale.assign(size_t((n + group - 1) / group), 0.0f);
    std::vector<float> sm(static_cast<size_t>(group) * size_t(hd));
    for (int j0 = 0; j0 < n; j0 += group) {
        const int rows = std::min(group, n - j0);
        float amax = 0.0f;
        for (int r = 0; r < rows; ++r) {
            const float* kj = key_row(p, kpool, s, j0 + r, hk);
            for (int c = 0; c < hd; ++c) {
                const float x = kj[c] - out.mean[size_t(c)];
                sm[size_t(r) * size_t(hd) + size_t(c)] = x;
                amax = std::max(amax, std::fabs(x));
            }
        }
        const float inv = i8_inv_scale(amax);
        out.k_scale[size_t(j0 / group)] = i8_scale(amax);
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < hd; ++c)
                out.k[size_t(j0 + r) * size_t(hd) + size_t(c)] =
                    quantize_i8(sm[size_t(r) * size_t(hd) + size_t(c)], inv);
    }
    if (sage) {
        out.v16.resize(size_t(n) * size_t(hd));
        for (int j = 0; j < n; ++j) {
            const float* vj = key_row(p, vpool, s, j, hk);
            for (int c = 0; c < hd; ++c)
                out.v16[size_t(j) * size_t(hd) + size_t(c)] = round_f16(vj[c]);
        }
        out.v8.clear();
        out.v_scale.clear();
        out.v_token_scale.clear();
        return;
    }
    out.v_token_scale.clear();
    // int8: V one scale per channel over the sequence's keys.
    out.v_scale.assign(size_t(hd), 0.0f);
    std::vector<float> amax(size_t(hd), 0.0f);
    for (int j = 0; j < n; ++j) {
        const float* vj = key_row(p, vpool, s, j, hk);
        for (int c = 0; c < hd; ++c) amax[size_t(c)] = std::max(amax[size_t(c)], std::fabs(vj[c]));
    }
    std::vector<float> inv(static_cast<size_t>(hd));
    for (int c = 0; c < hd; ++c) {
        out.v_scale[size_t(c)] = i8_scale(amax[size_t(c)]);
        inv[size_t(c)] = i8_inv_scale(amax[size_t(c)]);
    }
    out.v8.resize(size_t(n) * size_t(hd));
    for (int j = 0; j < n; ++j) {
        const float* vj = key_row(p, vpool, s, j, hk);
        for (int c = 0; c < hd; ++c)
            out.v8[size_t(j) * size_t(hd) + size_t(c)] = quantize_i8(vj[c], inv[size_t(c)]);
    }
    out.v16.clear();
}

void quantize_q_8bit(const AttnParams& p, int s, int h, std::vector<int8_t>& q8,
                     std::vector<float>& q_scale) {
    check(p);
    const int hd = p.head_dim, q_len = p.q_start[s + 1] - p.q_start[s];
    const int64_t q_stride = int64_t(p.n_head) * hd;
    const float* q0 = p.q + int64_t(p.q_start[s]) * q_stride + int64_t(h) * hd;
    const int group = p.mode == AttnMode::sage ? kSageQRows : 1;
    q8.resize(size_t(q_len) * size_t(hd));
    q_scale.assign(size_t((q_len + group - 1) / group), 0.0f);
    for (int i0 = 0; i0 < q_len; i0 += group) {
        const int rows = std::min(group, q_len - i0);
        float amax = 0.0f;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < hd; ++c)
                amax = std::max(amax, std::fabs(q0[int64_t(i0 + r) * q_stride + c]));
        const float inv = i8_inv_scale(amax);
        q_scale[size_t(i0 / group)] = i8_scale(amax);
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < hd; ++c)
                q8[size_t(i0 + r) * size_t(hd) + size_t(c)] =
                    quantize_i8(q0[int64_t(i0 + r) * q_stride + c], inv);
    }
}

void attention_8bit(const AttnParams& p) {
    check(p);
    const int hd = p.head_dim;
    const int64_t q_stride = int64_t(p.n_head) * hd;
    const float scale_log2 = p.scale() * kLog2e;
    const bool sage = p.mode == AttnMode::sage;
    // Quantized keys/values per (sequence, KV head) and queries per (sequence, head).
    std::vector<Kv8> kv(size_t(p.n_seqs) * size_t(p.n_head_kv));
    std::vector<std::vector<int8_t>> q8(size_t(p.n_seqs) * size_t(p.n_head));
    std::vector<std::vector<float>> qs(q8.size());
    int64_t cost = 0;
    for (int s = 0; s < p.n_seqs; ++s)
        cost += int64_t(p.q_start[s + 1] - p.q_start[s] + 1) * p.kv_len[s];
    const bool par = cost * p.n_head * hd >= (1 << 16);
    const int64_t n_kv_items = int64_t(p.n_seqs) * p.n_head_kv;
#pragma omp parallel for num_threads(threads()) schedule(dynamic, 1) if (par)
    for (int64_t w = 0; w < n_kv_items; ++w)
        prepare_kv_8bit(p, int(w / p.n_head_kv), int(w % p.n_head_kv), kv[size_t(w)]);
    const int64_t n_q_items = int64_t(p.n_seqs) * p.n_head;
#pragma omp parallel for num_threads(threads()) schedule(dynamic, 1) if (par)
    for (int64_t w = 0; w < n_q_items; ++w)
        quantize_q_8bit(p, int(w / p.n_head), int(w % p.n_head), q8[size_t(w)], qs[size_t(w)]);

    const int64_t n_work = int64_t(p.n_tokens) * p.n_head;
#pragma omp parallel num_threads(threads()) if (par)
    {
        std::vector<float> sc(static_cast<size_t>(kAttnKeyBlock)), acc(static_cast<size_t>(hd));
        std::vector<int32_t> acc_i(static_cast<size_t>(hd));
#pragma omp for schedule(dynamic, 4)
        for (int64_t wi = 0; wi < n_work; ++wi) {
            const AttnItem it = attn_item(p, wi);
            const int row = it.row, h = it.h, hk = it.hk, s = it.s, i = it.i, n_keys = it.n_keys;
            const Kv8& K = kv[size_t(s) * size_t(p.n_head_kv) + size_t(hk)];
            const size_t qi = size_t(s) * size_t(p.n_head) + size_t(h);
            const int8_t* qv = q8[qi].data() + size_t(i) * size_t(hd);
            const float sq = qs[qi][size_t(sage ? i / kSageQRows : i)];
            float m = -INFINITY, l = 0.0f;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int j0 = 0; j0 < n_keys; j0 += kAttnKeyBlock) {
                const int nb = std::min(kAttnKeyBlock, n_keys - j0);
                float mb = -INFINITY;
                for (int r = 0; r < nb; ++r) {
                    const int j = j0 + r;
                    const int8_t* kj = K.k.data() + size_t(j) * size_t(hd);
                    int32_t dot = 0;
                    for (int c = 0; c < hd; ++c) dot += int32_t(qv[c]) * int32_t(kj[c]);
                    const float sk = K.k_scale[size_t(j / K.k_group)];
                    sc[size_t(r)] = float(dot) * (sq * sk) * scale_log2;
                    mb = std::max(mb, sc[size_t(r)]);
                }
                const float m_new = std::max(m, mb);
                const float corr = m == -INFINITY ? 0.0f : std::exp2(m - m_new);
                float sum = 0.0f;
                for (int r = 0; r < nb; ++r) {
                    sc[size_t(r)] = std::exp2(sc[size_t(r)] - m_new);
                    sum += sc[size_t(r)];
                }
                l = l * corr + sum;
                if (sage) {
                    for (int c = 0; c < hd; ++c) acc[size_t(c)] *= corr;
                    for (int r = 0; r < nb; ++r) {
                        const float pj = round_f16(sc[size_t(r)]);
                        const float* vj = K.v16.data() + size_t(j0 + r) * size_t(hd);
                        for (int c = 0; c < hd; ++c) acc[size_t(c)] += pj * vj[c];
                    }
                } else if (K.v_token_scale.empty()) {
                    std::fill(acc_i.begin(), acc_i.end(), 0);
                    for (int r = 0; r < nb; ++r) {
                        const int32_t pj = quantize_p_i8(sc[size_t(r)]);
                        const int8_t* vj = K.v8.data() + size_t(j0 + r) * size_t(hd);
                        for (int c = 0; c < hd; ++c) acc_i[size_t(c)] += pj * int32_t(vj[c]);
                    }
                    for (int c = 0; c < hd; ++c)
                        acc[size_t(c)] = acc[size_t(c)] * corr +
                                         float(acc_i[size_t(c)]) * (K.v_scale[size_t(c)] / 127.0f);
                } else {
                    // V with one scale per key (the INT8 cache): each p is weighted by its key's
                    // scale over the block's largest, p' = p * vs_j / vs_max in [0, 1], then
                    // quantized at 1/127; the block's sum is dequantized by vs_max / 127.
                    float vmax = 0.0f;
                    for (int r = 0; r < nb; ++r)
                        vmax = std::max(vmax, K.v_token_scale[size_t(j0 + r)]);
                    std::fill(acc_i.begin(), acc_i.end(), 0);
                    for (int r = 0; r < nb; ++r) {
                        const float w = vmax > 0.0f ? K.v_token_scale[size_t(j0 + r)] / vmax : 0.0f;
                        const int32_t pj = quantize_p_i8(sc[size_t(r)] * w);
                        const int8_t* vj = K.v8.data() + size_t(j0 + r) * size_t(hd);
                        for (int c = 0; c < hd; ++c) acc_i[size_t(c)] += pj * int32_t(vj[c]);
                    }
                    for (int c = 0; c < hd; ++c)
                        acc[size_t(c)] =
                            acc[size_t(c)] * corr + float(acc_i[size_t(c)]) * (vmax / 127.0f);
                }
                m = m_new;
            }
            float* o = p.out + int64_t(row) * q_stride + int64_t(h) * hd;
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            for (int c = 0; c < hd; ++c) o[c] = acc[size_t(c)] * inv;
        }
    }
}

}  // namespace cpu
}  // namespace llm8
