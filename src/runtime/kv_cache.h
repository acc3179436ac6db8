// Per-session key/value cache on the CPU, float32: for each layer, n_ctx rows of
// [n_head_kv * head_dim] for K (after RoPE) and for V.
#pragma once
#include <cstdint>
#include <vector>

namespace llm8 {

struct KvCache {
    int n_layer = 0;
    int n_ctx = 0;
    int kv_dim = 0;
    std::vector<float> k;  // [n_layer, n_ctx, kv_dim]
    std::vector<float> v;  // [n_layer, n_ctx, kv_dim]

    void init(int layers, int ctx, int dim) {
        n_layer = layers;
        n_ctx = ctx;
        kv_dim = dim;
        k.assign(size_t(layers) * size_t(ctx) * size_t(dim), 0.0f);
        v.assign(k.size(), 0.0f);
    }
    float* k_layer(int il) { return k.data() + size_t(il) * size_t(n_ctx) * size_t(kv_dim); }
    float* v_layer(int il) { return v.data() + size_t(il) * size_t(n_ctx) * size_t(kv_dim); }
};

}  // namespace llm8
