// Error-minimizing quantizers of Q2_K, Q3_K, IQ4_NL and IQ4_XS (layouts in quants.h).
//
// Every format is a two-level scale: a group of 16 or 32 elements has its own scale (and, for
// Q2_K, an offset), and those are stored as small integers times a half-precision scale of the
// block. Each level is fitted by the same recipe, in the spirit of ggml's reference quantizers
// (make_qkx2_quants / make_qx_quants) but written for llm8:
//   1. group fit: try a grid of candidate inverse scales around the natural one (the extreme
//      value mapped onto the extreme level, both ends for signed grids); for each, round every
//      element to its level, then solve the weighted least-squares scale (and offset) for
//      those levels; keep the candidate of least weighted squared error, then alternate
//      "re-round against the fitted scale / refit" while the error still drops;
//   2. the group scales are quantized with the same search one level up (their weights: how
//      much an error in that scale costs the elements, sum w q^2, or sum w for offsets);
//   3. every element is rounded again against the scales as stored, and the block scale(s)
//      refitted by least squares on those integers, kept only when the error drops.
// The error is plain squared error (element_weights says why).
// Round-trip RMSE relative to the data's RMS on N(0, 1) data (tests/test_quants.cpp prints
// it): q2_K 0.265, q3_K 0.143, iq4_nl 0.073, iq4_xs 0.074.
#include "gguf/quant_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf/quants.h"

namespace llm8 {
namespace quant_search {

const int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                               1,    13,   25,  38,  53,  69,  89,  113};

namespace {

constexpr int kQKK = 256;

// Round to nearest (ties to even) after clamping to [lo, hi]; NaN gives lo.
inline int round_clamp(float f, int lo, int hi) {
    f = f > float(lo) ? f : float(lo);
    f = f < float(hi) ? f : float(hi);
    return static_cast<int>(std::nearbyint(f));
}

inline float half_round(float f) {
    return fp16_to_fp32(fp32_to_fp16(f));
}

inline void store_half(uint8_t* p, float f) {
    const uint16_t h = fp32_to_fp16(f);
    std::memcpy(p, &h, 2);
}

// w = x^2 + sigma^2 for the n elements of a block (see the top of the file).
// The weight of each element in the fitted error. Plain squared error (w = 1): on
// tiny-llama-hd64 (perplexity over 20 chunks of wiki.test, from the Q8_0 file) it beat every
// data-derived weighting tried: w = x^2 + sigma^2, |x| + sigma, x^2, sqrt(x^2 + sigma^2)
// (ggml's choices without an importance matrix): q2_K 273 against 312 / 282 / 335 / 290,
// q3_K 207.7 against 208.1-211.3, iq4_xs 190.9 against 191.7-192.6. The weights stay in the
// fits so that an importance matrix can be added later.
void element_weights(const float*, int n, float* w) {
    for (int i = 0; i < n; ++i) w[i] = 1.0f;
}

// ---- group fits -------------------------------------------------------------------------------

// x ~= s * q + b with q in 0..qmax and b <= 0 (ggml stores -b as a non-negative "min").
// Returns the weighted squared error; q in L.
float fit_affine(const float* x, const float* w, int n, int qmax, float* s_out, float* b_out,
                 uint8_t* L) {
    float mn = x[0], mx = x[0], sw = 0, swx = 0;
    for (int i = 0; i < n; ++i) {
        mn = std::min(mn, x[i]);
        mx = std::max(mx, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    auto error = [&](float s, float b, const uint8_t* q) {
        float e = 0;
        for (int i = 0; i < n; ++i) {
            const float d = s * float(q[i]) + b - x[i];
            e += w[i] * d * d;
        }
        return e;
    };
    if (!(mx > mn)) {  // constant, <= 0
        std::memset(L, 0, size_t(n));
        *s_out = 0;
        *b_out = mn;
        return error(0, mn, L);
    }
    // the natural guess: [mn, mx] onto [0, qmax]
    float best_s = (mx - mn) / float(qmax), best_b = mn;
    for (int i = 0; i < n; ++i) L[i] = uint8_t(round_clamp((x[i] - mn) / best_s, 0, qmax));
    float best = error(best_s, best_b, L);
    uint8_t q[32];
    // Least-squares (s, b) for the levels in q; false when degenerate.
    auto refit = [&](float* s, float* b) {
        float sq = 0, sqq = 0, sqx = 0;
        for (int i = 0; i < n; ++i) {
            const float fq = float(q[i]);
            sq += w[i] * fq;
            sqq += w[i] * fq * fq;
            sqx += w[i] * fq * x[i];
        }
        const float det = sw * sqq - sq * sq;
        if (det > 0) {
            *s = (sw * sqx - swx * sq) / det;
            *b = (sqq * swx - sq * sqx) / det;
        } else {
            *b = 1;  // every q equal: offset 0 below
        }
        if (*b > 0) {
            if (!(sqq > 0)) return false;
            *b = 0;
            *s = sqx / sqq;
        }
        return *s > 0;
    };
    for (int k = -6; k <= 12; ++k) {
        const float iscale = (float(qmax) + 0.1f * float(k)) / (mx - mn);
        for (int i = 0; i < n; ++i) q[i] = uint8_t(round_clamp(iscale * (x[i] - mn), 0, qmax));
        float s, b;
        if (!refit(&s, &b)) continue;
        const float e = error(s, b, q);
        if (e < best) {
            best = e;
            best_s = s;
            best_b = b;
            std::memcpy(L, q, size_t(n));
        }
    }
    // Alternate re-rounding and refitting while it helps.
    for (int it = 0; it < 4; ++it) {
        const float inv = 1.0f / best_s;
        bool changed = false;
        for (int i = 0; i < n; ++i) {
            q[i] = uint8_t(round_clamp((x[i] - best_b) * inv, 0, qmax));
            changed |= q[i] != L[i];
        }
        float s, b;
        if (!changed || !refit(&s, &b)) break;
        const float e = error(s, b, q);
        if (!(e < best)) break;
        best = e;
        best_s = s;
        best_b = b;
        std::memcpy(L, q, size_t(n));
    }
    *s_out = best_s;
    *b_out = best_b;
    return best;
}

// Levels of a symmetric-ish grid: integers lo..hi (Q3_K: -4..3), or the 16 IQ4 levels.
struct Grid {
    const int8_t* values;  // nullptr: the integers lo..hi
    int lo, hi;            // integer grid bounds, or index bounds 0..15 for a table

    float level(int q) const { return values ? float(values[q]) : float(q); }
    // The level index nearest to v (v in level units).
    int nearest(float v) const {
        if (!values) return round_clamp(v, lo, hi);
        int idx = 0;  // number of midpoints below v
        for (int k = 1; k < 16; ++k) idx += v > 0.5f * (float(values[k - 1]) + float(values[k]));
        return idx;
    }
    float min_level() const { return values ? float(values[0]) : float(lo); }
    float max_level() const { return values ? float(values[15]) : float(hi); }
};

// x ~= s * level(q) with s of either sign. Returns the weighted squared error; q indices in L.
float fit_scale(const float* x, const float* w, int n, const Grid& g, float* s_out, int8_t* L) {
    float amax = 0, vmax = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
        sxx += w[i] * x[i] * x[i];
    }
    const int zero = g.nearest(0.0f);
    if (!(amax > 0)) {
        for (int i = 0; i < n; ++i) L[i] = int8_t(zero);
        *s_out = 0;
        return sxx;
    }
    int8_t q[32];
    float best = sxx, best_s = 0;
    for (int i = 0; i < n; ++i) L[i] = int8_t(zero);
    // err(s*) = sxx - sqx^2 / sqq for the least-squares s* = sqx / sqq
    auto consider = [&]() {
        float sqx = 0, sqq = 0;
        for (int i = 0; i < n; ++i) {
            const float l = g.level(q[i]);
            sqx += w[i] * l * x[i];
            sqq += w[i] * l * l;
        }
        if (!(sqq > 0)) return;
        const float e = sxx - sqx * sqx / sqq;
        if (e < best) {
            best = e;
            best_s = sqx / sqq;
            std::memcpy(L, q, size_t(n));
        }
    };
    // vmax onto the lowest level and onto the highest, each with a fan of stretches.
    const float ends[2] = {g.min_level(), g.max_level()};
    for (float end : ends) {
        for (int k = -8; k <= 8; ++k) {
            const float iscale = end * (1.0f + 0.03f * float(k)) / vmax;
            for (int i = 0; i < n; ++i) q[i] = int8_t(g.nearest(iscale * x[i]));
            consider();
        }
    }
    for (int it = 0; it < 4 && best_s != 0; ++it) {
        const float inv = 1.0f / best_s;
        bool changed = false;
        for (int i = 0; i < n; ++i) {
            q[i] = int8_t(g.nearest(x[i] * inv));
            changed |= q[i] != L[i];
        }
        const float before = best;
        if (changed) consider();
        if (!(best < before)) break;
    }
    *s_out = best_s;
    return std::max(best, 0.0f);
}

// ---- block scales ----------------------------------------------------------------------------

// v[j] ~= d * l[j] with l in lo..hi and d a half: the same search one level up. W[j] is what
// an error in v[j] costs. Returns d (a half value); l in L.
float fit_block_scale(const float* v, const float* W, int n, int lo, int hi, int* L) {
    float amax = 0, vmax = 0;
    for (int j = 0; j < n; ++j) {
        if (std::fabs(v[j]) > amax) {
            amax = std::fabs(v[j]);
            vmax = v[j];
        }
    }
    for (int j = 0; j < n; ++j) L[j] = 0;
    if (!(amax > 0)) return 0.0f;
    int l[32];
    float best = INFINITY, best_d = 0;
    auto consider = [&](float d) {
        d = half_round(d);
        if (!(d != 0) || !std::isfinite(d)) return;
        float e = 0;
        for (int j = 0; j < n; ++j) {
            l[j] = round_clamp(v[j] / d, lo, hi);
            const float r = v[j] - d * float(l[j]);
            e += W[j] * r * r;
        }
        if (e < best) {
            best = e;
            best_d = d;
            std::memcpy(L, l, sizeof(int) * size_t(n));
        }
    };
    const float ends[2] = {float(lo), float(hi)};
    for (float end : ends) {
        if (end == 0) continue;
        for (int k = -4; k <= 4; ++k) consider(vmax / (end * (1.0f + 0.02f * float(k))));
    }
    for (int it = 0; it < 2; ++it) {  // least-squares d for the chosen integers
        float svl = 0, sll = 0;
        for (int j = 0; j < n; ++j) {
            svl += W[j] * v[j] * float(L[j]);
            sll += W[j] * float(L[j]) * float(L[j]);
        }
        if (!(sll > 0)) break;
        const float before = best;
        consider(svl / sll);
        if (!(best < before)) break;
    }
    return best_d;
}

// ---- Q2_K
// ----------------------------------------------------------------------------------------

// q (0..3) of every element against stored scales; returns the weighted error.
float round_q2(const float* x, const float* w, float d, float dmin, const int* ls, const int* lm,
               uint8_t* L) {
    float e = 0;
    for (int j = 0; j < 16; ++j) {
        const float ds = d * float(ls[j]), dm = dmin * float(lm[j]);
        const float inv = ds > 0 ? 1.0f / ds : 0.0f;
        for (int i = 16 * j; i < 16 * j + 16; ++i) {
            L[i] = uint8_t(ds > 0 ? round_clamp((x[i] + dm) * inv, 0, 3) : 0);
            const float r = ds * float(L[i]) - dm - x[i];
            e += w[i] * r * r;
        }
    }
    return e;
}

}  // namespace

void quantize_q2_k(const float* x, uint8_t* b) {
    float w[kQKK];
    element_weights(x, kQKK, w);
    uint8_t L[kQKK];
    float s[16], m[16], Ws[16], Wm[16];
    for (int j = 0; j < 16; ++j) {
        float bj;
        fit_affine(x + 16 * j, w + 16 * j, 16, 3, &s[j], &bj, L + 16 * j);
        m[j] = -bj;
        Ws[j] = Wm[j] = 0;
        for (int i = 16 * j; i < 16 * j + 16; ++i) {
            Ws[j] += w[i] * float(L[i]) * float(L[i]);
            Wm[j] += w[i];
        }
    }
    int ls[16], lm[16];
    float d = fit_block_scale(s, Ws, 16, 0, 15, ls);
    float dmin = fit_block_scale(m, Wm, 16, 0, 15, lm);
    float err = round_q2(x, w, d, dmin, ls, lm, L);
    // (d, dmin) by least squares on the integers: x ~= d * (ls q) - dmin * lm.
    for (int it = 0; it < 2; ++it) {
        double saa = 0, sac = 0, scc = 0, sax = 0, scx = 0;
        for (int i = 0; i < kQKK; ++i) {
            const double a = double(ls[i / 16]) * L[i], c = lm[i / 16];
            saa += w[i] * a * a;
            sac += w[i] * a * c;
            scc += w[i] * c * c;
            sax += w[i] * a * x[i];
            scx += w[i] * c * x[i];
        }
        // minimize sum w (d a - e c - x)^2 over (d, e)
        const double det = saa * scc - sac * sac;
        if (!(det > 0)) break;
        const float d2 = half_round(float((sax * scc - scx * sac) / det));
        const float e2 = half_round(float((sax * sac - scx * saa) / det));
        if (!(d2 > 0) || e2 < 0 || !std::isfinite(d2) || !std::isfinite(e2)) break;
        uint8_t L2[kQKK];
        const float err2 = round_q2(x, w, d2, e2, ls, lm, L2);
        if (!(err2 < err)) break;
        err = err2;
        d = d2;
        dmin = e2;
        std::memcpy(L, L2, sizeof L);
    }
    for (int j = 0; j < 16; ++j) b[j] = uint8_t(ls[j] | (lm[j] << 4));
    uint8_t* qs = b + 16;
    std::memset(qs, 0, 64);
    for (int e = 0; e < kQKK; ++e)
        qs[32 * (e / 128) + e % 32] |= uint8_t(L[e] << (2 * ((e % 128) / 32)));
    store_half(b + 80, d);
    store_half(b + 82, dmin);
}

// ---- Q3_K
// ----------------------------------------------------------------------------------------

namespace {

float round_q3(const float* x, const float* w, float d, const int* ls, int8_t* L) {
    float e = 0;
    for (int j = 0; j < 16; ++j) {
        const float ds = d * float(ls[j]);
        const float inv = ds != 0 ? 1.0f / ds : 0.0f;
        for (int i = 16 * j; i < 16 * j + 16; ++i) {
            L[i] = int8_t(ds != 0 ? round_clamp(x[i] * inv, -4, 3) : 0);
            const float r = ds * float(L[i]) - x[i];
            e += w[i] * r * r;
        }
    }
    return e;
}

}  // namespace

void quantize_q3_k(const float* x, uint8_t* b) {
    float w[kQKK];
    element_weights(x, kQKK, w);
    int8_t L[kQKK];
    float s[16], W[16];
    const Grid grid{nullptr, -4, 3};
    for (int j = 0; j < 16; ++j) {
        fit_scale(x + 16 * j, w + 16 * j, 16, grid, &s[j], L + 16 * j);
        W[j] = 0;
        for (int i = 16 * j; i < 16 * j + 16; ++i) W[j] += w[i] * float(L[i]) * float(L[i]);
    }
    int ls[16];
    float d = fit_block_scale(s, W, 16, -32, 31, ls);
    float err = round_q3(x, w, d, ls, L);
    for (int it = 0; it < 2; ++it) {  // d by least squares on the integers
        double saa = 0, sax = 0;
        for (int i = 0; i < kQKK; ++i) {
            const double a = double(ls[i / 16]) * L[i];
            saa += w[i] * a * a;
            sax += w[i] * a * x[i];
        }
        if (!(saa > 0)) break;
        const float d2 = half_round(float(sax / saa));
        if (!std::isfinite(d2)) break;
        int8_t L2[kQKK];
        const float err2 = round_q3(x, w, d2, ls, L2);
        if (!(err2 < err)) break;
        err = err2;
        d = d2;
        std::memcpy(L, L2, sizeof L);
    }
    uint8_t* hmask = b;
    uint8_t* qs = b + 32;
    uint8_t* sc = b + 96;
    std::memset(b, 0, 108);
    for (int j = 0; j < 16; ++j) {
        const int l = ls[j] + 32;  // 0..63
        if (j < 8)
            sc[j] |= uint8_t(l & 0x0f);
        else
            sc[j - 8] |= uint8_t((l & 0x0f) << 4);
        sc[8 + j % 4] |= uint8_t((l >> 4) << (2 * (j / 4)));
    }
    for (int e = 0; e < kQKK; ++e) {
        const int q = L[e] + 4;  // 0..7
        qs[32 * (e / 128) + e % 32] |= uint8_t((q & 3) << (2 * ((e % 128) / 32)));
        if (q & 4) hmask[e % 32] |= uint8_t(1u << (e / 32));
    }
    store_half(b + 108, d);
}

// ---- IQ4_NL / IQ4_XS
// -----------------------------------------------------------------------------

namespace {

const Grid kIq4Grid{kIq4Levels, 0, 15};

float round_iq4(const float* x, const float* w, int n, float dl, int8_t* L) {
    const float inv = dl != 0 ? 1.0f / dl : 0.0f;
    float e = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = int8_t(kIq4Grid.nearest(x[i] * inv));
        const float r = dl * float(kIq4Levels[L[i]]) - x[i];
        e += w[i] * r * r;
    }
    return e;
}

void pack_iq4(const int8_t* L, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
}

}  // namespace

void quantize_iq4_nl(const float* x, uint8_t* b) {
    float w[32];
    element_weights(x, 32, w);
    int8_t L[32];
    float s;
    fit_scale(x, w, 32, kIq4Grid, &s, L);
    // against the stored half scale, then its least-squares refit while that helps
    float d = half_round(s);
    float err = round_iq4(x, w, 32, d, L);
    for (int it = 0; it < 2; ++it) {
        float sax = 0, saa = 0;
        for (int i = 0; i < 32; ++i) {
            const float a = kIq4Levels[L[i]];
            sax += w[i] * a * x[i];
            saa += w[i] * a * a;
        }
        if (!(saa > 0)) break;
        const float d2 = half_round(sax / saa);
        int8_t L2[32];
        const float err2 = round_iq4(x, w, 32, d2, L2);
        if (!(err2 < err)) break;
        err = err2;
        d = d2;
        std::memcpy(L, L2, sizeof L);
    }
    store_half(b, d);
    pack_iq4(L, b + 2);
}

void quantize_iq4_xs(const float* x, uint8_t* b) {
    float w[kQKK];
    element_weights(x, kQKK, w);
    int8_t L[kQKK];
    float s[8], W[8];
    for (int j = 0; j < 8; ++j) {
        fit_scale(x + 32 * j, w + 32 * j, 32, kIq4Grid, &s[j], L + 32 * j);
        W[j] = 0;
        for (int i = 32 * j; i < 32 * j + 32; ++i) {
            const float a = kIq4Levels[L[i]];
            W[j] += w[i] * a * a;
        }
    }
    int ls[8];
    float d = fit_block_scale(s, W, 8, -32, 31, ls);
    auto round_all = [&](float dd, int8_t* q) {
        float e = 0;
        for (int j = 0; j < 8; ++j)
            e += round_iq4(x + 32 * j, w + 32 * j, 32, dd * float(ls[j]), q + 32 * j);
        return e;
    };
    float err = round_all(d, L);
    for (int it = 0; it < 2; ++it) {
        double sax = 0, saa = 0;
        for (int i = 0; i < kQKK; ++i) {
            const double a = double(ls[i / 32]) * kIq4Levels[L[i]];
            sax += w[i] * a * x[i];
            saa += w[i] * a * a;
        }
        if (!(saa > 0)) break;
        const float d2 = half_round(float(sax / saa));
        if (!std::isfinite(d2)) break;
        int8_t L2[kQKK];
        const float err2 = round_all(d2, L2);
        if (!(err2 < err)) break;
        err = err2;
        d = d2;
        std::memcpy(L, L2, sizeof L);
    }
    store_half(b, d);
    uint16_t sh = 0;
    uint8_t* sl = b + 4;
    std::memset(sl, 0, 4);
    for (int j = 0; j < 8; ++j) {
        const int l = ls[j] + 32;  // 0..63
        sl[j / 2] |= uint8_t((l & 0x0f) << (4 * (j % 2)));
        sh |= uint16_t((l >> 4) << (2 * j));
    }
    std::memcpy(b + 2, &sh, 2);
    for (int j = 0; j < 8; ++j) pack_iq4(L + 32 * j, b + 8 + 16 * j);
}

}  // namespace quant_search
}  // namespace llm8
