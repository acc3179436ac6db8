// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. The same (key, counter) gives the same four words on the CPU and
// the GPU, so a request's draws depend only on its seed and its draw index, never on the batch
// it ran in. Usable from host and device code.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LLM8_HD __host__ __device__ __forceinline__
#else
#define LLM8_HD inline
#endif

namespace llm8 {

struct Philox4x32 {
    uint32_t v[4];
};

LLM8_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
    const uint64_t p = uint64_t(a) * uint64_t(b);
    *hi = uint32_t(p >> 32);
    return uint32_t(p);
}

// counter: (c0, c1, c2, c3); key: (k0, k1). Ten rounds.
LLM8_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                 uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
        uint32_t hi0, hi1;
        const uint32_t lo0 = philox_mulhilo(M0, c0, &hi0);
        const uint32_t lo1 = philox_mulhilo(M1, c2, &hi1);
        const uint32_t n0 = hi1 ^ c1 ^ k0;
        const uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    return Philox4x32{{c0, c1, c2, c3}};
}

// A uniform float in [0, 1) with 24 random bits, from one 32-bit word.
LLM8_HD float philox_uniform(uint32_t x) {
    return float(x >> 8) * (1.0f / 16777216.0f);
}

// The uniform of draw `offset` (and lane 0..3 of it) for a request seeded with `seed`.
LLM8_HD float philox_draw(uint64_t seed, uint64_t offset, uint32_t subsequence = 0, int lane = 0) {
    const Philox4x32 r = philox4x32_10(uint32_t(offset), uint32_t(offset >> 32), subsequence, 0,
                                       uint32_t(seed), uint32_t(seed >> 32));
    return philox_uniform(r.v[lane & 3]);
}

}  // namespace llm8
