// CPU block formats of ggml tensor types: dequantize_row (the reference), quantize_row and the
// fused dequantize-dot vec_dot_row of the decode GEMV.
//
// Notes on how this is written:
// - Blocks are read through byte pointers (memcpy for the halves), so rows need no alignment.
// - Dequantization and the reference quantizers are compiled without floating-point
//   contraction (GCC's optimize pragma / clang's fp pragma below). They use the same operations
//   in the same order as ggml's dequantize_row_* / quantize_row_*_ref (e.g. Q4_1 is q * d + m,
//   Q4_K is (d * sc) * q - dmin * m); letting the compiler fuse them into an FMA changed results
//   by an ulp or more (more under cancellation), so the outputs are bit-exact with ggml's
//   reference and gguf-py only with contraction off. vec_dot_row is not bound by that and is
//   compiled with the default contraction, so it gets FMAs.
// - vec_dot_row works a block at a time into 16 float lanes (two AVX2 / one AVX-512 register)
//   with fixed trip counts so that g++ -O2 (very-cheap vectorizer) and -O3 vectorize it; lanes
//   are summed once per row. Affine formats use sum((q*d + m) * x) = d * sum(q*x) + m * sum(x).
//   Tried first: dequantize each block into a float[32]/[256] stack buffer and dot it; the
//   direct form is as simple and skips the store/reload, so it was kept.
// - The half -> float conversion of the block scales is inlined here (exact, via a power-of-two
//   multiply) because a call per block into type_traits.cpp showed up in the Q4_0/Q8_0 loops.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "gguf/quants.h"

namespace llm8 {

namespace {

constexpr int kQK = 32;    // elements of a Q4_0 .. Q8_0 block
constexpr int kQKK = 256;  // elements of a K-quant super-block
constexpr int kLanes = 16;

inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

inline float bits_to_float(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// Exact half -> float: the exponent/mantissa bits moved into a float and rescaled by 2^112
// cover normals and subnormals; inf/nan get the all-ones exponent back.
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t em = uint32_t(h & 0x7fffu) << 13;
    const float mag = (h & 0x7c00u) == 0x7c00u ? bits_to_float(em | 0x7f800000u)
                                               : bits_to_float(em) * 0x1p112f;
    uint32_t b;
    std::memcpy(&b, &mag, 4);
    return bits_to_float(b | sign);
}

inline float hsum(const float* a) {
    float t[kLanes / 2];
    for (int k = 0; k < kLanes / 2; ++k) t[k] = a[k] + a[k + kLanes / 2];
    for (int k = 0; k < 4; ++k) t[k] += t[k + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Inverse of scale_min_k4 for 8 values in 0..63.
void pack_scale_min_k4(const int* sc, const int* m, uint8_t* q) {
    for (int j = 0; j < 4; ++j) {
        q[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = uint8_t((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = uint8_t((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
    }
}

inline int nearest_int(float f) { return static_cast<int>(std::lround(f)); }

// ---- dequantization and reference quantizers: no FP contraction ------------------------------
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

void dequant_q4_0(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const uint8_t* qs = b + 2;
    for (int j = 0; j < kQK / 2; ++j) {
        y[j] = float((qs[j] & 0x0f) - 8) * d;
        y[j + kQK / 2] = float((qs[j] >> 4) - 8) * d;
    }
}

void dequant_q4_1(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const float m = half_to_float(load_u16(b + 2));
    const uint8_t* qs = b + 4;
    for (int j = 0; j < kQK / 2; ++j) {
        y[j] = float(qs[j] & 0x0f) * d + m;
        y[j + kQK / 2] = float(qs[j] >> 4) * d + m;
    }
}

void dequant_q5_0(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const uint32_t qh = load_u32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < kQK / 2; ++j) {
        const int h0 = int((qh >> j) & 1u) << 4;
        const int h1 = int((qh >> (j + 16)) & 1u) << 4;
        y[j] = float(((qs[j] & 0x0f) | h0) - 16) * d;
        y[j + kQK / 2] = float(((qs[j] >> 4) | h1) - 16) * d;
    }
}

void dequant_q5_1(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const float m = half_to_float(load_u16(b + 2));
    const uint32_t qh = load_u32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < kQK / 2; ++j) {
        const int h0 = int((qh >> j) & 1u) << 4;
        const int h1 = int((qh >> (j + 16)) & 1u) << 4;
        y[j] = float((qs[j] & 0x0f) | h0) * d + m;
        y[j + kQK / 2] = float((qs[j] >> 4) | h1) * d + m;
    }
}

void dequant_q8_0(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < kQK; ++j) y[j] = float(qs[j]) * d;
}

// Q4_K: d, dmin, scales[12], qs[128]; 8 sub-blocks of 32: x = (d * sc) * q - dmin * m.
void dequant_q4_k(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const float dmin = half_to_float(load_u16(b + 2));
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int j = 0; j < 4; ++j) {
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * j, scales, &sc0, &m0);
        scale_min_k4(2 * j + 1, scales, &sc1, &m1);
        const float d0 = d * float(sc0), mm0 = dmin * float(m0);
        const float d1 = d * float(sc1), mm1 = dmin * float(m1);
        const uint8_t* q = qs + 32 * j;
        float* out = y + 64 * j;
        for (int l = 0; l < 32; ++l) {
            out[l] = d0 * float(q[l] & 0x0f) - mm0;
            out[l + 32] = d1 * float(q[l] >> 4) - mm1;
        }
    }
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; bit 2j / 2j+1 of qh[l] is the fifth bit of
// element l of sub-block 2j / 2j+1.
void dequant_q5_k(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const float dmin = half_to_float(load_u16(b + 2));
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int j = 0; j < 4; ++j) {
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * j, scales, &sc0, &m0);
        scale_min_k4(2 * j + 1, scales, &sc1, &m1);
        const float d0 = d * float(sc0), mm0 = dmin * float(m0);
        const float d1 = d * float(sc1), mm1 = dmin * float(m1);
        const uint8_t* q = qs + 32 * j;
        float* out = y + 64 * j;
        for (int l = 0; l < 32; ++l) {
            const int h0 = ((qh[l] >> (2 * j)) & 1) << 4;
            const int h1 = ((qh[l] >> (2 * j + 1)) & 1) << 4;
            out[l] = d0 * float((q[l] & 0x0f) | h0) - mm0;
            out[l + 32] = d1 * float((q[l] >> 4) | h1) - mm1;
        }
    }
}

// Q6_K: ql[128], qh[64], scales[16] int8, d; element e uses scale e / 16:
// x = (d * sc) * (q - 32), q = 4 low bits from ql and 2 high bits from qh.
void dequant_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half_to_float(load_u16(b + 208));
    for (int h = 0; h < 2; ++h) {
        const uint8_t* l4 = ql + 64 * h;
        const uint8_t* h2 = qh + 32 * h;
        const int8_t* s = sc + 8 * h;
        float* out = y + 128 * h;
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((l4[l] & 0x0f) | ((h2[l] & 3) << 4)) - 32;
            const int q2 = ((l4[l + 32] & 0x0f) | (((h2[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((l4[l] >> 4) | (((h2[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((l4[l + 32] >> 4) | (((h2[l] >> 6) & 3) << 4)) - 32;
            out[l] = d * float(s[is + 0]) * float(q1);
            out[l + 32] = d * float(s[is + 2]) * float(q2);
            out[l + 64] = d * float(s[is + 4]) * float(q3);
            out[l + 96] = d * float(s[is + 6]) * float(q4);
        }
    }
}

// Symmetric formats (Q4_0, Q5_0): d = v / -2^(bits-1) with v the value of largest magnitude
// (first one on ties), q = min(qmax, (int)(x / d + 2^(bits-1) + 0.5)), as quantize_row_*_ref.
void quant_sym(const float* x, int bits, float* d_out, uint8_t* q) {
    float amax = 0.0f, vmax = 0.0f;
    for (int j = 0; j < kQK; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            vmax = x[j];
        }
    }
    const int half = 1 << (bits - 1);
    const float d = vmax / float(-half);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float bias = float(half) + 0.5f;
    for (int j = 0; j < kQK; ++j) {
        const int v = static_cast<int>(x[j] * id + bias);
        q[j] = uint8_t(std::min(2 * half - 1, std::max(0, v)));
    }
    *d_out = d;
}

// Affine formats (Q4_1, Q5_1): d = (max - min) / (2^bits - 1), m = min,
// q = min(qmax, (int)((x - min) / d + 0.5)).
void quant_affine(const float* x, int bits, float* d_out, float* m_out, uint8_t* q) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < kQK; ++j) {
        mn = std::min(mn, x[j]);
        mx = std::max(mx, x[j]);
    }
    const int qmax = (1 << bits) - 1;
    const float d = (mx - mn) / float(qmax);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < kQK; ++j) {
        const int v = static_cast<int>((x[j] - mn) * id + 0.5f);
        q[j] = uint8_t(std::min(qmax, std::max(0, v)));
    }
    *d_out = d;
    *m_out = mn;
}

void pack_nibbles(const uint8_t* q, uint8_t* qs) {
    for (int j = 0; j < kQK / 2; ++j)
        qs[j] = uint8_t((q[j] & 0x0f) | ((q[j + kQK / 2] & 0x0f) << 4));
}

uint32_t pack_fifth_bits(const uint8_t* q) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK; ++j) qh |= uint32_t((q[j] >> 4) & 1) << j;
    return qh;
}

void quant_q4_0(const float* x, uint8_t* b) {
    float d;
    uint8_t q[kQK];
    quant_sym(x, 4, &d, q);
    store_u16(b, fp32_to_fp16(d));
    pack_nibbles(q, b + 2);
}

void quant_q4_1(const float* x, uint8_t* b) {
    float d, m;
    uint8_t q[kQK];
    quant_affine(x, 4, &d, &m, q);
    store_u16(b, fp32_to_fp16(d));
    store_u16(b + 2, fp32_to_fp16(m));
    pack_nibbles(q, b + 4);
}

void quant_q5_0(const float* x, uint8_t* b) {
    float d;
    uint8_t q[kQK];
    quant_sym(x, 5, &d, q);
    store_u16(b, fp32_to_fp16(d));
    const uint32_t qh = pack_fifth_bits(q);
    std::memcpy(b + 2, &qh, 4);
    pack_nibbles(q, b + 6);
}

void quant_q5_1(const float* x, uint8_t* b) {
    float d, m;
    uint8_t q[kQK];
    quant_affine(x, 5, &d, &m, q);
    store_u16(b, fp32_to_fp16(d));
    store_u16(b + 2, fp32_to_fp16(m));
    const uint32_t qh = pack_fifth_bits(q);
    std::memcpy(b + 4, &qh, 4);
    pack_nibbles(q, b + 8);
}

// Q8_0: d = max|x| / 127, q = roundf(x / d) (half away from zero).
void quant_q8_0(const float* x, uint8_t* b) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(b, fp32_to_fp16(d));
    int8_t* qs = reinterpret_cast<int8_t*>(b + 2);
    for (int j = 0; j < kQK; ++j) qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

// K-quant quantizers (not ggml's make_qkx2/make_qx_quants searches; these are simpler):
//
// Q4_K / Q5_K, per sub-block of 32 (x ~= s * q - o, q in 0..qmax, o >= 0):
//   candidates s = f * (max - min') / qmax with min' = min(min, 0), f in {1, .95, .9, .85, .8},
//   o = -min'; for each, q is rounded, then (s, o) refitted by least squares on those q
//   (o clamped to >= 0); the candidate with the smallest squared error wins.
//   Super-block: d = max(s) / 63, dmin = max(o) / 63 (both stored as half), sc = round(s / d),
//   m = round(o / dmin) in 0..63, and every q is requantized against the stored (d * sc, dmin * m).
// Q6_K, per sub-block of 16: s = v / -32 with v the signed value of largest magnitude (so v
//   maps to q = -32), then refitted by least squares s = sum(q x) / sum(q q). Super-block:
//   d = s* / -128 with s* the s of largest magnitude, sc = round(s / d) in -128..127 (int8), and
//   q = round(x / (d * sc)) in -32..31 against the stored d.
// Round-trip RMSE on Gaussian data is ~0.075 (Q4_K), ~0.037 (Q5_K), ~0.018 (Q6_K) of its RMS.

void fit_sub_block_affine(const float* x, int nx, int qmax, float* s_out, float* o_out) {
    float mn = 0.0f, mx = x[0];
    for (int i = 0; i < nx; ++i) {
        mn = std::min(mn, x[i]);
        mx = std::max(mx, x[i]);
    }
    *s_out = 0.0f;
    *o_out = -mn;
    if (!(mx > mn)) return;
    float best_err = INFINITY;
    static const float kShrink[] = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f};
    for (float f : kShrink) {
        float s = f * (mx - mn) / float(qmax);
        float o = -mn;
        // q for this guess, then the least-squares (s, o) for those q
        double sq = 0, sqq = 0, sx = 0, sqx = 0;
        int q[kQK];
        for (int i = 0; i < nx; ++i) {
            q[i] = std::min(qmax, std::max(0, nearest_int((x[i] + o) / s)));
            sq += q[i];
            sqq += double(q[i]) * q[i];
            sx += x[i];
            sqx += double(q[i]) * x[i];
        }
        const double det = double(nx) * sqq - sq * sq;
        if (det > 0) {
            const double s_ls = (double(nx) * sqx - sq * sx) / det;
            const double o_ls = (sq * sqx - sqq * sx) / det;  // x ~= s*q - o
            if (s_ls > 0 && o_ls >= 0) {
                s = float(s_ls);
                o = float(o_ls);
            } else if (sqq > 0 && sqx > 0) {  // keep o = 0
                s = float(sqx / sqq);
                o = 0.0f;
            }
        }
        float err = 0.0f;
        for (int i = 0; i < nx; ++i) {
            const int qi = std::min(qmax, std::max(0, nearest_int((x[i] + o) / s)));
            const float e = s * float(qi) - o - x[i];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            *s_out = s;
            *o_out = o;
        }
    }
}

// Fills the common part of Q4_K / Q5_K: d, dmin, scales[12]; q gets 0..qmax per element.
void quant_k_affine(const float* x, int qmax, uint8_t* b, uint8_t* q) {
    float s[8], o[8];
    float smax = 0.0f, omax = 0.0f;
    for (int j = 0; j < 8; ++j) {
        fit_sub_block_affine(x + 32 * j, 32, qmax, &s[j], &o[j]);
        smax = std::max(smax, s[j]);
        omax = std::max(omax, o[j]);
    }
    const uint16_t dh = fp32_to_fp16(smax / 63.0f);
    const uint16_t dminh = fp32_to_fp16(omax / 63.0f);
    const float d = half_to_float(dh), dmin = half_to_float(dminh);
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
        sc[j] = d > 0.0f ? std::min(63, std::max(0, nearest_int(s[j] / d))) : 0;
        m[j] = dmin > 0.0f ? std::min(63, std::max(0, nearest_int(o[j] / dmin))) : 0;
    }
    store_u16(b, dh);
    store_u16(b + 2, dminh);
    pack_scale_min_k4(sc, m, b + 4);
    for (int j = 0; j < 8; ++j) {
        const float ds = d * float(sc[j]), dm = dmin * float(m[j]);
        for (int i = 0; i < 32; ++i) {
            const int v = ds > 0.0f ? nearest_int((x[32 * j + i] + dm) / ds) : 0;
            q[32 * j + i] = uint8_t(std::min(qmax, std::max(0, v)));
        }
    }
}

void quant_q4_k(const float* x, uint8_t* b) {
    uint8_t q[kQKK];
    quant_k_affine(x, 15, b, q);
    uint8_t* qs = b + 16;
    for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l)
            qs[32 * j + l] = uint8_t(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
}

void quant_q5_k(const float* x, uint8_t* b) {
    uint8_t q[kQKK];
    quant_k_affine(x, 31, b, q);
    uint8_t* qh = b + 16;
    uint8_t* qs = b + 48;
    std::memset(qh, 0, 32);
    for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
            const int lo = q[64 * j + l], hi = q[64 * j + 32 + l];
            qs[32 * j + l] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
            qh[l] |= uint8_t(((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
        }
    }
}

void quant_q6_k(const float* x, uint8_t* b) {
    float s[16];
    float smax = 0.0f, sabs = 0.0f;
    for (int j = 0; j < 16; ++j) {
        const float* xs = x + 16 * j;
        float amax = 0.0f, vmax = 0.0f;
        for (int i = 0; i < 16; ++i) {
            if (amax < std::fabs(xs[i])) {
                amax = std::fabs(xs[i]);
                vmax = xs[i];
            }
        }
        float sj = vmax / -32.0f;
        if (sj != 0.0f) {  // least-squares refit of the scale on the rounded q
            double sqx = 0, sqq = 0;
            for (int i = 0; i < 16; ++i) {
                const int qi = std::min(31, std::max(-32, nearest_int(xs[i] / sj)));
                sqx += double(qi) * xs[i];
                sqq += double(qi) * qi;
            }
            if (sqq > 0) sj = float(sqx / sqq);
        }
        s[j] = sj;
        if (std::fabs(sj) > sabs) {
            sabs = std::fabs(sj);
            smax = sj;
        }
    }
    const uint16_t dh = fp32_to_fp16(smax / -128.0f);
    const float d = half_to_float(dh);
    int8_t sc[16];
    for (int j = 0; j < 16; ++j)
        sc[j] = int8_t(d != 0.0f ? std::min(127, std::max(-128, nearest_int(s[j] / d))) : 0);
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    std::memset(ql, 0, 128);
    std::memset(qh, 0, 64);
    std::memcpy(b + 192, sc, 16);
    store_u16(b + 208, dh);
    for (int e = 0; e < kQKK; ++e) {
        const float ds = d * float(sc[e / 16]);
        const int v = ds != 0.0f ? nearest_int(x[e] / ds) : 0;
        const int q = std::min(31, std::max(-32, v)) + 32;  // 0..63
        const int h = e / 128, p = e % 128;
        const int lq = 64 * h + (p % 64);      // ql byte: low nibble for p < 64, else high
        const int hq = 32 * h + (p % 32);      // qh byte, 2 bits at 2 * (p / 32)
        ql[lq] |= uint8_t((q & 0x0f) << (p < 64 ? 0 : 4));
        qh[hq] |= uint8_t((q >> 4) << (2 * (p / 32)));
    }
}

#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

// ---- fused dequantize-dot ---------------------------------------------------------------------

float dot_f32(const float* w, const float* x, int64_t n) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int k = 0; k < kLanes; ++k) acc[k] += w[i + k] * x[i + k];
    float s = hsum(acc);
    for (; i < n; ++i) s += w[i] * x[i];
    return s;
}

float dot_f16(const uint8_t* w, const float* x, int64_t n) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        uint16_t h[kLanes];
        std::memcpy(h, w + 2 * i, sizeof(h));
        for (int k = 0; k < kLanes; ++k) acc[k] += half_to_float(h[k]) * x[i + k];
    }
    float s = hsum(acc);
    for (; i < n; ++i) s += half_to_float(load_u16(w + 2 * i)) * x[i];
    return s;
}

float dot_bf16(const uint8_t* w, const float* x, int64_t n) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        uint16_t h[kLanes];
        std::memcpy(h, w + 2 * i, sizeof(h));
        for (int k = 0; k < kLanes; ++k) acc[k] += bits_to_float(uint32_t(h[k]) << 16) * x[i + k];
    }
    float s = hsum(acc);
    for (; i < n; ++i) s += bits_to_float(uint32_t(load_u16(w + 2 * i)) << 16) * x[i];
    return s;
}

float dot_q4_0(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 18, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const uint8_t* qs = w + 2;
        float s[kLanes];
        for (int k = 0; k < kLanes; ++k)
            s[k] = float((qs[k] & 0x0f) - 8) * x[k] + float((qs[k] >> 4) - 8) * x[k + 16];
        for (int k = 0; k < kLanes; ++k) acc[k] += d * s[k];
    }
    return hsum(acc);
}

float dot_q4_1(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 20, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const float m = half_to_float(load_u16(w + 2));
        const uint8_t* qs = w + 4;
        float s[kLanes], t[kLanes];
        for (int k = 0; k < kLanes; ++k) {
            s[k] = float(qs[k] & 0x0f) * x[k] + float(qs[k] >> 4) * x[k + 16];
            t[k] = x[k] + x[k + 16];
        }
        for (int k = 0; k < kLanes; ++k) acc[k] += d * s[k] + m * t[k];
    }
    return hsum(acc);
}

float dot_q5_0(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 22, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const uint32_t qh = load_u32(w + 2);
        const uint8_t* qs = w + 6;
        float s[kLanes];
        for (int k = 0; k < kLanes; ++k) {
            const int q0 = int((qs[k] & 0x0f) | (((qh >> k) & 1u) << 4)) - 16;
            const int q1 = int((qs[k] >> 4) | (((qh >> (k + 16)) & 1u) << 4)) - 16;
            s[k] = float(q0) * x[k] + float(q1) * x[k + 16];
        }
        for (int k = 0; k < kLanes; ++k) acc[k] += d * s[k];
    }
    return hsum(acc);
}

float dot_q5_1(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 24, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const float m = half_to_float(load_u16(w + 2));
        const uint32_t qh = load_u32(w + 4);
        const uint8_t* qs = w + 8;
        float s[kLanes], t[kLanes];
        for (int k = 0; k < kLanes; ++k) {
            const int q0 = int((qs[k] & 0x0f) | (((qh >> k) & 1u) << 4));
            const int q1 = int((qs[k] >> 4) | (((qh >> (k + 16)) & 1u) << 4));
            s[k] = float(q0) * x[k] + float(q1) * x[k + 16];
            t[k] = x[k] + x[k + 16];
        }
        for (int k = 0; k < kLanes; ++k) acc[k] += d * s[k] + m * t[k];
    }
    return hsum(acc);
}

float dot_q8_0(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 34, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const int8_t* qs = reinterpret_cast<const int8_t*>(w + 2);
        float s[kLanes];
        for (int k = 0; k < kLanes; ++k)
            s[k] = float(qs[k]) * x[k] + float(qs[k + 16]) * x[k + 16];
        for (int k = 0; k < kLanes; ++k) acc[k] += d * s[k];
    }
    return hsum(acc);
}

// Q4_K / Q5_K: per pair of sub-blocks (64 elements) the lanes collect sum(q*x) and sum(x) of
// each; the block adds (d*sc) * sum(q*x) - (dmin*m) * sum(x). bits5 selects Q5_K.
template <bool bits5>
float dot_q45_k(const uint8_t* w, const float* x, int64_t nb) {
    constexpr int kSize = bits5 ? 176 : 144;
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += kSize, x += kQKK) {
        const float d = half_to_float(load_u16(w));
        const float dmin = half_to_float(load_u16(w + 2));
        const uint8_t* scales = w + 4;
        const uint8_t* qh = w + 16;
        const uint8_t* qs = w + (bits5 ? 48 : 16);
        for (int j = 0; j < 4; ++j) {
            int sc0, m0, sc1, m1;
            scale_min_k4(2 * j, scales, &sc0, &m0);
            scale_min_k4(2 * j + 1, scales, &sc1, &m1);
            const float d0 = d * float(sc0), mm0 = dmin * float(m0);
            const float d1 = d * float(sc1), mm1 = dmin * float(m1);
            const uint8_t* q = qs + 32 * j;
            const float* xj = x + 64 * j;
            float s0[kLanes] = {}, s1[kLanes] = {}, t0[kLanes] = {}, t1[kLanes] = {};
            for (int h = 0; h < 32; h += kLanes) {
                for (int k = 0; k < kLanes; ++k) {
                    const int l = h + k;
                    int q0 = q[l] & 0x0f, q1 = q[l] >> 4;
                    if (bits5) {
                        q0 |= ((qh[l] >> (2 * j)) & 1) << 4;
                        q1 |= ((qh[l] >> (2 * j + 1)) & 1) << 4;
                    }
                    s0[k] += float(q0) * xj[l];
                    s1[k] += float(q1) * xj[l + 32];
                    t0[k] += xj[l];
                    t1[k] += xj[l + 32];
                }
            }
            for (int k = 0; k < kLanes; ++k)
                acc[k] += (d0 * s0[k] - mm0 * t0[k]) + (d1 * s1[k] - mm1 * t1[k]);
        }
    }
    return hsum(acc);
}

float dot_q6_k(const uint8_t* w, const float* x, int64_t nb) {
    float acc[kLanes] = {};
    for (int64_t b = 0; b < nb; ++b, w += 210, x += kQKK) {
        const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
        const float d = half_to_float(load_u16(w + 208));
        float blk[kLanes] = {};
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w + 64 * h;
            const uint8_t* qh = w + 128 + 32 * h;
            const int8_t* s = sc + 8 * h;
            const float* xh = x + 128 * h;
            for (int g = 0; g < 2; ++g) {  // l in [16g, 16g + 16): scales s[g + 0, 2, 4, 6]
                const float c0 = float(s[g]), c1 = float(s[g + 2]);
                const float c2 = float(s[g + 4]), c3 = float(s[g + 6]);
                for (int k = 0; k < kLanes; ++k) {
                    const int l = 16 * g + k;
                    const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    blk[k] += c0 * (float(q1) * xh[l]) + c1 * (float(q2) * xh[l + 32]) +
                              c2 * (float(q3) * xh[l + 64]) + c3 * (float(q4) * xh[l + 96]);
                }
            }
        }
        for (int k = 0; k < kLanes; ++k) acc[k] += d * blk[k];
    }
    return hsum(acc);
}

// ---- dispatch ---------------------------------------------------------------------------------

// Throws unless t is handled here and n is a whole number of its blocks; returns the blocks.
int64_t check_row(GgmlType t, int64_t n, const char* what) {
    const TypeTraits* tt = type_traits(t);
    const std::string id = std::to_string(static_cast<uint32_t>(t));
    if (!tt) fail(ErrorKind::unsupported, std::string(what) + ": unknown tensor type id " + id);
    switch (t) {
        case GgmlType::F32:
        case GgmlType::F16:
        case GgmlType::BF16:
        case GgmlType::Q4_0:
        case GgmlType::Q4_1:
        case GgmlType::Q5_0:
        case GgmlType::Q5_1:
        case GgmlType::Q8_0:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K:
            break;
        default:
            fail(ErrorKind::unsupported, std::string(what) + ": tensor type " + tt->name + " (" +
                                             id + ") is not supported");
    }
    if (n < 0 || n % tt->block_size != 0)
        fail(ErrorKind::format, std::string(what) + ": row of " + std::to_string(n) +
                                    " elements is not a multiple of the " + tt->name +
                                    " block size " + std::to_string(tt->block_size));
    return n / tt->block_size;
}

template <void (*F)(const uint8_t*, float*), int kBlock, int kBytes>
void dequant_blocks(const void* src, float* dst, int64_t nb) {
    const uint8_t* p = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < nb; ++b) F(p + b * kBytes, dst + b * kBlock);
}

template <void (*F)(const float*, uint8_t*), int kBlock, int kBytes>
void quant_blocks(const float* src, void* dst, int64_t nb) {
    uint8_t* p = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < nb; ++b) F(src + b * kBlock, p + b * kBytes);
}

}  // namespace

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    const int64_t nb = check_row(t, n, "dequantize_row");
    const uint8_t* p = static_cast<const uint8_t*>(src);
    switch (t) {
        case GgmlType::F32:
            if (n > 0) std::memcpy(dst, src, size_t(n) * 4);
            return;
        case GgmlType::F16:
            for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(p + 2 * i));
            return;
        case GgmlType::BF16:
            for (int64_t i = 0; i < n; ++i)
                dst[i] = bits_to_float(uint32_t(load_u16(p + 2 * i)) << 16);
            return;
        case GgmlType::Q4_0: return dequant_blocks<dequant_q4_0, kQK, 18>(src, dst, nb);
        case GgmlType::Q4_1: return dequant_blocks<dequant_q4_1, kQK, 20>(src, dst, nb);
        case GgmlType::Q5_0: return dequant_blocks<dequant_q5_0, kQK, 22>(src, dst, nb);
        case GgmlType::Q5_1: return dequant_blocks<dequant_q5_1, kQK, 24>(src, dst, nb);
        case GgmlType::Q8_0: return dequant_blocks<dequant_q8_0, kQK, 34>(src, dst, nb);
        case GgmlType::Q4_K: return dequant_blocks<dequant_q4_k, kQKK, 144>(src, dst, nb);
        case GgmlType::Q5_K: return dequant_blocks<dequant_q5_k, kQKK, 176>(src, dst, nb);
        case GgmlType::Q6_K: return dequant_blocks<dequant_q6_k, kQKK, 210>(src, dst, nb);
        default: break;
    }
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
    const int64_t nb = check_row(t, n, "quantize_row");
    uint8_t* p = static_cast<uint8_t*>(dst);
    switch (t) {
        case GgmlType::F32:
            if (n > 0) std::memcpy(dst, src, size_t(n) * 4);
            return;
        case GgmlType::F16:
            for (int64_t i = 0; i < n; ++i) store_u16(p + 2 * i, fp32_to_fp16(src[i]));
            return;
        case GgmlType::BF16:
            for (int64_t i = 0; i < n; ++i) store_u16(p + 2 * i, fp32_to_bf16(src[i]));
            return;
        case GgmlType::Q4_0: return quant_blocks<quant_q4_0, kQK, 18>(src, dst, nb);
        case GgmlType::Q4_1: return quant_blocks<quant_q4_1, kQK, 20>(src, dst, nb);
        case GgmlType::Q5_0: return quant_blocks<quant_q5_0, kQK, 22>(src, dst, nb);
        case GgmlType::Q5_1: return quant_blocks<quant_q5_1, kQK, 24>(src, dst, nb);
        case GgmlType::Q8_0: return quant_blocks<quant_q8_0, kQK, 34>(src, dst, nb);
        case GgmlType::Q4_K: return quant_blocks<quant_q4_k, kQKK, 144>(src, dst, nb);
        case GgmlType::Q5_K: return quant_blocks<quant_q5_k, kQKK, 176>(src, dst, nb);
        case GgmlType::Q6_K: return quant_blocks<quant_q6_k, kQKK, 210>(src, dst, nb);
        default: break;
    }
}

float vec_dot_row(GgmlType t, const void* w, const float* x, int64_t n) {
    const int64_t nb = check_row(t, n, "vec_dot_row");
    const uint8_t* p = static_cast<const uint8_t*>(w);
    switch (t) {
        case GgmlType::F32: return dot_f32(static_cast<const float*>(w), x, n);
        case GgmlType::F16: return dot_f16(p, x, n);
        case GgmlType::BF16: return dot_bf16(p, x, n);
        case GgmlType::Q4_0: return dot_q4_0(p, x, nb);
        case GgmlType::Q4_1: return dot_q4_1(p, x, nb);
        case GgmlType::Q5_0: return dot_q5_0(p, x, nb);
        case GgmlType::Q5_1: return dot_q5_1(p, x, nb);
        case GgmlType::Q8_0: return dot_q8_0(p, x, nb);
        case GgmlType::Q4_K: return dot_q45_k<false>(p, x, nb);
        case GgmlType::Q5_K: return dot_q45_k<true>(p, x, nb);
        case GgmlType::Q6_K: return dot_q6_k(p, x, nb);
        default: return 0.0f;
    }
}

}  // namespace llm8
