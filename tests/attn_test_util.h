// Attention test cases over the paged cache: sequences of given query and key counts whose
// blocks are scattered over a pool in random order, with the expected output of every sequence
// from cpu::attention_ref over its keys gathered into contiguous rows.
#pragma once
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "common/attn_params.h"
#include "cpu/attn_8bit.h"
#include "cpu/ops.h"
#include "gguf/quants.h"
#include "test_util.h"

namespace llm8_test {

struct PagedCase {
    int n_head = 0, n_kv = 0, hd = 0, block = 64;
    std::vector<int> q_len, kv_len;  // per sequence; kv_len >= q_len
    // K's channel outliers: every channel c of every key gets k_bias * N(0,1)_c * (K's std, 2)
    // added (SageAttention's accuracy case: a per-channel bias of 20 std).
    float k_bias = 0.0f;

    std::vector<int32_t> q_start, kvl, tables;
    int max_blocks = 0, n_blocks = 0, n_tokens = 0, max_q = 0, max_kv = 0;
    std::vector<float> q, kpool, vpool, want;
    std::vector<uint16_t> kpool16, vpool16;  // the pools as halves (GPU)

    int shift() const {
        int s = 0;
        while ((1 << s) < block) ++s;
        return s;
    }
    // The pool row of key j of sequence s (KvCacheView::row over the host tables).
    int64_t row(int s, int j) const {
        return int64_t(tables[size_t(s) * size_t(max_blocks) + size_t(j / block)]) * block +
               j % block;
    }

    // half: keys and values rounded to half first, so CPU and GPU see the same values.
    void build(std::mt19937& rng, bool half) {
        const int ns = int(q_len.size());
        const int kv_dim = n_kv * hd;
        q_start.assign(1, 0);
        for (int s = 0; s < ns; ++s) {
            q_start.push_back(q_start.back() + q_len[size_t(s)]);
            max_q = std::max(max_q, q_len[size_t(s)]);
            max_kv = std::max(max_kv, kv_len[size_t(s)]);
            max_blocks = std::max(max_blocks, (kv_len[size_t(s)] + block - 1) / block);
        }
        kvl.assign(kv_len.begin(), kv_len.end());
        n_tokens = q_start.back();
        for (int s = 0; s < ns; ++s) n_blocks += (kv_len[size_t(s)] + block - 1) / block;
        n_blocks += 3;  // spare blocks nobody uses
        std::vector<int32_t> order(static_cast<size_t>(n_blocks));
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        tables.assign(size_t(ns) * size_t(std::max(1, max_blocks)), 0);
        const int stride = std::max(1, max_blocks);
        size_t next = 0;
        for (int s = 0; s < ns; ++s)
            for (int b = 0; b < (kv_len[size_t(s)] + block - 1) / block; ++b)
                tables[size_t(s) * size_t(stride) + size_t(b)] = order[next++];
        max_blocks = stride;
        q = randn(size_t(n_tokens) * n_head * hd, rng, 2.0f);
        kpool = randn(size_t(n_blocks) * block * kv_dim, rng, 2.0f);
        vpool = randn(kpool.size(), rng);
        if (k_bias != 0.0f) {
            const std::vector<float> bias = randn(size_t(kv_dim), rng, 2.0f * k_bias);
            for (size_t i = 0; i < kpool.size(); ++i) kpool[i] += bias[i % size_t(kv_dim)];
        }
        if (half) {
            kpool16.resize(kpool.size());
            vpool16.resize(vpool.size());
            for (size_t i = 0; i < kpool.size(); ++i) {
                kpool16[i] = llm8::fp32_to_fp16(kpool[i]);
                vpool16[i] = llm8::fp32_to_fp16(vpool[i]);
                kpool[i] = llm8::fp16_to_fp32(kpool16[i]);
                vpool[i] = llm8::fp16_to_fp32(vpool16[i]);
            }
        }
        want.assign(q.size(), 0.f);
        for (int s = 0; s < ns; ++s) {
            const int L = kv_len[size_t(s)], n = q_len[size_t(s)];
            std::vector<float> k(size_t(L) * kv_dim), v(k.size());
            for (int j = 0; j < L; ++j) {
                const int64_t r = row(s, j);
                std::copy_n(kpool.begin() + r * kv_dim, kv_dim, k.begin() + int64_t(j) * kv_dim);
                std::copy_n(vpool.begin() + r * kv_dim, kv_dim, v.begin() + int64_t(j) * kv_dim);
            }
            llm8::cpu::attention_ref(q.data() + int64_t(q_start[size_t(s)]) * n_head * hd,
                                     k.data(), v.data(), n, L - n, n_head, n_kv, hd,
                                     want.data() + int64_t(q_start[size_t(s)]) * n_head * hd);
        }
    }

    // Parameters over the given buffers (host for the CPU, device for CUDA); ks, vs: the INT8
    // cache's scales.
    llm8::AttnParams params(const float* dq, float* dout, void* k, void* v, const int32_t* dqs,
                            const int32_t* dkvl, const int32_t* dtables, llm8::KvType type,
                            float* ks = nullptr, float* vs = nullptr) const {
        llm8::AttnParams p;
        p.q = dq;
        p.out = dout;
        p.kv.type = type;
        p.kv.k = k;
        p.kv.v = v;
        p.kv.k_scale = ks;
        p.kv.v_scale = vs;
        p.kv.kv_dim = n_kv * hd;
        p.kv.block_size = block;
        p.kv.block_shift = shift();
        p.kv.block_tables = dtables;
        p.kv.max_blocks = max_blocks;
        p.n_seqs = int(q_len.size());
        p.n_tokens = n_tokens;
        p.q_start = dqs;
        p.kv_len = dkvl;
        p.max_q = max_q;
        p.max_kv = max_kv;
        p.n_head = n_head;
        p.n_head_kv = n_kv;
        p.head_dim = hd;
        return p;
    }
};

// A PagedCase's float pools written into the INT8 cache's form, as the forward's write step
// does (cpu::quantize_kv_row_i8), with the keys' mean over the pool as the smoothing mean.
struct I8Pools {
    std::vector<int8_t> k8, v8;
    std::vector<float> ks, vs, mean;
};
I8Pools to_i8(const PagedCase& c) {
    const int kv_dim = c.n_kv * c.hd;
    const size_t rows = c.kpool.size() / size_t(kv_dim);
    I8Pools p;
    p.mean.assign(size_t(kv_dim), 0.0f);
    for (size_t r = 0; r < rows; ++r)
        for (int i = 0; i < kv_dim; ++i)
            p.mean[size_t(i)] += c.kpool[r * size_t(kv_dim) + size_t(i)];
    for (auto& m : p.mean) m /= float(rows);
    p.k8.resize(c.kpool.size());
    p.v8.resize(c.vpool.size());
    p.ks.resize(rows * size_t(c.n_kv));
    p.vs.resize(p.ks.size());
    for (size_t r = 0; r < rows; ++r)
        llm8::cpu::quantize_kv_row_i8(&c.kpool[r * size_t(kv_dim)], &c.vpool[r * size_t(kv_dim)],
                                      p.mean.data(), kv_dim, c.hd, &p.k8[r * size_t(kv_dim)],
                                      &p.ks[r * size_t(c.n_kv)], &p.v8[r * size_t(kv_dim)],
                                      &p.vs[r * size_t(c.n_kv)]);
    return p;
}

}  // namespace llm8_test
