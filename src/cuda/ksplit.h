// The "K split" weight layout: K-quants (q2_K..q6_K) and i-quants (iq4_nl, iq4_xs) repacked at
// upload so that the decode GEMV (gemv_decode.cu) reads them with the integer machinery of
// split Q4_0: int8 activations per 32-element unit, dp4a against unpacked quants, one float
// multiply-add per unit. This header is compiled by the host compiler (the repack and the CPU
// reference of the recipe, ksplit.cpp, tests) and by nvcc (the kernels): one source of truth for
// the bit layout and the unit's integer recipe.
//
// Row layout (nb = K / 32 units, ns = K / 256 super-blocks; pitch rounded up to 16 bytes):
//   A [nb][kA]  the quants' low bits: 16 bytes (4 bits each) or 8 bytes (2 bits each) per unit
//   B [nb][kB]  the high bits: 4 bytes (1 bit: q5_K, q3_K), 8 bytes (2 bits: q6_K) or none
//   S [nb][2]   the unit's two sub-scale bytes s0, s1 as the file has them (6-bit scale and min,
//               two int8 scales of 16 elements, ...); iq4_nl: the block's half scale
//   D [ns][2]   the super-block's halves (d, dmin); none for iq4_nl
// Bytes per weight against the file (7B shapes): q4_K 4.63 / 4.5, q5_K 5.63 / 5.5, q6_K 6.63 /
// 6.56, q3_K 3.63 / 3.44, q2_K 2.63 / 2.63, iq4_xs 4.63 / 4.25, iq4_nl 4.5 / 4.5: at most 1.09x.
// Storing the product d * sc per unit instead (half scale + half min, 4 bytes) would save the
// decode a multiply but costs 1.11x for q4_K and 1.5x for q2_K / q3_K (two scales per unit);
// keeping the file's small integer scales keeps the bytes and makes the float result the same
// products the CPU dequantizer forms.
//
// Bits inside a unit (element e = 4 * w + k is byte k of activation word w, w = 0..7):
//   A, 4 bits (q4_K, q5_K, q6_K): byte j holds e = j (low nibble) and e = j + 16 (high), as
//     split Q4_0: word i's low nibbles are activation word i, its high nibbles word 4 + i.
//   A, 4 bits (iq4_*): byte j holds e = 2j (low nibble) and 2j + 1 (high): the low half of word
//     i is activation word 2i, the high half word 2i + 1; each nibble is the codebook index with
//     bits 2 and 3 swapped, so that a 16-entry lookup is two byte permutes (iq4_lookup).
//   A, 2 bits (q2_K, q3_K): bits 2s..2s+1 of byte k of word i (i = 0, 1; s = 0..3): w = i + 2s.
//   B, 1 bit: bit s of byte k: w = s.   B, 2 bits: bits 2s..2s+1 of byte k of word i: w = i + 2s.
// Unsigned quant q per element: q4_K A; q5_K A | B << 4; q6_K A | B << 4 (value q - 32);
// q2_K A; q3_K A | B << 2 (value q - 4); iq4 the int8 level itself.
//
// The unit's integers (ksplit_ints): S_h = sum over half h (16 elements) of q * x8, X_h = sum
// of x8 over half h (X = X_0 + X_1 comes with the activations), then
//   q4_K, q5_K: I = sc * S,                     J = m * X          (s0 = sc, s1 = m)
//   q6_K:       I = s0 (S_0 - 32 X_0) + s1 (S_1 - 32 X_1), J = 0   (int8 scales)
//   q3_K:       I = s0 (S_0 - 4 X_0) + s1 (S_1 - 4 X_1),   J = 0   (s = scale - 32, int8)
//   q2_K:       I = (s0 & 15) S_0 + (s1 & 15) S_1, J = (s0 >> 4) X_0 + (s1 >> 4) X_1
//   iq4_xs:     I = s0 * S (s0 = ls - 32), iq4_nl: I = S;  J = 0
// and the unit's dot product is d_x * (d * I - dmin * J) (iq4_nl: d is the unit's own scale).
#pragma once
#include <cstdint>
#include <cstring>

#include "gguf/quants.h"

#ifdef __CUDACC__
#define LLM8_HD __host__ __device__ __forceinline__
#else
#define LLM8_HD inline
#endif
#ifdef __CUDA_ARCH__  // the device pass (the host compiler does not know the pragma)
#define LLM8_UNROLL _Pragma("unroll")
#else
#define LLM8_UNROLL
#endif

namespace llm8 {
namespace cuda {

// Per-type plane sizes (bytes per unit) of the K split layout.
struct KSplitFmt {
    int a, b;    // A and B bytes per unit
    bool super;  // a D region (d, dmin per 256 elements)
};

constexpr LLM8_HD bool ksplit_type(GgmlType t) {
    return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K ||
           t == GgmlType::Q5_K || t == GgmlType::Q6_K || t == GgmlType::IQ4_NL ||
           t == GgmlType::IQ4_XS;
}

constexpr LLM8_HD KSplitFmt ksplit_fmt(GgmlType t) {
    switch (t) {
        case GgmlType::Q2_K:
            return {8, 0, true};
        case GgmlType::Q3_K:
            return {8, 4, true};
        case GgmlType::Q5_K:
            return {16, 4, true};
        case GgmlType::Q6_K:
            return {16, 8, true};
        case GgmlType::IQ4_NL:
            return {16, 0, false};
        default:  // Q4_K, IQ4_XS
            return {16, 0, true};
    }
}

// Region offsets of a row of K elements.
struct KSplitRow {
    int64_t b_off, s_off, d_off;
    size_t pitch;
};

LLM8_HD KSplitRow ksplit_row(GgmlType t, int64_t K) {
    const KSplitFmt f = ksplit_fmt(t);
    const int64_t nb = K / 32;
    KSplitRow r;
    r.b_off = nb * f.a;
    r.s_off = r.b_off + nb * f.b;
    r.d_off = r.s_off + nb * 2;
    const int64_t end = r.d_off + (f.super ? (K / 256) * 4 : 0);
    r.pitch = size_t((end + 15) / 16 * 16);
    return r;
}

// One unit's bytes as the kernel loads them.
struct KUnit {
    uint32_t a[4];  // A (2-bit types: a[0], a[1])
    uint32_t b[2];  // B (1 bit: b[0])
    uint32_t s;     // s0 | s1 << 8
    uint32_t dd;    // the super-block's d | dmin << 16 (halves); iq4_nl: unused
};

// ---- integer primitives, exact on both sides ----------------------------------------------

LLM8_HD int dp4a_ss(uint32_t a, uint32_t b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a(int(a), int(b), c);
#else
    for (int k = 0; k < 4; ++k)
        c += int(int8_t(uint8_t(a >> (8 * k)))) * int(int8_t(uint8_t(b >> (8 * k))));
    return c;
#endif
}

// PTX prmt.b32 (default mode) on the low 16 bits of the selector: byte k of the result is
// byte (sel_k & 7) of {hi:lo}, or, when bit 3 of sel_k is set, that byte's sign bit replicated.
LLM8_HD uint32_t prmt(uint32_t lo, uint32_t hi, uint32_t sel) {
#ifdef __CUDA_ARCH__
    uint32_t r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(lo), "r"(hi), "r"(sel));
    return r;
#else
    const uint64_t src = uint64_t(lo) | uint64_t(hi) << 32;
    uint32_t r = 0;
    for (int k = 0; k < 4; ++k) {
        const uint32_t s = (sel >> (4 * k)) & 0xF;
        uint32_t byte = uint32_t(src >> (8 * (s & 7))) & 0xFF;
        if (s & 8) byte = (byte & 0x80) ? 0xFF : 0x00;
        r |= byte << (8 * k);
    }
    return r;
#endif
}

// The iq4 levels (ggml's kvalues_iq4nl) in the order of the stored indices (bits 2 and 3 of
// the file's index swapped): t[j] and t[j + 8] have the same sign. Then for a stored index i,
//   prmt(T0, T1, i) ^ prmt(T2, T3, i ^ 8) = t[i]
// with T0..T1 = t[0..7] and T2..T3 = t[8..15] ^ (sign of t[j] replicated): for i < 8 the
// first permute copies t[i] and the second gives the sign of T2..3's byte i, which is 0; for
// i >= 8 the first gives the sign of t[i - 8] and the second copies t[i] ^ that sign.
// Levels in file order: -127 -104 -83 -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113.
// t = -127 -104 -83 -65 1 13 25 38 -49 -35 -22 -10 53 69 89 113.
constexpr uint32_t kIq4T0 = 0xBFAD9881u;  // -127 -104 -83 -65 (bytes, low first)
constexpr uint32_t kIq4T1 = 0x26190D01u;  // 1 13 25 38
constexpr uint32_t kIq4T2 = 0x09152230u;  // ~(-49 -35 -22 -10) = 48 34 21 9
constexpr uint32_t kIq4T3 = 0x71594535u;  // 53 69 89 113

LLM8_HD uint32_t iq4_index_swap(uint32_t i) {  // file index <-> stored index
    return (i & 3) | ((i >> 1) & 4) | ((i << 1) & 8);
}

// Four int8 levels for the four stored indices in the low 16 bits of g (nibble k -> byte k).
LLM8_HD uint32_t iq4_lookup(uint32_t g) {
    return prmt(kIq4T0, kIq4T1, g) ^ prmt(kIq4T2, kIq4T3, g ^ 0x8888u);
}

// The unit's eight words of quants (byte k of word w: element 4w + k): unsigned q, or for iq4
// the int8 level.
template <GgmlType T>
LLM8_HD void ksplit_words(const KUnit& u, uint32_t (&q)[8]) {
    if (T == GgmlType::IQ4_NL || T == GgmlType::IQ4_XS) {
        LLM8_UNROLL
        for (int i = 0; i < 4; ++i) {
            q[2 * i] = iq4_lookup(u.a[i] & 0xFFFFu);
            q[2 * i + 1] = iq4_lookup(u.a[i] >> 16);
        }
        return;
    }
    if (T == GgmlType::Q2_K || T == GgmlType::Q3_K) {
        LLM8_UNROLL
        for (int s = 0; s < 4; ++s) {
            LLM8_UNROLL
            for (int i = 0; i < 2; ++i) q[i + 2 * s] = (u.a[i] >> (2 * s)) & 0x03030303u;
        }
    } else {
        LLM8_UNROLL
        for (int i = 0; i < 4; ++i) {
            q[i] = u.a[i] & 0x0F0F0F0Fu;
            q[4 + i] = (u.a[i] >> 4) & 0x0F0F0F0Fu;
        }
    }
    if (T == GgmlType::Q5_K || T == GgmlType::Q3_K) {
        constexpr int sh = T == GgmlType::Q5_K ? 4 : 2;  // where the high bit goes
        LLM8_UNROLL
        for (int w = 0; w < 8; ++w) {
            // bit w of each byte of b[0] to bit sh
            const uint32_t hb = sh >= w ? (u.b[0] << (sh - w)) : (u.b[0] >> (w - sh));
            q[w] |= hb & (0x01010101u << sh);
        }
    } else if (T == GgmlType::Q6_K) {
        LLM8_UNROLL
        for (int s = 0; s < 4; ++s) {
            LLM8_UNROLL
            for (int i = 0; i < 2; ++i) {
                const uint32_t hb = 2 * s <= 4 ? (u.b[i] << (4 - 2 * s)) : (u.b[i] >> (2 * s - 4));
                q[i + 2 * s] |= hb & 0x30303030u;
            }
        }
    }
}

// The unit's integers (I, J) of the recipe above; x: the 8 words of int8 activations, xsum:
// their sum.
template <GgmlType T>
LLM8_HD void ksplit_ints(const KUnit& u, const uint32_t (&x)[8], int xsum, int* I, int* J) {
    uint32_t q[8];
    ksplit_words<T>(u, q);
    int s0 = 0, s1 = 0;
    LLM8_UNROLL
    for (int w = 0; w < 4; ++w) s0 = dp4a_ss(q[w], x[w], s0);
    LLM8_UNROLL
    for (int w = 4; w < 8; ++w) s1 = dp4a_ss(q[w], x[w], s1);
    const int b0 = int(u.s & 0xFF), b1 = int((u.s >> 8) & 0xFF);
    if (T == GgmlType::Q4_K || T == GgmlType::Q5_K) {
        *I = b0 * (s0 + s1);
        *J = b1 * xsum;
        return;
    }
    if (T == GgmlType::IQ4_XS) {
        *I = int(int8_t(b0)) * (s0 + s1);
        *J = 0;
        return;
    }
    if (T == GgmlType::IQ4_NL) {
        *I = s0 + s1;
        *J = 0;
        return;
    }
    int x0 = 0;
    LLM8_UNROLL
    for (int w = 0; w < 4; ++w) x0 = dp4a_ss(0x01010101u, x[w], x0);
    const int x1 = xsum - x0;
    if (T == GgmlType::Q2_K) {
        *I = (b0 & 15) * s0 + (b1 & 15) * s1;
        *J = (b0 >> 4) * x0 + (b1 >> 4) * x1;
        return;
    }
    constexpr int bias = T == GgmlType::Q6_K ? 32 : 4;  // Q6_K, Q3_K
    *I = int(int8_t(b0)) * (s0 - bias * x0) + int(int8_t(b1)) * (s1 - bias * x1);
    *J = 0;
}

// ---- host side (ksplit.cpp) -----------------------------------------------------------------

// Can rows of K elements of type t take the K split layout (K a multiple of the block)?
bool can_ksplit(GgmlType t, int64_t K);
// Repacks rows [r0, r1) of a matrix of ggml blocks (src, src_row_bytes apart) into the K split
// layout (dst, ksplit_row(t, K).pitch apart; padding bytes are zeroed).
void repack_ksplit_rows(GgmlType t, int64_t K, const uint8_t* src, size_t src_row_bytes,
                        uint8_t* dst, int64_t r0, int64_t r1);
// The bytes of unit u of a repacked row, as the kernel loads them.
KUnit ksplit_unit(GgmlType t, const uint8_t* row, int64_t K, int64_t u);
// Unit u's float factors: d (for iq4_nl the unit's scale) and dmin.
void ksplit_unit_scales(GgmlType t, const uint8_t* row, int64_t K, int64_t u, float* d,
                        float* dmin);
// The recipe's integers of unit u against int8 activations xq (32 of them, the unit's).
void ksplit_unit_ints(GgmlType t, const KUnit& w, const int8_t* xq, int* I, int* J);

}  // namespace cuda
}  // namespace llm8
