// The K split layout on the host (ksplit.h): the repack made at upload, and the CPU reference
// of the unit recipe that the tests hold the GPU to.
#include "cuda/ksplit.h"

#include <algorithm>

#include "llm8/error.h"

namespace llm8 {
namespace cuda {

namespace {

uint16_t ld16(const uint8_t* p) {
    return uint16_t(p[0] | p[1] << 8);
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
void k4_scale_min(int j, const uint8_t* q, int* d, int* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

int q3_scale(const uint8_t* sc, int j) {
    const int lo = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
    return lo | (((sc[8 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4);
}

int iq4xs_scale(const uint8_t* b, int j) {
    return ((b[4 + j / 2] >> (4 * (j & 1))) & 0xF) | (((ld16(b + 2) >> (2 * j)) & 3) << 4);
}

// One unit of a file block, unpacked: unsigned quants (iq4: the file's codebook index), the two
// sub-scale bytes and the super-block halves.
struct UnitVals {
    uint8_t q[32];
    uint8_t s0 = 0, s1 = 0;
    uint16_t d = 0, dmin = 0;
};

int block_elems(GgmlType t) {
    return t == GgmlType::IQ4_NL ? 32 : 256;
}

size_t block_bytes(GgmlType t) {
    switch (t) {
        case GgmlType::Q2_K:
            return 84;
        case GgmlType::Q3_K:
            return 110;
        case GgmlType::Q4_K:
            return 144;
        case GgmlType::Q5_K:
            return 176;
        case GgmlType::Q6_K:
            return 210;
        case GgmlType::IQ4_NL:
            return 18;
        default:
            return 136;  // IQ4_XS
    }
}

UnitVals unit_vals(GgmlType t, const uint8_t* b, int sub) {
    UnitVals v;
    switch (t) {
        case GgmlType::Q4_K: {
            int sc, m;
            k4_scale_min(sub, b + 4, &sc, &m);
            v.s0 = uint8_t(sc);
            v.s1 = uint8_t(m);
            v.d = ld16(b);
            v.dmin = ld16(b + 2);
            const uint8_t* q = b + 16 + 32 * (sub / 2);
            for (int l = 0; l < 32; ++l) v.q[l] = (sub & 1) ? (q[l] >> 4) : (q[l] & 0xF);
            break;
        }
        case GgmlType::Q5_K: {
            int sc, m;
            k4_scale_min(sub, b + 4, &sc, &m);
            v.s0 = uint8_t(sc);
            v.s1 = uint8_t(m);
            v.d = ld16(b);
            v.dmin = ld16(b + 2);
            const uint8_t* qh = b + 16;
            const uint8_t* ql = b + 48 + 32 * (sub / 2);
            for (int l = 0; l < 32; ++l) {
                const int lo = (sub & 1) ? (ql[l] >> 4) : (ql[l] & 0xF);
                v.q[l] = uint8_t(lo | (((qh[l] >> sub) & 1) << 4));
            }
            break;
        }
        case GgmlType::Q6_K: {
            const int h = sub / 4, k = sub % 4;
            const uint8_t* ql = b + 64 * h + ((k & 1) ? 32 : 0);
            const uint8_t* qh = b + 128 + 32 * h;
            v.s0 = b[192 + 8 * h + 2 * k];
            v.s1 = b[192 + 8 * h + 2 * k + 1];
            v.d = ld16(b + 208);
            for (int l = 0; l < 32; ++l) {
                const int lo = (k & 2) ? (ql[l] >> 4) : (ql[l] & 0xF);
                v.q[l] = uint8_t(lo | (((qh[l] >> (2 * k)) & 3) << 4));
            }
            break;
        }
        case GgmlType::Q2_K: {
            const uint8_t* q = b + 16 + 32 * (sub / 4);
            const int shift = 2 * (sub % 4);
            v.s0 = b[2 * sub];
            v.s1 = b[2 * sub + 1];
            v.d = ld16(b + 80);
            v.dmin = ld16(b + 82);
            for (int l = 0; l < 32; ++l) v.q[l] = (q[l] >> shift) & 3;
            break;
        }
        case GgmlType::Q3_K: {
            const uint8_t* q = b + 32 + 32 * (sub / 4);
            const int shift = 2 * (sub % 4);
            v.s0 = uint8_t(int8_t(q3_scale(b + 96, 2 * sub) - 32));
            v.s1 = uint8_t(int8_t(q3_scale(b + 96, 2 * sub + 1) - 32));
            v.d = ld16(b + 108);
            for (int l = 0; l < 32; ++l)
                v.q[l] = uint8_t(((q[l] >> shift) & 3) | (((b[l] >> sub) & 1) << 2));
            break;
        }
        case GgmlType::IQ4_NL: {
            const uint16_t d = ld16(b);
            v.s0 = uint8_t(d & 0xFF);
            v.s1 = uint8_t(d >> 8);
            for (int j = 0; j < 16; ++j) {
                v.q[j] = b[2 + j] & 0xF;
                v.q[j + 16] = b[2 + j] >> 4;
            }
            break;
        }
        default: {  // IQ4_XS
            v.s0 = uint8_t(int8_t(iq4xs_scale(b, sub) - 32));
            v.d = ld16(b);
            const uint8_t* qs = b + 8 + 16 * sub;
            for (int j = 0; j < 16; ++j) {
                v.q[j] = qs[j] & 0xF;
                v.q[j + 16] = qs[j] >> 4;
            }
            break;
        }
    }
    return v;
}

// Writes the unit's A and B bytes (zeroed first) as ksplit.h lays them out.
void pack_unit(GgmlType t, const UnitVals& v, uint8_t* a, uint8_t* b) {
    const KSplitFmt f = ksplit_fmt(t);
    std::fill(a, a + f.a, uint8_t(0));
    std::fill(b, b + f.b, uint8_t(0));
    const bool iq4 = t == GgmlType::IQ4_NL || t == GgmlType::IQ4_XS;
    for (int e = 0; e < 32; ++e) {
        const int w = e / 4, k = e % 4;
        const uint32_t q = v.q[e];
        if (iq4) {
            a[e / 2] |= uint8_t(iq4_index_swap(q) << (4 * (e & 1)));
            continue;
        }
        if (f.a == 16) {
            a[e % 16] |= uint8_t((q & 0xF) << (e < 16 ? 0 : 4));
        } else {  // 2 bits: word i = w % 2, shift s = w / 2
            a[4 * (w % 2) + k] |= uint8_t((q & 3) << (2 * (w / 2)));
        }
        if (t == GgmlType::Q5_K) b[k] |= uint8_t(((q >> 4) & 1) << w);
        if (t == GgmlType::Q3_K) b[k] |= uint8_t(((q >> 2) & 1) << w);
        if (t == GgmlType::Q6_K) b[4 * (w % 2) + k] |= uint8_t(((q >> 4) & 3) << (2 * (w / 2)));
    }
}

uint32_t ld32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace

bool can_ksplit(GgmlType t, int64_t K) {
    return ksplit_type(t) && K > 0 && K % block_elems(t) == 0;
}

void repack_ksplit_rows(GgmlType t, int64_t K, const uint8_t* src, size_t src_row_bytes,
                        uint8_t* dst, int64_t r0, int64_t r1) {
    if (!can_ksplit(t, K))
        fail(ErrorKind::invalid_arg, "repack_ksplit_rows: not a K split type / row length");
    const KSplitFmt f = ksplit_fmt(t);
    const KSplitRow L = ksplit_row(t, K);
    const int64_t nb = K / 32;
    const int per_block = block_elems(t) / 32;
    const size_t bb = block_bytes(t);
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* s = src + size_t(r) * src_row_bytes;
        uint8_t* d = dst + size_t(r) * L.pitch;
        std::fill(d, d + L.pitch, uint8_t(0));
        for (int64_t u = 0; u < nb; ++u) {
            const uint8_t* blk = s + size_t(u / per_block) * bb;
            const UnitVals v = unit_vals(t, blk, int(u % per_block));
            pack_unit(t, v, d + u * f.a, d + L.b_off + u * f.b);
            d[L.s_off + 2 * u] = v.s0;
            d[L.s_off + 2 * u + 1] = v.s1;
            if (f.super && u % 8 == 0) {
                uint8_t* dd = d + L.d_off + (u / 8) * 4;
                dd[0] = uint8_t(v.d & 0xFF);
                dd[1] = uint8_t(v.d >> 8);
                dd[2] = uint8_t(v.dmin & 0xFF);
                dd[3] = uint8_t(v.dmin >> 8);
            }
        }
    }
}

KUnit ksplit_unit(GgmlType t, const uint8_t* row, int64_t K, int64_t u) {
    const KSplitFmt f = ksplit_fmt(t);
    const KSplitRow L = ksplit_row(t, K);
    KUnit w = {};
    for (int i = 0; i < f.a / 4; ++i) w.a[i] = ld32(row + u * f.a + 4 * i);
    for (int i = 0; i < f.b / 4; ++i) w.b[i] = ld32(row + L.b_off + u * f.b + 4 * i);
    w.s = uint32_t(ld16(row + L.s_off + 2 * u));
    if (f.super) w.dd = ld32(row + L.d_off + (u / 8) * 4);
    return w;
}

void ksplit_unit_scales(GgmlType t, const uint8_t* row, int64_t K, int64_t u, float* d,
                        float* dmin) {
    const KUnit w = ksplit_unit(t, row, K, u);
    if (t == GgmlType::IQ4_NL) {
        *d = fp16_to_fp32(uint16_t(w.s));
        *dmin = 0.0f;
        return;
    }
    *d = fp16_to_fp32(uint16_t(w.dd & 0xFFFF));
    *dmin = fp16_to_fp32(uint16_t(w.dd >> 16));
}

void ksplit_unit_ints(GgmlType t, const KUnit& w, const int8_t* xq, int* I, int* J) {
    uint32_t x[8];
    int xsum = 0;
    for (int i = 0; i < 8; ++i) x[i] = ld32(reinterpret_cast<const uint8_t*>(xq) + 4 * i);
    for (int i = 0; i < 32; ++i) xsum += xq[i];
    switch (t) {
        case GgmlType::Q2_K:
            return ksplit_ints<GgmlType::Q2_K>(w, x, xsum, I, J);
        case GgmlType::Q3_K:
            return ksplit_ints<GgmlType::Q3_K>(w, x, xsum, I, J);
        case GgmlType::Q4_K:
            return ksplit_ints<GgmlType::Q4_K>(w, x, xsum, I, J);
        case GgmlType::Q5_K:
            return ksplit_ints<GgmlType::Q5_K>(w, x, xsum, I, J);
        case GgmlType::Q6_K:
            return ksplit_ints<GgmlType::Q6_K>(w, x, xsum, I, J);
        case GgmlType::IQ4_NL:
            return ksplit_ints<GgmlType::IQ4_NL>(w, x, xsum, I, J);
        case GgmlType::IQ4_XS:
            return ksplit_ints<GgmlType::IQ4_XS>(w, x, xsum, I, J);
        default:
            fail(ErrorKind::invalid_arg, "ksplit_unit_ints: not a K split type");
    }
}

}  // namespace cuda
}  // namespace llm8
