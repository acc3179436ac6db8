// CPU block formats of ggml tensor types: dequantize_row (the reference), quantize_row and the
// fused dequantize-dot vec_dot_row of the decode GEMV.
//
// Notes on how this is written (timings: one core of the dev box, g++ 12 -march=native, a
// 1024 x 4096 GEMV with x in L1, single thread):
// - Blocks are read through byte pointers (memcpy for the halves), so rows need no alignment.
// - Dequantization follows ggml's dequantize_row_* operation for operation (Q4_1 is q * d + m,
//   Q4_K is (d * sc) * q - dmin * m, Q6_K is (d * sc) * (q - 32)) and is checked bit for bit
//   against gguf-py. Every product that feeds an addition there is exact (a half times small
//   integers), so FMA contraction cannot change it. The reference quantizers are another
//   matter: Q4_0 / Q5_0 truncate `x * id + 8.5f`, which comes out differently when fused into an
//   FMA, and g++ contracts by default in C++ even with -std=c++17. That section is therefore
//   compiled with contraction off (GCC optimize pragma / clang fp pragma) and matches gguf-py
//   bit for bit; a fixture block that flips under FMA pins this (test_quants fails with the
//   pragma removed).
// - vec_dot_row uses GCC/Clang generic vectors (vector_size + __builtin_convertvector; lowered
//   to AVX-512, AVX2 or NEON by the compiler, no ISA intrinsics), 16 float lanes, one block at
//   a time, lanes summed once per row; affine formats use sum((q*d + m) * x) = d * sum(q*x) +
//   m * sum(x). Tried and rejected: plain fixed-trip-count loops over float[16] lanes left to the
//   auto-vectorizer. At -O2 g++ made 128-bit code with byte -> int widening chains (Q4_0 3.6
//   Gelem/s); at -O3 (CMake's Release) it fully unrolled the lane loops first and then emitted
//   scalar code (2.3 Gelem/s); the best plain-loop form (one fused lane loop) reached 7.7. With
//   generic vectors: Q4_0 14, Q4_1 11, Q8_0 15, Q4_K 10.7, Q6_K 7.8, Q5_* / Q5_K 6.3-7.5, BF16 18
//   Gelem/s, the same at -O2 and -O3. (g++ 12 also scalarizes an int8 -> int32 vector
//   conversion, hence the xor-128 detour in to_f32(i8x16).)
// - The half -> float conversion of the block scales is inlined (exact: the bits moved into a
//   float and scaled by 2^112), so a block's scale costs no call.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "gguf/quant_search.h"
#include "gguf/quants.h"

#if defined(__GNUC__) && !defined(__clang__)
// Without -march=native g++ warns that 64-byte vector arguments have no AVX-512 ABI; they only
// pass between inlined functions of this file.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace llm8 {

namespace {

constexpr int kQK = 32;    // elements of a Q4_0 .. Q8_0 block
constexpr int kQKK = 256;  // elements of a K-quant super-block

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

inline void store_u16(uint8_t* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}

inline float bits_to_float(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// Exact half -> float: the exponent/mantissa bits moved into a float and rescaled by 2^112
// cover normals and subnormals; inf/nan get the all-ones exponent back. (Assumes denormals are
// not flushed: with DAZ set, subnormal halves would read as zero.)
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t em = uint32_t(h & 0x7fffu) << 13;
    const float mag =
        (h & 0x7c00u) == 0x7c00u ? bits_to_float(em | 0x7f800000u) : bits_to_float(em) * 0x1p112f;
    uint32_t b;
    std::memcpy(&b, &mag, 4);
    return bits_to_float(b | sign);
}

// GCC/Clang generic vectors (vector_size), lowered by the compiler to AVX-512, AVX2 or NEON;
// no ISA intrinsics. See the note at the top of the file.
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef int8_t i8x16 __attribute__((vector_size(16)));

template <typename V>
inline V load(const void* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

inline f32x16 to_f32(u8x16 v) {
    return __builtin_convertvector(__builtin_convertvector(v, i32x16), f32x16);
}
// (GCC 12 scalarizes a direct int8 -> int32 vector conversion; the zero-extension is one
// instruction, so the sign is restored by flipping it before and subtracting 128 after.)
inline f32x16 to_f32(i8x16 v) {
    const u8x16 u = (u8x16)v ^ 0x80;
    return __builtin_convertvector(__builtin_convertvector(u, i32x16) - 128, f32x16);
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

// Round to nearest, ties to even (inlined; lround is a libm call). Only used by the K-quant
// quantizers, which match no other implementation bit for bit.
// The float is clamped to [lo, hi] first (NaN gives lo), so the conversion is always defined.
inline int nearest_int(float f, int lo, int hi) {
    f = f > float(lo) ? f : float(lo);  // (std::fmin/fmax are libm calls here)
    f = f < float(hi) ? f : float(hi);
    return static_cast<int>(std::nearbyint(f));
}

// roundf (ties away from zero) to int, as ggml's Q8_0 reference rounds, for |v| < 2^31;
// a - trunc(a) is exact. Written branch-free: a data-dependent branch here cost 3x.
inline int round_half_away(float v) {
    const float a = std::fabs(v);
    int r = static_cast<int>(a);
    r += (a - float(r)) >= 0.5f;
    return v < 0.0f ? -r : r;
}

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
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half_to_float(load_u16(b + 208));
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b + 64 * h;
        const uint8_t* qh = b + 128 + 32 * h;
        const int8_t* s = sc + 8 * h;
        float* out = y + 128 * h;
        for (int g = 0; g < 2; ++g) {  // l in [16g, 16g + 16): scales s[g + 0, 2, 4, 6]
            const u8x16 lo = load<u8x16>(ql + 16 * g), hi = load<u8x16>(ql + 32 + 16 * g);
            const u8x16 hb = load<u8x16>(qh + 16 * g);
            const u8x16 q[4] = {(lo & 15) | ((hb & 3) << 4), (hi & 15) | (((hb >> 2) & 3) << 4),
                                (lo >> 4) | (((hb >> 4) & 3) << 4), (hi >> 4) | ((hb >> 6) << 4)};
            for (int k = 0; k < 4; ++k) {
                const f32x16 v = (d * float(s[g + 2 * k])) * (to_f32(q[k]) - 32.0f);
                std::memcpy(out + 32 * k + 16 * g, &v, sizeof(v));
            }
        }
    }
}

// Q2_K / Q3_K: sub-block j (16 elements) reads qs bytes 32 * (j / 8) + 16 * (j % 2) + l at
// bit 2 * ((j % 8) / 2); Q3_K's high bit of element l is bit j / 2 of hmask[16 * (j % 2) + l].
inline const uint8_t* q23_bytes(const uint8_t* qs, int j) {
    return qs + 32 * (j / 8) + 16 * (j % 2);
}
inline int q23_shift(int j) {
    return 2 * ((j % 8) / 2);
}

// The 6-bit scale (0..63, offset 32) of sub-block j of a Q3_K block (scales[12]).
inline int q3_scale(const uint8_t* sc, int j) {
    const int lo = j < 8 ? (sc[j] & 0x0f) : (sc[j - 8] >> 4);
    return lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// The 6-bit scale (0..63, offset 32) of block j of an IQ4_XS super-block.
inline int iq4xs_scale(const uint8_t* b, int j) {
    return ((b[4 + j / 2] >> (4 * (j % 2))) & 0x0f) | (((load_u16(b + 2) >> (2 * j)) & 3) << 4);
}

// Q2_K: scales[16], qs[64], d, dmin: x = (d * sc) * q - dmin * m.
void dequant_q2_k(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b + 80));
    const float dmin = half_to_float(load_u16(b + 82));
    for (int j = 0; j < 16; ++j) {
        const float dl = d * float(b[j] & 0x0f), ml = dmin * float(b[j] >> 4);
        const uint8_t* q = q23_bytes(b + 16, j);
        const int shift = q23_shift(j);
        for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * float((q[l] >> shift) & 3) - ml;
    }
}

// Q3_K: hmask[32], qs[64], scales[12], d: x = (d * (sc - 32)) * q, q = low 2 bits - 4 unless
// the high bit is set.
void dequant_q3_k(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b + 108));
    for (int j = 0; j < 16; ++j) {
        const float dl = d * float(q3_scale(b + 96, j) - 32);
        const uint8_t* q = q23_bytes(b + 32, j);
        const uint8_t* h = b + 16 * (j % 2);
        const int shift = q23_shift(j), bit = j / 2;
        for (int l = 0; l < 16; ++l)
            y[16 * j + l] = dl * float(int((q[l] >> shift) & 3) - (((h[l] >> bit) & 1) ? 0 : 4));
    }
}

// IQ4_NL: d, qs[16]: x = d * level[nibble].
void dequant_iq4_nl(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const int8_t* kv = quant_search::kIq4Levels;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(kv[b[2 + j] & 0x0f]);
        y[j + 16] = d * float(kv[b[2 + j] >> 4]);
    }
}

// IQ4_XS: d, scales_h, scales_l[4], qs[128]: x = (d * (ls - 32)) * level[nibble].
void dequant_iq4_xs(const uint8_t* b, float* y) {
    const float d = half_to_float(load_u16(b));
    const int8_t* kv = quant_search::kIq4Levels;
    for (int ib = 0; ib < 8; ++ib) {
        const float dl = d * float(iq4xs_scale(b, ib) - 32);
        const uint8_t* qs = b + 8 + 16 * ib;
        for (int j = 0; j < 16; ++j) {
            y[32 * ib + j] = dl * float(kv[qs[j] & 0x0f]);
            y[32 * ib + j + 16] = dl * float(kv[qs[j] >> 4]);
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
    for (int j = 0; j < kQK; ++j) qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
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
        float sq = 0, sqq = 0, sx = 0, sqx = 0;
        const float inv = 1.0f / s;
        for (int i = 0; i < nx; ++i) {
            const float qi = float(nearest_int((x[i] + o) * inv, 0, qmax));
            sq += qi;
            sqq += qi * qi;
            sx += x[i];
            sqx += qi * x[i];
        }
        const float det = float(nx) * sqq - sq * sq;
        if (det > 0) {
            const float s_ls = (float(nx) * sqx - sq * sx) / det;
            const float o_ls = (sq * sqx - sqq * sx) / det;  // x ~= s*q - o
            if (s_ls > 0 && o_ls >= 0) {
                s = s_ls;
                o = o_ls;
            } else if (sqq > 0 && sqx > 0) {  // keep o = 0
                s = sqx / sqq;
                o = 0.0f;
            }
        }
        float err = 0.0f;
        const float inv2 = 1.0f / s;
        for (int i = 0; i < nx; ++i) {
            const float e = s * float(nearest_int((x[i] + o) * inv2, 0, qmax)) - o - x[i];
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
        sc[j] = d > 0.0f ? nearest_int(s[j] / d, 0, 63) : 0;
        m[j] = dmin > 0.0f ? nearest_int(o[j] / dmin, 0, 63) : 0;
    }
    store_u16(b, dh);
    store_u16(b + 2, dminh);
    pack_scale_min_k4(sc, m, b + 4);
    for (int j = 0; j < 8; ++j) {
        const float ds = d * float(sc[j]), dm = dmin * float(m[j]);
        const float inv = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 32; ++i)
            q[32 * j + i] = uint8_t(nearest_int((x[32 * j + i] + dm) * inv, 0, qmax));
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
                const int qi = nearest_int(xs[i] / sj, -32, 31);
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
    for (int j = 0; j < 16; ++j) sc[j] = int8_t(d != 0.0f ? nearest_int(s[j] / d, -128, 127) : 0);
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    std::memset(ql, 0, 128);
    std::memset(qh, 0, 64);
    std::memcpy(b + 192, sc, 16);
    store_u16(b + 208, dh);
    for (int e = 0; e < kQKK; ++e) {
        const float ds = d * float(sc[e / 16]);
        const float inv = ds != 0.0f ? 1.0f / ds : 0.0f;
        const int q = nearest_int(x[e] * inv, -32, 31) + 32;  // 0..63
        const int h = e / 128, p = e % 128;
        const int lq = 64 * h + (p % 64);  // ql byte: low nibble for p < 64, else high
        const int hq = 32 * h + (p % 32);  // qh byte, 2 bits at 2 * (p / 32)
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

inline float hsum(f32x16 v) {
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) s += v[k];
    return s;
}

// 16 halves -> floats, exactly as half_to_float.
inline f32x16 halves_to_f32(u16x16 h) {
    const u32x16 w = __builtin_convertvector(h, u32x16);
    const u32x16 em = (w & 0x7fffu) << 13;
    f32x16 mag;
    std::memcpy(&mag, &em, 64);
    mag *= 0x1p112f;  // inf/nan come out with exponent 143 and their mantissa: fixed below
    u32x16 bits;
    std::memcpy(&bits, &mag, 64);
    const u32x16 special = (u32x16)((w & 0x7c00u) == 0x7c00u);  // all ones where inf/nan
    bits |= (special & 0x7f800000u) | ((w & 0x8000u) << 16);
    f32x16 f;
    std::memcpy(&f, &bits, 64);
    return f;
}

inline f32x16 bf16s_to_f32(u16x16 h) {
    const u32x16 bits = __builtin_convertvector(h, u32x16) << 16;
    f32x16 f;
    std::memcpy(&f, &bits, 64);
    return f;
}

// w is a row of a weight view: any byte address (a GGUF tensor need not be 4-byte aligned in
// memory), so every read goes through memcpy (load) rather than a float dereference.
float dot_f32(const uint8_t* w, const float* x, int64_t n) {
    f32x16 a0 = {}, a1 = {};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 += load<f32x16>(w + 4 * i) * load<f32x16>(x + i);
        a1 += load<f32x16>(w + 4 * i + 64) * load<f32x16>(x + i + 16);
    }
    float s = hsum(a0 + a1);
    for (; i < n; ++i) {
        float wi;
        std::memcpy(&wi, w + 4 * i, 4);
        s += wi * x[i];
    }
    return s;
}

float dot_f16(const uint8_t* w, const float* x, int64_t n) {
    f32x16 a0 = {}, a1 = {};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 += halves_to_f32(load<u16x16>(w + 2 * i)) * load<f32x16>(x + i);
        a1 += halves_to_f32(load<u16x16>(w + 2 * i + 32)) * load<f32x16>(x + i + 16);
    }
    float s = hsum(a0 + a1);
    for (; i < n; ++i) s += half_to_float(load_u16(w + 2 * i)) * x[i];
    return s;
}

float dot_bf16(const uint8_t* w, const float* x, int64_t n) {
    f32x16 a0 = {}, a1 = {};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 += bf16s_to_f32(load<u16x16>(w + 2 * i)) * load<f32x16>(x + i);
        a1 += bf16s_to_f32(load<u16x16>(w + 2 * i + 32)) * load<f32x16>(x + i + 16);
    }
    float s = hsum(a0 + a1);
    for (; i < n; ++i) s += bits_to_float(uint32_t(load_u16(w + 2 * i)) << 16) * x[i];
    return s;
}

// Q4_0 / Q4_1: low nibbles are elements 0..15 of the block, high nibbles 16..31.
template <bool affine>
float dot_q4_01(const uint8_t* w, const float* x, int64_t nb) {
    constexpr int kSize = affine ? 20 : 18;
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += kSize, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const u8x16 q = load<u8x16>(w + (affine ? 4 : 2));
        const f32x16 x0 = load<f32x16>(x), x1 = load<f32x16>(x + 16);
        if (affine) {
            const float m = half_to_float(load_u16(w + 2));
            acc += d * (to_f32(q & 15) * x0 + to_f32(q >> 4) * x1) + m * (x0 + x1);
        } else {
            acc += d * ((to_f32(q & 15) - 8.0f) * x0 + (to_f32(q >> 4) - 8.0f) * x1);
        }
    }
    return hsum(acc);
}

// Q5_0 / Q5_1: bit j of qh is the fifth bit of element j.
template <bool affine>
float dot_q5_01(const uint8_t* w, const float* x, int64_t nb) {
    constexpr int kSize = affine ? 24 : 22;
    const u32x16 shift = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += kSize, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const uint32_t qh = load_u32(w + (affine ? 4 : 2));
        const u8x16 q = load<u8x16>(w + (affine ? 8 : 6));
        const u32x16 h0 = ((qh >> shift) & 1u) << 4, h1 = (((qh >> 16) >> shift) & 1u) << 4;
        const i32x16 q0 = __builtin_convertvector(q & 15, i32x16) | (i32x16)h0;
        const i32x16 q1 = __builtin_convertvector(q >> 4, i32x16) | (i32x16)h1;
        const f32x16 x0 = load<f32x16>(x), x1 = load<f32x16>(x + 16);
        const f32x16 f0 = __builtin_convertvector(q0, f32x16);
        const f32x16 f1 = __builtin_convertvector(q1, f32x16);
        if (affine) {
            const float m = half_to_float(load_u16(w + 2));
            acc += d * (f0 * x0 + f1 * x1) + m * (x0 + x1);
        } else {
            acc += d * ((f0 - 16.0f) * x0 + (f1 - 16.0f) * x1);
        }
    }
    return hsum(acc);
}

float dot_q8_0(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 34, x += kQK) {
        const float d = half_to_float(load_u16(w));
        const f32x16 q0 = to_f32(load<i8x16>(w + 2)), q1 = to_f32(load<i8x16>(w + 18));
        acc += d * (q0 * load<f32x16>(x) + q1 * load<f32x16>(x + 16));
    }
    return hsum(acc);
}

// Q4_K / Q5_K: per pair of sub-blocks (64 elements) the lanes collect sum(q*x) and sum(x) of
// each; the block adds (d*sc) * sum(q*x) - (dmin*m) * sum(x). bits5 selects Q5_K.
template <bool bits5>
float dot_q45_k(const uint8_t* w, const float* x, int64_t nb) {
    constexpr int kSize = bits5 ? 176 : 144;
    f32x16 acc = {};
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
            const float* xj = x + 64 * j;
            f32x16 s0 = {}, s1 = {}, t0 = {}, t1 = {};
            for (int h = 0; h < 2; ++h) {
                const u8x16 q = load<u8x16>(qs + 32 * j + 16 * h);
                u8x16 lo = q & 15, hi = q >> 4;
                if (bits5) {
                    const u8x16 hb = load<u8x16>(qh + 16 * h);
                    lo |= ((hb >> (2 * j)) & 1) << 4;
                    hi |= ((hb >> (2 * j + 1)) & 1) << 4;
                }
                const f32x16 x0 = load<f32x16>(xj + 16 * h), x1 = load<f32x16>(xj + 32 + 16 * h);
                s0 += to_f32(lo) * x0;
                s1 += to_f32(hi) * x1;
                t0 += x0;
                t1 += x1;
            }
            const float d0 = d * float(sc0), mm0 = dmin * float(m0);
            const float d1 = d * float(sc1), mm1 = dmin * float(m1);
            acc += (d0 * s0 - mm0 * t0) + (d1 * s1 - mm1 * t1);
        }
    }
    return hsum(acc);
}

// Q6_K: element l (0..31) of quarter k (0..3) of half h takes its low 4 bits from ql (byte l or
// l + 32, low or high nibble) and its high 2 bits from bits 2k..2k+1 of qh byte l.
float dot_q6_k(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 210, x += kQKK) {
        const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
        const float d = half_to_float(load_u16(w + 208));
        f32x16 blk = {};
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w + 64 * h;
            const uint8_t* qh = w + 128 + 32 * h;
            const int8_t* s = sc + 8 * h;
            const float* xh = x + 128 * h;
            for (int g = 0; g < 2; ++g) {  // l in [16g, 16g + 16): scales s[g + 0, 2, 4, 6]
                const u8x16 a = load<u8x16>(ql + 16 * g), c = load<u8x16>(ql + 32 + 16 * g);
                const u8x16 hb = load<u8x16>(qh + 16 * g);
                const u8x16 q1 = (a & 15) | ((hb & 3) << 4);
                const u8x16 q2 = (c & 15) | (((hb >> 2) & 3) << 4);
                const u8x16 q3 = (a >> 4) | (((hb >> 4) & 3) << 4);
                const u8x16 q4 = (c >> 4) | ((hb >> 6) << 4);
                const float* xg = xh + 16 * g;
                blk += float(s[g]) * ((to_f32(q1) - 32.0f) * load<f32x16>(xg)) +
                       float(s[g + 2]) * ((to_f32(q2) - 32.0f) * load<f32x16>(xg + 32)) +
                       float(s[g + 4]) * ((to_f32(q3) - 32.0f) * load<f32x16>(xg + 64)) +
                       float(s[g + 6]) * ((to_f32(q4) - 32.0f) * load<f32x16>(xg + 96));
            }
        }
        acc += d * blk;
    }
    return hsum(acc);
}

// Q2_K: per 16-element sub-block, lanes collect sc * q * x and m * x; the block adds
// d * (the first) - dmin * (the second).
float dot_q2_k(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 84, x += kQKK) {
        const float d = half_to_float(load_u16(w + 80));
        const float dmin = half_to_float(load_u16(w + 82));
        f32x16 s = {}, m = {};
        for (int j = 0; j < 16; ++j) {
            const u8x16 q = (load<u8x16>(q23_bytes(w + 16, j)) >> q23_shift(j)) & 3;
            const f32x16 xv = load<f32x16>(x + 16 * j);
            s += float(w[j] & 0x0f) * (to_f32(q) * xv);
            m += float(w[j] >> 4) * xv;
        }
        acc += d * s - dmin * m;
    }
    return hsum(acc);
}

float dot_q3_k(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 110, x += kQKK) {
        const float d = half_to_float(load_u16(w + 108));
        f32x16 s = {};
        for (int j = 0; j < 16; ++j) {
            const u8x16 lo = (load<u8x16>(q23_bytes(w + 32, j)) >> q23_shift(j)) & 3;
            const u8x16 hi = (load<u8x16>(w + 16 * (j % 2)) >> (j / 2)) & 1;
            const f32x16 q = to_f32(lo | (hi << 2)) - 4.0f;
            s += float(q3_scale(w + 96, j) - 32) * (q * load<f32x16>(x + 16 * j));
        }
        acc += d * s;
    }
    return hsum(acc);
}

// IQ4_NL / IQ4_XS: the 32 levels of a block are looked up into a float buffer (generic vectors
// have no portable variable shuffle), then dotted 16 lanes at a time.
inline f32x16 iq4_block_dot(const uint8_t* qs, const float* x) {
    static const float kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};
    float v[32];
    for (int j = 0; j < 16; ++j) {
        v[j] = kLevels[qs[j] & 0x0f];
        v[j + 16] = kLevels[qs[j] >> 4];
    }
    return load<f32x16>(v) * load<f32x16>(x) + load<f32x16>(v + 16) * load<f32x16>(x + 16);
}

float dot_iq4_nl(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 18, x += kQK)
        acc += half_to_float(load_u16(w)) * iq4_block_dot(w + 2, x);
    return hsum(acc);
}

float dot_iq4_xs(const uint8_t* w, const float* x, int64_t nb) {
    f32x16 acc = {};
    for (int64_t b = 0; b < nb; ++b, w += 136, x += kQKK) {
        f32x16 s = {};
        for (int ib = 0; ib < 8; ++ib)
            s += float(iq4xs_scale(w, ib) - 32) * iq4_block_dot(w + 8 + 16 * ib, x + 32 * ib);
        acc += half_to_float(load_u16(w)) * s;
    }
    return hsum(acc);
}

// ---- dispatch ---------------------------------------------------------------------------------

// Elements per block of the types handled here; 0 for the others.
int64_t block_elems(GgmlType t) {
    switch (t) {
        case GgmlType::F32:
        case GgmlType::F16:
        case GgmlType::BF16:
            return 1;
        case GgmlType::Q4_0:
        case GgmlType::Q4_1:
        case GgmlType::Q5_0:
        case GgmlType::Q5_1:
        case GgmlType::Q8_0:
        case GgmlType::IQ4_NL:
            return kQK;
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K:
        case GgmlType::IQ4_XS:
            return kQKK;
        default:
            return 0;
    }
}

[[noreturn]] __attribute__((noinline, cold)) void fail_row(GgmlType t, int64_t n,
                                                           const char* what) {
    const TypeTraits* tt = type_traits(t);
    const std::string id = std::to_string(static_cast<uint32_t>(t));
    if (!tt) fail(ErrorKind::unsupported, std::string(what) + ": unknown tensor type id " + id);
    if (block_elems(t) == 0)
        fail(ErrorKind::unsupported,
             std::string(what) + ": tensor type " + tt->name + " (" + id + ") is not supported");
    fail(ErrorKind::format, std::string(what) + ": row of " + std::to_string(n) +
                                " elements is not a multiple of the " + tt->name + " block size " +
                                std::to_string(block_elems(t)));
}

// Throws unless t is handled here and n is a whole number of its blocks; returns the blocks.
inline int64_t check_row(GgmlType t, int64_t n, const char* what) {
    const int64_t bs = block_elems(t);
    if (bs == 0 || n < 0 || n % bs != 0) fail_row(t, n, what);
    return n / bs;
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
        case GgmlType::Q4_0:
            return dequant_blocks<dequant_q4_0, kQK, 18>(src, dst, nb);
        case GgmlType::Q4_1:
            return dequant_blocks<dequant_q4_1, kQK, 20>(src, dst, nb);
        case GgmlType::Q5_0:
            return dequant_blocks<dequant_q5_0, kQK, 22>(src, dst, nb);
        case GgmlType::Q5_1:
            return dequant_blocks<dequant_q5_1, kQK, 24>(src, dst, nb);
        case GgmlType::Q8_0:
            return dequant_blocks<dequant_q8_0, kQK, 34>(src, dst, nb);
        case GgmlType::Q4_K:
            return dequant_blocks<dequant_q4_k, kQKK, 144>(src, dst, nb);
        case GgmlType::Q5_K:
            return dequant_blocks<dequant_q5_k, kQKK, 176>(src, dst, nb);
        case GgmlType::Q6_K:
            return dequant_blocks<dequant_q6_k, kQKK, 210>(src, dst, nb);
        case GgmlType::Q2_K:
            return dequant_blocks<dequant_q2_k, kQKK, 84>(src, dst, nb);
        case GgmlType::Q3_K:
            return dequant_blocks<dequant_q3_k, kQKK, 110>(src, dst, nb);
        case GgmlType::IQ4_NL:
            return dequant_blocks<dequant_iq4_nl, kQK, 18>(src, dst, nb);
        case GgmlType::IQ4_XS:
            return dequant_blocks<dequant_iq4_xs, kQKK, 136>(src, dst, nb);
        default:
            break;
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
        case GgmlType::Q4_0:
            return quant_blocks<quant_q4_0, kQK, 18>(src, dst, nb);
        case GgmlType::Q4_1:
            return quant_blocks<quant_q4_1, kQK, 20>(src, dst, nb);
        case GgmlType::Q5_0:
            return quant_blocks<quant_q5_0, kQK, 22>(src, dst, nb);
        case GgmlType::Q5_1:
            return quant_blocks<quant_q5_1, kQK, 24>(src, dst, nb);
        case GgmlType::Q8_0:
            return quant_blocks<quant_q8_0, kQK, 34>(src, dst, nb);
        case GgmlType::Q4_K:
            return quant_blocks<quant_q4_k, kQKK, 144>(src, dst, nb);
        case GgmlType::Q5_K:
            return quant_blocks<quant_q5_k, kQKK, 176>(src, dst, nb);
        case GgmlType::Q6_K:
            return quant_blocks<quant_q6_k, kQKK, 210>(src, dst, nb);
        case GgmlType::Q2_K:
            return quant_blocks<quant_search::quantize_q2_k, kQKK, 84>(src, dst, nb);
        case GgmlType::Q3_K:
            return quant_blocks<quant_search::quantize_q3_k, kQKK, 110>(src, dst, nb);
        case GgmlType::IQ4_NL:
            return quant_blocks<quant_search::quantize_iq4_nl, kQK, 18>(src, dst, nb);
        case GgmlType::IQ4_XS:
            return quant_blocks<quant_search::quantize_iq4_xs, kQKK, 136>(src, dst, nb);
        default:
            break;
    }
}

float vec_dot_row(GgmlType t, const void* w, const float* x, int64_t n) {
    const int64_t nb = check_row(t, n, "vec_dot_row");
    const uint8_t* p = static_cast<const uint8_t*>(w);
    switch (t) {
        case GgmlType::F32:
            return dot_f32(p, x, n);
        case GgmlType::F16:
            return dot_f16(p, x, n);
        case GgmlType::BF16:
            return dot_bf16(p, x, n);
        case GgmlType::Q4_0:
            return dot_q4_01<false>(p, x, nb);
        case GgmlType::Q4_1:
            return dot_q4_01<true>(p, x, nb);
        case GgmlType::Q5_0:
            return dot_q5_01<false>(p, x, nb);
        case GgmlType::Q5_1:
            return dot_q5_01<true>(p, x, nb);
        case GgmlType::Q8_0:
            return dot_q8_0(p, x, nb);
        case GgmlType::Q4_K:
            return dot_q45_k<false>(p, x, nb);
        case GgmlType::Q5_K:
            return dot_q45_k<true>(p, x, nb);
        case GgmlType::Q6_K:
            return dot_q6_k(p, x, nb);
        case GgmlType::Q2_K:
            return dot_q2_k(p, x, nb);
        case GgmlType::Q3_K:
            return dot_q3_k(p, x, nb);
        case GgmlType::IQ4_NL:
            return dot_iq4_nl(p, x, nb);
        case GgmlType::IQ4_XS:
            return dot_iq4_xs(p, x, nb);
        default:
            return 0.0f;
    }
}

}  // namespace llm8
