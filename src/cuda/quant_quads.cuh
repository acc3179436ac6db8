// Quarter-unit dequantization for the GEMV: four lanes share a 32-element unit, lane part k
// (0..3) producing 8 of its elements with one or two aligned 2-8 byte loads, so that a warp
// reads 8 consecutive units as one contiguous span (coalesced) without byte loads and without
// repacking the file's blocks. kSplit types give elements {4k..4k+3, 16+4k..16+4k+3} (their
// nibbles pair element j with j+16); the others give 8k..8k+7. Formulas and operation order
// are the CPU dequantizer's, as in quant_blocks.cuh.
//
// Small integers become floats through the bit pattern of 2^23 + v (an OR and an exact FADD)
// instead of int-to-float conversions, which run at a quarter of the FMA rate on Hopper and
// made the Q4_0/Q8_0 GEMV instruction-bound (4.7 ms per 7B token at 19% of the bandwidth).
#pragma once
#include "cuda/quant_blocks.cuh"

namespace llm8 {
namespace cuda {

// Exact float of v - bias for 0 <= v < 2^23: the FADD of two floats that differ by less
// than 2^23 is exact.
__device__ __forceinline__ float u2f_minus(uint32_t v, float bias) {
    return __int_as_float(0x4B000000u | v) - (8388608.0f + bias);
}

__device__ __forceinline__ uint32_t ld_u32_2a(const uint8_t* p) {  // 2-byte aligned
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    return uint32_t(h[0]) | uint32_t(h[1]) << 16;
}

template <GgmlType T>
struct Quad;

template <>
struct Quad<GgmlType::F32> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const float4* p = reinterpret_cast<const float4*>(row + u * 128 + k * 32);
        const float4 a = p[0], b = p[1];
        v[0] = a.x;
        v[1] = a.y;
        v[2] = a.z;
        v[3] = a.w;
        v[4] = b.x;
        v[5] = b.y;
        v[6] = b.z;
        v[7] = b.w;
    }
};

template <>
struct Quad<GgmlType::F16> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        uint4 a = *reinterpret_cast<const uint4*>(row + u * 64 + k * 16);
        const __half2* h = reinterpret_cast<const __half2*>(&a);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = __half22float2(h[i]);
            v[2 * i] = f.x;
            v[2 * i + 1] = f.y;
        }
    }
};

template <>
struct Quad<GgmlType::BF16> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint4 a = *reinterpret_cast<const uint4*>(row + u * 64 + k * 16);
        const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[2 * i] = __uint_as_float(w[i] << 16);
            v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
};

template <>
struct Quad<GgmlType::Q4_0> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 18;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const uint32_t q = ld_u32_2a(b + 2 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            v[i] = u2f_minus(byte & 0xF, 8.0f) * d;
            v[4 + i] = u2f_minus(byte >> 4, 8.0f) * d;
        }
    }
};

template <>
struct Quad<GgmlType::Q4_1> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 20;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const float m = __half2float(*reinterpret_cast<const __half*>(b + 2));
        const uint32_t q = *reinterpret_cast<const uint32_t*>(b + 4 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            v[i] = u2f_minus(byte & 0xF, 0.0f) * d + m;
            v[4 + i] = u2f_minus(byte >> 4, 0.0f) * d + m;
        }
    }
};

template <>
struct Quad<GgmlType::Q5_0> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 22;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const uint32_t qh = ld_u32_2a(b + 2);
        const uint32_t q = ld_u32_2a(b + 6 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int j = 4 * k + i;
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            const uint32_t xh0 = ((qh >> j) << 4) & 0x10;
            const uint32_t xh1 = (qh >> (j + 12)) & 0x10;
            v[i] = u2f_minus((byte & 0xF) | xh0, 16.0f) * d;
            v[4 + i] = u2f_minus((byte >> 4) | xh1, 16.0f) * d;
        }
    }
};

template <>
struct Quad<GgmlType::Q5_1> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 24;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const float m = __half2float(*reinterpret_cast<const __half*>(b + 2));
        const uint32_t qh = *reinterpret_cast<const uint32_t*>(b + 4);
        const uint32_t q = *reinterpret_cast<const uint32_t*>(b + 8 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int j = 4 * k + i;
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            const uint32_t xh0 = ((qh >> j) << 4) & 0x10;
            const uint32_t xh1 = (qh >> (j + 12)) & 0x10;
            v[i] = u2f_minus((byte & 0xF) | xh0, 0.0f) * d + m;
            v[4 + i] = u2f_minus((byte >> 4) | xh1, 0.0f) * d + m;
        }
    }
};

template <>
struct Quad<GgmlType::Q8_0> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 34;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const uint32_t lo = ld_u32_2a(b + 2 + 8 * k), hi = ld_u32_2a(b + 6 + 8 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[i] = u2f_minus(((lo >> (8 * i)) & 0xFF) ^ 0x80, 128.0f) * d;
            v[4 + i] = u2f_minus(((hi >> (8 * i)) & 0xFF) ^ 0x80, 128.0f) * d;
        }
    }
};

template <>
struct Quad<GgmlType::Q4_K> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 144;
        const int sub = int(u & 7);
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const float dmin = __half2float(*reinterpret_cast<const __half*>(b + 2));
        float d1, m1;
        k4_sub_scale(d, dmin, b + 4, sub, &d1, &m1);
        const uint2 q = *reinterpret_cast<const uint2*>(b + 16 + 32 * (sub >> 1) + 8 * k);
        const int shift = (sub & 1) ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[i] = d1 * u2f_minus((q.x >> (8 * i + shift)) & 0xF, 0.0f) - m1;
            v[4 + i] = d1 * u2f_minus((q.y >> (8 * i + shift)) & 0xF, 0.0f) - m1;
        }
    }
};

template <>
struct Quad<GgmlType::Q5_K> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 176;
        const int sub = int(u & 7);
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const float dmin = __half2float(*reinterpret_cast<const __half*>(b + 2));
        float d1, m1;
        k4_sub_scale(d, dmin, b + 4, sub, &d1, &m1);
        const uint2 h = *reinterpret_cast<const uint2*>(b + 16 + 8 * k);
        const uint2 q = *reinterpret_cast<const uint2*>(b + 48 + 32 * (sub >> 1) + 8 * k);
        const int shift = (sub & 1) ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int lo0 = (q.x >> (8 * i + shift)) & 0xF, lo1 = (q.y >> (8 * i + shift)) & 0xF;
            const int h0 = (h.x >> (8 * i + sub)) & 1, h1 = (h.y >> (8 * i + sub)) & 1;
            v[i] = d1 * u2f_minus(uint32_t(lo0 | (h0 << 4)), 0.0f) - m1;
            v[4 + i] = d1 * u2f_minus(uint32_t(lo1 | (h1 << 4)), 0.0f) - m1;
        }
    }
};

template <>
struct Quad<GgmlType::Q6_K> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 210;
        const int sub = int(u & 7), h = sub >> 2, kq = sub & 3;
        const uint8_t* ql = b + 64 * h + ((kq & 1) ? 32 : 0) + 8 * k;
        const uint8_t* qh = b + 128 + 32 * h + 8 * k;
        const float d = __half2float(*reinterpret_cast<const __half*>(b + 208));
        const float dsc =
            d * float(reinterpret_cast<const int8_t*>(b + 192)[8 * h + 2 * kq + (k >> 1)]);
        const uint32_t l0 = ld_u32_2a(ql), l1 = ld_u32_2a(ql + 4);
        const uint32_t h0 = ld_u32_2a(qh), h1 = ld_u32_2a(qh + 4);
        const int lshift = (kq & 2) ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t q0 =
                ((l0 >> (8 * i + lshift)) & 0xF) | (((h0 >> (8 * i + 2 * kq)) & 3) << 4);
            const uint32_t q1 =
                ((l1 >> (8 * i + lshift)) & 0xF) | (((h1 >> (8 * i + 2 * kq)) & 3) << 4);
            v[i] = dsc * u2f_minus(q0, 32.0f);
            v[4 + i] = dsc * u2f_minus(q1, 32.0f);
        }
    }
};

// Q2_K / Q3_K: lane part k reads bytes 8k..8k+7 of the unit's 32 (sub-block 2 * sub + k / 2).
template <>
struct Quad<GgmlType::Q2_K> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 84;
        const int sub = int(u & 7);
        const float d = __half2float(*reinterpret_cast<const __half*>(b + 80));
        const float dmin = __half2float(*reinterpret_cast<const __half*>(b + 82));
        const uint8_t sc = b[2 * sub + (k >> 1)];
        const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
        const uint8_t* q = b + 16 + 32 * (sub >> 2) + 8 * k;
        const uint32_t q0 = ld_u32_2a(q), q1 = ld_u32_2a(q + 4);
        const int shift = 2 * (sub & 3);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[i] = dl * u2f_minus((q0 >> (8 * i + shift)) & 3, 0.0f) - ml;
            v[4 + i] = dl * u2f_minus((q1 >> (8 * i + shift)) & 3, 0.0f) - ml;
        }
    }
};

template <>
struct Quad<GgmlType::Q3_K> {
    static constexpr bool kSplit = false;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 110;
        const int sub = int(u & 7);
        const float d = __half2float(*reinterpret_cast<const __half*>(b + 108));
        const float dl = d * float(q3k_scale(b + 96, 2 * sub + (k >> 1)) - 32);
        const uint8_t* q = b + 32 + 32 * (sub >> 2) + 8 * k;
        const uint32_t q0 = ld_u32_2a(q), q1 = ld_u32_2a(q + 4);
        const uint32_t h0 = ld_u32_2a(b + 8 * k), h1 = ld_u32_2a(b + 8 * k + 4);
        const int shift = 2 * (sub & 3);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            // low 2 bits | high bit << 2, minus 4: q in -4..3
            const uint32_t a0 = ((q0 >> (8 * i + shift)) & 3) | (((h0 >> (8 * i + sub)) & 1) << 2);
            const uint32_t a1 = ((q1 >> (8 * i + shift)) & 3) | (((h1 >> (8 * i + sub)) & 1) << 2);
            v[i] = dl * u2f_minus(a0, 4.0f);
            v[4 + i] = dl * u2f_minus(a1, 4.0f);
        }
    }
};

// IQ4_NL / IQ4_XS: nibbles pair element j with j + 16, as Q4_0.
template <>
struct Quad<GgmlType::IQ4_NL> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + u * 18;
        const float d = __half2float(*reinterpret_cast<const __half*>(b));
        const uint32_t q = ld_u32_2a(b + 2 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            v[i] = d * iq4_level(byte & 0xF);
            v[4 + i] = d * iq4_level(byte >> 4);
        }
    }
};

template <>
struct Quad<GgmlType::IQ4_XS> {
    static constexpr bool kSplit = true;
    __device__ static void dq(const uint8_t* row, int64_t u, int k, float* v) {
        const uint8_t* b = row + (u >> 3) * 136;
        const int sub = int(u & 7);
        const float dl =
            __half2float(*reinterpret_cast<const __half*>(b)) * float(iq4xs_scale(b, sub) - 32);
        const uint32_t q = ld_u32_2a(b + 8 + 16 * sub + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (q >> (8 * i)) & 0xFF;
            v[i] = dl * iq4_level(byte & 0xF);
            v[4 + i] = dl * iq4_level(byte >> 4);
        }
    }
};

// The activations a lane part pairs with: kSplit types give elements {4k..4k+3, 16+4k..16+4k+3}
// of the unit, the others 8k..8k+7; returned as the offsets of two float4s.
template <bool kSplit>
__device__ __forceinline__ int quad_off_a(int k) {
    return kSplit ? 4 * k : 8 * k;
}
template <bool kSplit>
__device__ __forceinline__ int quad_off_b(int k) {
    return kSplit ? 16 + 4 * k : 8 * k + 4;
}

__device__ __forceinline__ void unpack8(const float4 a, const float4 b, float* d) {
    d[0] = a.x;
    d[1] = a.y;
    d[2] = a.z;
    d[3] = a.w;
    d[4] = b.x;
    d[5] = b.y;
    d[6] = b.z;
    d[7] = b.w;
}

__device__ __forceinline__ float dot8(const float* v, const float* x) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) s += v[i] * x[i];
    return s;
}

}  // namespace cuda
}  // namespace llm8
