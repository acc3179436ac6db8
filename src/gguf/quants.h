// Tensor element types of GGUF (ggml's numbering) and their block formats on the CPU:
// dequantization (the reference every other backend is checked against), reference
// quantizers (for llm8-convert and llm8-mkmodel), and fused dequantize-dot rows for GEMV.
//
// Block layouts (all little-endian, d/dmin are IEEE half):
//   Q4_0  32 elems, 18 B: d, qs[16]            x = (nibble - 8) * d
//   Q4_1  32 elems, 20 B: d, m, qs[16]         x = nibble * d + m
//   Q5_0  32 elems, 22 B: d, qh[4], qs[16]     x = (nibble | bit5 << 4) - 16) * d
//   Q5_1  32 elems, 24 B: d, m, qh[4], qs[16]  x = (nibble | bit5 << 4) * d + m
//   Q8_0  32 elems, 34 B: d, qs[32] int8       x = q * d
//   Q4_K 256 elems, 144 B: d, dmin, scales[12] (8 x 6-bit scale + 6-bit min), qs[128]
//   Q5_K 256 elems, 176 B: d, dmin, scales[12], qh[32], qs[128]
//   Q6_K 256 elems, 210 B: ql[128], qh[64], scales[16] int8, d
//   Q2_K 256 elems, 84 B: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin;
//        16 sub-blocks of 16: x = (d * sc) * q - dmin * m, q in 0..3
//   Q3_K 256 elems, 110 B: hmask[32], qs[64], scales[12] (16 x 6-bit, offset 32), d;
//        16 sub-blocks of 16: x = (d * (sc - 32)) * q, q in -4..3 (2 low bits + high bit)
//   IQ4_NL 32 elems, 18 B: d, qs[16]             x = d * kvalues_iq4nl[nibble]
//   IQ4_XS 256 elems, 136 B: d, scales_h (u16), scales_l[4], qs[128]; 8 blocks of 32 with a
//        6-bit scale (offset 32) each: x = (d * (ls - 32)) * kvalues_iq4nl[nibble]
// In every block the low nibbles of qs hold the first half of a 32-element group and the
// high nibbles the second half (ggml's order), not interleaved pairs. In Q2_K / Q3_K, element
// e of a 128-element half h sits in byte 32 * h + e % 32 of qs at bit 2 * ((e % 128) / 32),
// its sub-block (scale) is e / 16, and (Q3_K) its high bit is bit e / 32 of hmask[e % 32].
#pragma once
#include <cstddef>
#include <cstdint>

namespace llm8 {

enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ4_NL = 20,
    IQ4_XS = 23,
    BF16 = 30,
};

struct TypeTraits {
    const char* name;    // "q4_0", as llama.cpp prints it
    int64_t block_size;  // elements per block
    size_t type_size;    // bytes per block
    bool supported;      // dequantize_row/quantize_row/vec_dot_row handle it
};

// Traits of a raw type id from a file; nullptr when the id is not a ggml type at all.
const TypeTraits* type_traits(uint32_t type);
inline const TypeTraits* type_traits(GgmlType t) {
    return type_traits(static_cast<uint32_t>(t));
}
const char* type_name(GgmlType t);
// Parse "q8_0", "f16", ... (case-insensitive); returns false when unknown.
bool type_from_name(const char* name, GgmlType* out);

// Bytes of a row of n elements; throws llm8::Error when n is not a multiple of the block size.
size_t row_size(GgmlType t, int64_t n);

// n must be a multiple of the block size; unsupported types throw llm8::Error(unsupported).
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);
// sum_i dequant(w)[i] * x[i] without materializing the row (decode GEMV).
float vec_dot_row(GgmlType t, const void* w, const float* x, int64_t n);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even, inf/nan preserved
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even, nan stays nan

}  // namespace llm8
