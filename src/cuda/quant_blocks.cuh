// Device-side dequantization of ggml block formats, one "unit" of 32 consecutive elements at a
// time (a whole block for the 32-element types, one sub-block of a 256-element K-quant), with
// the CPU dequantizer's formulas and operation order (src/gguf/quants.cpp) so that results are
// bit-identical. Units let one warp lane own 32 elements of any type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "gguf/quants.h"

namespace llm8 {
namespace cuda {

__device__ __forceinline__ float ld_half(const uint8_t* p) {
    const uint16_t b = uint16_t(p[0]) | uint16_t(p[1]) << 8;
    return __half2float(__ushort_as_half(b));
}

__device__ __forceinline__ void k4_scale_min(int j, const uint8_t* q, int* d, int* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// The scale and min of sub-block sub (0..7) of a Q4_K / Q5_K block, as the CPU computes them:
// d * sc and dmin * m from the 6-bit packed scales.
__device__ __forceinline__ void k4_sub_scale(float d, float dmin, const uint8_t* scales, int sub,
                                             float* d1, float* m1) {
    int sc, m;
    k4_scale_min(sub, scales, &sc, &m);
    *d1 = d * float(sc);
    *m1 = dmin * float(m);
}

// The 16 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl: -127 -104 -83 -65 -49 -35 -22 -10
// 1 13 25 38 53 69 89 113), eight bytes to a word: a lookup without a memory table.
__device__ __forceinline__ float iq4_level(uint32_t i) {
    const unsigned long long w = i < 8 ? 0xF6EADDCFBFAD9881ull : 0x7159453526190D01ull;
    return float(int(int8_t((w >> (8 * (i & 7))) & 0xFF)));
}

// The 6-bit scale (0..63, offset 32) of sub-block j (0..15) of a Q3_K block.
__device__ __forceinline__ int q3k_scale(const uint8_t* sc, int j) {
    const int lo = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
    return lo | (((sc[8 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4);
}

// The 6-bit scale (0..63, offset 32) of block j (0..7) of an IQ4_XS super-block.
__device__ __forceinline__ int iq4xs_scale(const uint8_t* b, int j) {
    const uint32_t sh = uint32_t(b[2]) | uint32_t(b[3]) << 8;
    return ((b[4 + j / 2] >> (4 * (j & 1))) & 0xF) | int(((sh >> (2 * j)) & 3) << 4);
}

template <GgmlType T>
struct Unit;  // bytes per block and units per block, and dequant of one unit

template <>
struct Unit<GgmlType::F32> {
    static constexpr int kBlockBytes = 128, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float4* p = reinterpret_cast<const float4*>(b);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 a = p[i];
            v[4 * i] = a.x;
            v[4 * i + 1] = a.y;
            v[4 * i + 2] = a.z;
            v[4 * i + 3] = a.w;
        }
    }
};

template <>
struct Unit<GgmlType::F16> {
    static constexpr int kBlockBytes = 64, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const uint4* p = reinterpret_cast<const uint4*>(b);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            uint4 a = p[i];
            const __half2* h = reinterpret_cast<const __half2*>(&a);
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float2 f = __half22float2(h[k]);
                v[8 * i + 2 * k] = f.x;
                v[8 * i + 2 * k + 1] = f.y;
            }
        }
    }
};

template <>
struct Unit<GgmlType::BF16> {
    static constexpr int kBlockBytes = 64, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const uint4* p = reinterpret_cast<const uint4*>(b);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            uint4 a = p[i];
            const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                v[8 * i + 2 * k] = __uint_as_float(w[k] << 16);
                v[8 * i + 2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
            }
        }
    }
};

template <>
struct Unit<GgmlType::Q4_0> {
    static constexpr int kBlockBytes = 18, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b);
        const uint8_t* qs = b + 2;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const uint8_t q = qs[j];
            v[j] = float(int(q & 0xF) - 8) * d;
            v[j + 16] = float(int(q >> 4) - 8) * d;
        }
    }
};

template <>
struct Unit<GgmlType::Q4_1> {
    static constexpr int kBlockBytes = 20, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b), m = ld_half(b + 2);
        const uint8_t* qs = b + 4;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const uint8_t q = qs[j];
            v[j] = float(q & 0xF) * d + m;
            v[j + 16] = float(q >> 4) * d + m;
        }
    }
};

template <>
struct Unit<GgmlType::Q5_0> {
    static constexpr int kBlockBytes = 22, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b);
        const uint32_t qh =
            uint32_t(b[2]) | uint32_t(b[3]) << 8 | uint32_t(b[4]) << 16 | uint32_t(b[5]) << 24;
        const uint8_t* qs = b + 6;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
            const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
            v[j] = float(int((qs[j] & 0xF) | xh0) - 16) * d;
            v[j + 16] = float(int((qs[j] >> 4) | xh1) - 16) * d;
        }
    }
};

template <>
struct Unit<GgmlType::Q5_1> {
    static constexpr int kBlockBytes = 24, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b), m = ld_half(b + 2);
        const uint32_t qh =
            uint32_t(b[4]) | uint32_t(b[5]) << 8 | uint32_t(b[6]) << 16 | uint32_t(b[7]) << 24;
        const uint8_t* qs = b + 8;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
            const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
            v[j] = float((qs[j] & 0xF) | xh0) * d + m;
            v[j + 16] = float((qs[j] >> 4) | xh1) * d + m;
        }
    }
};

template <>
struct Unit<GgmlType::Q8_0> {
    static constexpr int kBlockBytes = 34, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b);
        const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
#pragma unroll
        for (int j = 0; j < 32; ++j) v[j] = float(qs[j]) * d;
    }
};

template <>
struct Unit<GgmlType::Q4_K> {
    static constexpr int kBlockBytes = 144, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const float d = ld_half(b), dmin = ld_half(b + 2);
        const uint8_t* scales = b + 4;
        const uint8_t* q = b + 16 + 32 * (sub / 2);
        float d1, m1;
        k4_sub_scale(d, dmin, scales, sub, &d1, &m1);
        if (sub & 1) {
#pragma unroll
            for (int l = 0; l < 32; ++l) v[l] = d1 * float(q[l] >> 4) - m1;
        } else {
#pragma unroll
            for (int l = 0; l < 32; ++l) v[l] = d1 * float(q[l] & 0xF) - m1;
        }
    }
};

template <>
struct Unit<GgmlType::Q5_K> {
    static constexpr int kBlockBytes = 176, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const float d = ld_half(b), dmin = ld_half(b + 2);
        const uint8_t* scales = b + 4;
        const uint8_t* qh = b + 16;
        const uint8_t* ql = b + 48 + 32 * (sub / 2);
        float d1, m1;
        k4_sub_scale(d, dmin, scales, sub, &d1, &m1);
        const uint8_t mask = uint8_t(1u << sub);
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const int lo = (sub & 1) ? (ql[l] >> 4) : (ql[l] & 0xF);
            v[l] = d1 * float(lo + ((qh[l] & mask) ? 16 : 0)) - m1;
        }
    }
};

template <>
struct Unit<GgmlType::Q6_K> {
    static constexpr int kBlockBytes = 210, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const int h = sub / 4, k = sub % 4;
        const uint8_t* ql = b + 64 * h + ((k & 1) ? 32 : 0);
        const uint8_t* qh = b + 128 + 32 * h;
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * h + 2 * k;
        const float d = ld_half(b + 208);
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const int lo = (k & 2) ? (ql[l] >> 4) : (ql[l] & 0xF);
            const int q = (lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
            v[l] = d * float(sc[l / 16]) * float(q);
        }
    }
};

// Q2_K / Q3_K: unit sub (32 elements) is two 16-element sub-blocks 2 * sub, 2 * sub + 1 (their
// own scales); its bytes are qs[32 * (sub / 4) + l] at bit 2 * (sub % 4), and (Q3_K) its high
// bits are bit sub of hmask[l].
template <>
struct Unit<GgmlType::Q2_K> {
    static constexpr int kBlockBytes = 84, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const float d = ld_half(b + 80), dmin = ld_half(b + 82);
        const uint8_t* q = b + 16 + 32 * (sub / 4);
        const int shift = 2 * (sub % 4);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const uint8_t sc = b[2 * sub + h];
            const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
#pragma unroll
            for (int l = 0; l < 16; ++l)
                v[16 * h + l] = dl * float((q[16 * h + l] >> shift) & 3) - ml;
        }
    }
};

template <>
struct Unit<GgmlType::Q3_K> {
    static constexpr int kBlockBytes = 110, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const float d = ld_half(b + 108);
        const uint8_t* q = b + 32 + 32 * (sub / 4);
        const int shift = 2 * (sub % 4);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const float dl = d * float(q3k_scale(b + 96, 2 * sub + h) - 32);
#pragma unroll
            for (int l = 0; l < 16; ++l) {
                const int i = 16 * h + l;
                const int x = int((q[i] >> shift) & 3) - (((b[i] >> sub) & 1) ? 0 : 4);
                v[i] = dl * float(x);
            }
        }
    }
};

template <>
struct Unit<GgmlType::IQ4_NL> {
    static constexpr int kBlockBytes = 18, kUnits = 1;
    __device__ static void dq(const uint8_t* b, int, float* v) {
        const float d = ld_half(b);
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            v[j] = d * iq4_level(b[2 + j] & 0xF);
            v[j + 16] = d * iq4_level(b[2 + j] >> 4);
        }
    }
};

template <>
struct Unit<GgmlType::IQ4_XS> {
    static constexpr int kBlockBytes = 136, kUnits = 8;
    __device__ static void dq(const uint8_t* b, int sub, float* v) {
        const float dl = ld_half(b) * float(iq4xs_scale(b, sub) - 32);
        const uint8_t* qs = b + 8 + 16 * sub;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            v[j] = dl * iq4_level(qs[j] & 0xF);
            v[j + 16] = dl * iq4_level(qs[j] >> 4);
        }
    }
};

// Unit u of a row: block u / kUnits, sub-unit u % kUnits.
template <GgmlType T>
__device__ __forceinline__ void dequant_unit(const uint8_t* row, int64_t u, float* v) {
    using U = Unit<T>;
    Unit<T>::dq(row + (u / U::kUnits) * U::kBlockBytes, int(u % U::kUnits), v);
}

// Calls f.template operator()<T>() for the runtime type t; unsupported types throw.
#define LLM8_DISPATCH_TYPE(t, F)                                                            \
    switch (t) {                                                                            \
        case GgmlType::F32:                                                                 \
            F(GgmlType::F32);                                                               \
            break;                                                                          \
        case GgmlType::F16:                                                                 \
            F(GgmlType::F16);                                                               \
            break;                                                                          \
        case GgmlType::BF16:                                                                \
            F(GgmlType::BF16);                                                              \
            break;                                                                          \
        case GgmlType::Q4_0:                                                                \
            F(GgmlType::Q4_0);                                                              \
            break;                                                                          \
        case GgmlType::Q4_1:                                                                \
            F(GgmlType::Q4_1);                                                              \
            break;                                                                          \
        case GgmlType::Q5_0:                                                                \
            F(GgmlType::Q5_0);                                                              \
            break;                                                                          \
        case GgmlType::Q5_1:                                                                \
            F(GgmlType::Q5_1);                                                              \
            break;                                                                          \
        case GgmlType::Q8_0:                                                                \
            F(GgmlType::Q8_0);                                                              \
            break;                                                                          \
        case GgmlType::Q4_K:                                                                \
            F(GgmlType::Q4_K);                                                              \
            break;                                                                          \
        case GgmlType::Q5_K:                                                                \
            F(GgmlType::Q5_K);                                                              \
            break;                                                                          \
        case GgmlType::Q6_K:                                                                \
            F(GgmlType::Q6_K);                                                              \
            break;                                                                          \
        case GgmlType::Q2_K:                                                                \
            F(GgmlType::Q2_K);                                                              \
            break;                                                                          \
        case GgmlType::Q3_K:                                                                \
            F(GgmlType::Q3_K);                                                              \
            break;                                                                          \
        case GgmlType::IQ4_NL:                                                              \
            F(GgmlType::IQ4_NL);                                                            \
            break;                                                                          \
        case GgmlType::IQ4_XS:                                                              \
            F(GgmlType::IQ4_XS);                                                            \
            break;                                                                          \
        default:                                                                            \
            ::llm8::fail(::llm8::ErrorKind::unsupported,                                    \
                         std::string("CUDA backend: tensor type ") + ::llm8::type_name(t) + \
                             " is not supported");                                          \
    }

}  // namespace cuda
}  // namespace llm8
