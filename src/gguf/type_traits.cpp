// Sizes and names of ggml tensor types, and the half / bfloat16 conversions.
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "gguf/quants.h"

namespace llm8 {

namespace {

struct Entry {
    uint32_t id;
    TypeTraits traits;
};

// Every type ggml has written into GGUF files (ggml.h's ggml_type, ggml.c's type_traits), so
// that a file holding one llm8 cannot compute with is refused by name; `supported` marks the
// ones llm8 computes with. Ids 31-33 and 36-38 (removed repacked Q4_0 / IQ4_NL variants) and
// ids past 39 stay "unknown".
const Entry kTypes[] = {
    {0, {"f32", 1, 4, true}},          {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},       {3, {"q4_1", 32, 20, true}},
    {6, {"q5_0", 32, 22, true}},       {7, {"q5_1", 32, 24, true}},
    {8, {"q8_0", 32, 34, true}},       {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, true}},     {11, {"q3_K", 256, 110, true}},
    {12, {"q4_K", 256, 144, true}},    {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},    {15, {"q8_K", 256, 292, false}},
    {16, {"iq2_xxs", 256, 66, false}}, {17, {"iq2_xs", 256, 74, false}},
    {18, {"iq3_xxs", 256, 98, false}}, {19, {"iq1_s", 256, 50, false}},
    {20, {"iq4_nl", 32, 18, true}},    {21, {"iq3_s", 256, 110, false}},
    {22, {"iq2_s", 256, 82, false}},   {23, {"iq4_xs", 256, 136, true}},
    {24, {"i8", 1, 1, false}},         {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},        {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},        {29, {"iq1_m", 256, 56, false}},
    {30, {"bf16", 1, 2, true}},        {34, {"tq1_0", 256, 54, false}},
    {35, {"tq2_0", 256, 66, false}},   {39, {"mxfp4", 32, 17, false}},
};

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
    for (const Entry& e : kTypes)
        if (e.id == type) return &e.traits;
    return nullptr;
}

const char* type_name(GgmlType t) {
    const TypeTraits* tt = type_traits(t);
    return tt ? tt->name : "unknown";
}

bool type_from_name(const char* name, GgmlType* out) {
    std::string s(name ? name : "");
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const Entry& e : kTypes) {
        std::string n(e.traits.name);
        for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (n == s) {
            *out = static_cast<GgmlType>(e.id);
            return true;
        }
    }
    return false;
}

size_t row_size(GgmlType t, int64_t n) {
    const TypeTraits* tt = type_traits(t);
    if (!tt) fail(ErrorKind::unsupported, "unknown tensor type id " + std::to_string(uint32_t(t)));
    if (n < 0 || n % tt->block_size != 0)
        fail(ErrorKind::format, std::string("row of ") + std::to_string(n) +
                                    " elements is not a multiple of the " + tt->name +
                                    " block size " + std::to_string(tt->block_size));
    return static_cast<size_t>(n / tt->block_size) * tt->type_size;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do {
                mant <<= 1;
                ++e;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | (uint32_t(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;  // nan
    if (ax >= 0x47800000u) {                     // >= 65536 (after rounding: overflow) or inf
        return sign | 0x7c00;
    }
    if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        // value = ax as float; half subnormal unit is 2^-24
        float af;
        std::memcpy(&af, &ax, 4);
        const float scaled = af * 16777216.0f;  // / 2^-24
        // round half to even
        float r = std::nearbyint(scaled);
        return sign | static_cast<uint16_t>(r);
    }
    uint32_t exp = (ax >> 23) - 127 + 15;
    uint32_t mant = ax & 0x7fffff;
    uint32_t h = (exp << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: fine
    return sign | static_cast<uint16_t>(h);
}

float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet nan
    const uint32_t rounding = 0x7fff + ((x >> 16) & 1);
    return static_cast<uint16_t>((x + rounding) >> 16);
}

}  // namespace llm8
