// The decode path's GEMV (one token): weights streamed once at full width, integer dot
// products for the quantized types, neighbours fused.
//
// Activations (decode_act): x, optionally RMS-normalized, becomes either float (F16 weights)
// or int8 per 32-element unit with a float scale d = amax / 127 and the integer sum of the
// unit's quants (Q4_0 / Q8_0 weights in the split layout of ops.h), q = round-to-nearest-even
// (x / d). The same recipe on the CPU is cpu::quantize_act_q8 (bit for bit).
//
// GEMV (gemv_decode): each warp computes 2 output rows (4 warps per block); lane l takes the
// 16-byte pieces l, l + 32, ... of both rows (coalesced: 512 bytes per load instruction),
// issuing 4-8 pieces' loads per row (all of a 4096-wide Q4_0 row pair) before the first dot
// product. Per 32 elements and row: Q4_0 one 16-byte load of
// quants plus its 2-byte scale, eight dp4a on the unpacked nibbles (bias 8 taken out through the
// unit's integer sum: exact), and one float multiply-add; Q8_0 two 16-byte loads and eight dp4a;
// F16 four 16-byte loads and 32 FMAs against float activations. Up to 3 matrices of one type
// and row length share a launch (Q, K, V); outputs are stored, added to the residual, or
// (gate, up) pairs become silu(gate) * up. With programmatic dependent launch the first
// units' weights are loaded before waiting for the kernel that writes the activations.
//
// Two kernels: one-shot (a block per 4 row pairs, the loads of a round in flight at once) and
// persistent (a resident grid, each warp walking many pairs with the next step's loads issued
// before the current step's dot products); each format picks the one that measured faster.
//
// Why (H200, 2026-11-21): the float GEMV spent ~4-5 instructions turning each 4-bit weight
// into an fp32 operand and was bound by instruction issue at ~750 GB/s on a 7B Q4_0; here a
// weight costs ~0.8 instructions. Measured and dropped (llm8-bench-gemv and tg128 7B, same
// runs): a cp.async ring per warp in shared memory (3 blocks per SM: 35-83% of the copy rate
// against 53-103% one-shot; tg128 F16 156 t/s against 225), and splitting long rows over 2-4
// warps of the one-shot kernel (Q4_0 down 4096 x 11008: 55% against 64%; tg128 Q4_0 542 t/s
// against 568); one-shot for Q8_0/F16 launches of >= 8192 rows (alone faster, F16 gate+up 93%
// of the copy rate against 83%; in the model slower, tg128 F16 218.6 against 225.3). Session
// 11 (same-run A/B, tg128 7B): SwiGLU's int8 output quantized in the gate/up epilogue (each
// element counted into its 32-row unit after a fence, the last warp of a unit quantizing it)
// instead of decode_act's launch before W_down, together with the attention's own split merge:
// Q4_0 488 against 531 t/s, Q8_0 301 against 338 (the fences cost ~6 us per layer, the launch
// they replace ~0.7 us behind PDL).
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "cuda/attention/mma_sm80.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/gemv_common.cuh"
#include "cuda/ksplit.h"
#include "cuda/ops.h"
#include "cuda/rope.cuh"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32, kRows = 2;
constexpr int kMaxMats = 3;

struct Mats {
    const uint8_t* data[kMaxMats];
    size_t row_bytes[kMaxMats];
    int64_t rows[kMaxMats];
    float* y[kMaxMats];
    int count;
    int64_t K;
};

struct Rope {  // RopeFuse on the device
    const int32_t* pos;
    const int32_t* slot;
    __half* kc;
    __half* vc;
    const float *bq, *bk, *bv, *factors;
    int hd, n_rot;
    float base, freq_scale;
    int64_t kv_dim;
};

struct Act {
    const float* f;    // float activations [K]
    const int8_t* q;   // int8 quants [K]
    const float2* ds;  // [K / 32]: (scale, sum of quants)
};

// Weights are read once per token: keep them out of L1 so the activations stay there.
__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// Every format reads its row in 16-byte pieces, lane l taking pieces l, l + 32, ..., so that
// each load instruction of a warp covers 512 contiguous bytes (Q4_0: a piece is one unit's
// quants; Q8_0: half a unit's; F16: 8 halves). kUnroll pieces per row are in flight per lane.
struct XQ4 {
    int4 a, b;  // the unit's 32 int8 activation quants
    float2 ds;  // (scale, sum of quants)
};

struct WQ4 {
    uint4 q;
    unsigned short d;
};

struct FmtQ4_0 {  // split layout: [16-byte quants of every unit | half scales]
    // One-shot kernel: measured faster for Q4_0 (H200, tg128 7B: 557 t/s against 503).
    static constexpr bool kPersistent = false;
    static constexpr bool kAllKernels = true;  // persistent, 4-token and tensor-core instances too
    static constexpr bool kMmaQ4 = true;
    static constexpr int kPieceElems = 32, kUnroll = 4, kUnrollPersist = 4;
    using W = WQ4;
    using X = XQ4;
    __device__ static W load(const uint8_t* row, int64_t nb, int64_t p) {
        return {ld_stream(row + p * 16),
                __ldg(reinterpret_cast<const unsigned short*>(row + nb * 16) + p)};
    }
    __device__ static X load_x(const Act& x, int64_t p) {
        const int4* q = reinterpret_cast<const int4*>(x.q + p * 32);
        return {__ldg(q), __ldg(q + 1), __ldg(x.ds + p)};
    }
    __device__ static float dot(const W& w, const X& x) {
        const uint32_t q[4] = {w.q.x, w.q.y, w.q.z, w.q.w};
        const int xa[8] = {x.a.x, x.a.y, x.a.z, x.a.w, x.b.x, x.b.y, x.b.z, x.b.w};
        int s = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            // byte j of word i: element 4i+j in the low nibble, 16+4i+j in the high nibble
            s = __dp4a(int(q[i] & 0x0F0F0F0Fu), xa[i], s);
            s = __dp4a(int((q[i] >> 4) & 0x0F0F0F0Fu), xa[4 + i], s);
        }
        // sum (q - 8) x = s - 8 * sum x: exact in float (|.| < 2^17)
        return __half2float(__ushort_as_half(w.d)) * x.ds.x * (float(s) - 8.0f * x.ds.y);
    }
};

struct XQ8 {
    int4 a;  // 16 int8 activation quants
    float d;
};

struct FmtQ8_0 {  // split layout: [32-byte quants of every unit | half scales]
    static constexpr bool kPersistent = true;  // 345 t/s against 333 one-shot
    static constexpr bool kAllKernels = true;
    static constexpr bool kMmaQ4 = false;
    static constexpr int kPieceElems = 16, kUnroll = 8, kUnrollPersist = 4;
    using W = WQ4;
    using X = XQ8;
    __device__ static W load(const uint8_t* row, int64_t nb, int64_t p) {
        return {ld_stream(row + p * 16),
                __ldg(reinterpret_cast<const unsigned short*>(row + nb * 32) + p / 2)};
    }
    __device__ static X load_x(const Act& x, int64_t p) {
        return {__ldg(reinterpret_cast<const int4*>(x.q + p * 16)), __ldg(&x.ds[p / 2].x)};
    }
    __device__ static float dot(const W& w, const X& x) {
        int s = 0;
        s = __dp4a(int(w.q.x), x.a.x, s);
        s = __dp4a(int(w.q.y), x.a.y, s);
        s = __dp4a(int(w.q.z), x.a.z, s);
        s = __dp4a(int(w.q.w), x.a.w, s);
        return __half2float(__ushort_as_half(w.d)) * x.d * float(s);
    }
};

struct XF32 {
    float4 a, b;
};

struct FmtF16 {                                // ggml layout
    static constexpr bool kPersistent = true;  // 221.6 t/s against 219.9 one-shot
    static constexpr bool kAllKernels = true;
    static constexpr bool kMmaQ4 = false;
    static constexpr int kPieceElems = 8, kUnroll = 8, kUnrollPersist = 4;
    using W = uint4;
    using X = XF32;
    __device__ static W load(const uint8_t* row, int64_t, int64_t p) {
        return ld_stream(row + p * 16);
    }
    __device__ static X load_x(const Act& x, int64_t p) {
        const float4* q = reinterpret_cast<const float4*>(x.f + p * 8);
        return {__ldg(q), __ldg(q + 1)};
    }
    __device__ static float dot(const W& w, const X& x) {
        const __half2* h = reinterpret_cast<const __half2*>(&w);
        const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
        const float2 c = __half22float2(h[2]), d = __half22float2(h[3]);
        return a.x * x.a.x + a.y * x.a.y + b.x * x.a.z + b.y * x.a.w + c.x * x.b.x + c.y * x.b.y +
               d.x * x.b.z + d.y * x.b.w;
    }
};

__device__ __forceinline__ uint32_t ld_stream_u32(const uint8_t* p) {
    uint32_t v;
    asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
}

__device__ __forceinline__ uint2 ld_stream_u64(const uint8_t* p) {
    uint2 v;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];"
                 : "=r"(v.x), "=r"(v.y)
                 : "l"(p));
    return v;
}

// K-quants and i-quants in the K split layout (ksplit.h): a piece is one unit, loaded as its A
// bytes (one 16- or 8-byte load), its B bytes (4 or 8), its two sub-scale bytes and its
// super-block's (d, dmin) (one 4-byte word per 8 lanes); the unit's integers come from
// ksplit_ints, the type's unpacking being the only difference between the types. One-shot
// kernel only, and one instance for several tokens (16): few instances for the CI's compiler.
template <GgmlType T>
struct FmtK {
    static constexpr GgmlType kType = T;
    static constexpr bool kPersistent = false;
    static constexpr bool kAllKernels = false;
    static constexpr int kPieceElems = 32, kUnroll = 4;
    static constexpr KSplitFmt kF = ksplit_fmt(T);
    static constexpr bool kMin = T == GgmlType::Q4_K || T == GgmlType::Q5_K || T == GgmlType::Q2_K;
    using W = KUnit;
    using X = XQ4;
    __device__ static W load(const uint8_t* row, int64_t nb, int64_t p) {
        W w;
        if (kF.a == 16) {
            const uint4 a = ld_stream(row + p * 16);
            w.a[0] = a.x;
            w.a[1] = a.y;
            w.a[2] = a.z;
            w.a[3] = a.w;
        } else {
            const uint2 a = ld_stream_u64(row + p * 8);
            w.a[0] = a.x;
            w.a[1] = a.y;
            w.a[2] = w.a[3] = 0;
        }
        const uint8_t* b = row + nb * kF.a;
        if (kF.b == 4) {
            w.b[0] = ld_stream_u32(b + p * 4);
            w.b[1] = 0;
        } else if (kF.b == 8) {
            const uint2 v = ld_stream_u64(b + p * 8);
            w.b[0] = v.x;
            w.b[1] = v.y;
        } else {
            w.b[0] = w.b[1] = 0;
        }
        const uint8_t* sc = b + nb * kF.b;
        w.s = __ldg(reinterpret_cast<const unsigned short*>(sc) + p);
        w.dd = kF.super ? __ldg(reinterpret_cast<const uint32_t*>(sc + nb * 2) + p / 8) : 0u;
        return w;
    }
    __device__ static X load_x(const Act& x, int64_t p) {
        return FmtQ4_0::load_x(x, p);
    }
    __device__ static float dot(const W& w, const X& x) {
        const uint32_t xa[8] = {uint32_t(x.a.x), uint32_t(x.a.y), uint32_t(x.a.z),
                                uint32_t(x.a.w), uint32_t(x.b.x), uint32_t(x.b.y),
                                uint32_t(x.b.z), uint32_t(x.b.w)};
        int I, J;
        ksplit_ints<T>(w, xa, int(x.ds.y), &I, &J);
        if (T == GgmlType::IQ4_NL)
            return __half2float(__ushort_as_half((unsigned short)(w.s))) * x.ds.x * float(I);
        const float d = __half2float(__ushort_as_half((unsigned short)(w.dd & 0xFFFFu)));
        if (!kMin) return d * x.ds.x * float(I);
        const float dm = __half2float(__ushort_as_half((unsigned short)(w.dd >> 16)));
        return x.ds.x * (d * float(I) - dm * float(J));
    }
};

// Unit integers for the tests (ksplit_unit_ints_gpu): one thread per (row, unit).
template <GgmlType T>
__global__ void ksplit_ints_kernel(const uint8_t* __restrict__ w, size_t pitch, int64_t K,
                                   int64_t M, Act x, int* __restrict__ I, int* __restrict__ J) {
    const int64_t nb = K / 32;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= M * nb) return;
    const int64_t r = i / nb, u = i % nb;
    using F = FmtK<T>;
    const KUnit wu = F::load(w + r * pitch, nb, u);
    const XQ4 xv = F::load_x(x, u);
    const uint32_t xa[8] = {uint32_t(xv.a.x), uint32_t(xv.a.y), uint32_t(xv.a.z),
                            uint32_t(xv.a.w), uint32_t(xv.b.x), uint32_t(xv.b.y),
                            uint32_t(xv.b.z), uint32_t(xv.b.w)};
    ksplit_ints<T>(wu, xa, int(xv.ds.y), I + i, J + i);
}

// Calls g(FmtK<T>{}) for a K split type t; false for any other type.
template <class G>
bool ksplit_dispatch(GgmlType t, G&& g) {
    switch (t) {
        case GgmlType::Q2_K:
            g(FmtK<GgmlType::Q2_K>{});
            return true;
        case GgmlType::Q3_K:
            g(FmtK<GgmlType::Q3_K>{});
            return true;
        case GgmlType::Q4_K:
            g(FmtK<GgmlType::Q4_K>{});
            return true;
        case GgmlType::Q5_K:
            g(FmtK<GgmlType::Q5_K>{});
            return true;
        case GgmlType::Q6_K:
            g(FmtK<GgmlType::Q6_K>{});
            return true;
        case GgmlType::IQ4_NL:
            g(FmtK<GgmlType::IQ4_NL>{});
            return true;
        case GgmlType::IQ4_XS:
            g(FmtK<GgmlType::IQ4_XS>{});
            return true;
        default:
            return false;
    }
}

// a[i] for i < 3 by selects (an index into a kernel parameter would copy it to local memory).
template <typename T>
__device__ __forceinline__ T pick(const T (&a)[kMaxMats], int i) {
    return i == 0 ? a[0] : i == 1 ? a[1] : a[2];
}

// The two rows of pair p: (gate p, up p) for SwiGLU, else rows 2p, 2p+1 of the concatenation.
struct PairRows {
    int mat[kRows];
    int64_t row[kRows];
    bool ok[kRows];
    const uint8_t* base[kRows];
};

__device__ __forceinline__ PairRows pair_rows(const Mats& m, int64_t pair, bool swiglu) {
    PairRows pr;
#pragma unroll
    for (int s = 0; s < kRows; ++s) {
        int64_t g = swiglu ? pair : pair * kRows + s;
        int mi = swiglu ? s : 0;
        while (!swiglu && mi < m.count - 1 && g >= pick(m.rows, mi)) {
            g -= pick(m.rows, mi);
            ++mi;
        }
        pr.mat[s] = mi;
        pr.row[s] = g;
        pr.ok[s] = g < pick(m.rows, mi);
        pr.base[s] = pick(m.data, mi) + (pr.ok[s] ? g : 0) * pick(m.row_bytes, mi);
    }
    return pr;
}

// Lane 0's epilogue for one row pair (sum: the two rows' dot products).
// Token t's outputs are row t of each matrix's [n, rows] output.
__device__ __forceinline__ void store_pair(const Mats& m, const Rope& rope, int mode,
                                           const PairRows& pr, const float (&sum)[kRows],
                                           int t = 0) {
    if (mode == int(GemvMode::swiglu)) {
        if (pr.ok[0] && pr.ok[1])
            m.y[0][t * m.rows[0] + pr.row[0]] = sum[0] / (1.0f + __expf(-sum[0])) * sum[1];
        return;
    }
    if (mode == int(GemvMode::qkv_rope)) {
        // Rows 2p, 2p+1 of one matrix (the host checked that row counts and head dims are
        // even): dims a, a+1 of one head, a RoPE pair of the adjacent-pair layout.
        if (!pr.ok[0] || !pr.ok[1]) return;
        const int mi = pr.mat[0];
        const int64_t r = pr.row[0];
        const int p = int(r % rope.hd) / 2;
        float x0 = sum[0], x1 = sum[1];
        const float* bias = mi == 0 ? rope.bq : mi == 1 ? rope.bk : rope.bv;
        if (bias) {
            x0 += bias[r];
            x1 += bias[r + 1];
        }
        if (mi < 2 && p < rope.n_rot / 2)
            rope_rotate(x0, x1, rope.pos[0], p, rope.n_rot, rope.base, rope.freq_scale,
                        rope.factors);
        if (mi == 0 || !rope.kc) {  // Q; K and V too for the INT8 cache (the attention stores)
            float* y = pick(m.y, mi);
            y[r] = x0;
            y[r + 1] = x1;
            return;
        }
        __half* cache = (mi == 1 ? rope.kc : rope.vc) + int64_t(*rope.slot) * rope.kv_dim + r;
        cache[0] = __float2half_rn(x0);
        cache[1] = __float2half_rn(x1);
        return;
    }
#pragma unroll
    for (int s = 0; s < kRows; ++s) {
        if (!pr.ok[s]) continue;
        const int mi = pr.mat[s];
        float* y = pick(m.y, mi) + t * pick(m.rows, mi) + pr.row[s];
        if (mode == int(GemvMode::accumulate))
            *y += sum[s];
        else
            *y = sum[s];
    }
}

// One round of a warp over its row pair: pieces u0 + 32 j (j < U) of both rows. The loads
// are all issued first (load_round), the dot products come after (dot_round).
template <class F, int U>
__device__ __forceinline__ void load_round(typename F::W (&w)[U][kRows], const PairRows& pr,
                                           int64_t nb, int64_t np, int64_t u0) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const int64_t u = u0 + 32 * j;
#pragma unroll
        for (int s = 0; s < kRows; ++s)
            if (u < np && pr.ok[s]) w[j][s] = F::load(pr.base[s], nb, u);
    }
}

template <class F, int U>
__device__ __forceinline__ void dot_round(float (&acc)[kRows], const typename F::W (&w)[U][kRows],
                                          const PairRows& pr, const Act& x, int64_t np,
                                          int64_t u0) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const int64_t u = u0 + 32 * j;
        if (u < np) {
            const typename F::X xv = F::load_x(x, u);
#pragma unroll
            for (int s = 0; s < kRows; ++s)
                if (pr.ok[s]) acc[s] += F::dot(w[j][s], xv);
        }
    }
}

// The pair's dot products summed over the warp, stored by lane 0; acc is cleared.
__device__ __forceinline__ void finish_pair(float (&acc)[kRows], const Mats& m, const Rope& rope,
                                            int mode, const PairRows& pr, int lane) {
    float sum[kRows];
#pragma unroll
    for (int s = 0; s < kRows; ++s) {
        sum[s] = warp_sum(acc[s]);
        acc[s] = 0.0f;
    }
    if (lane == 0) store_pair(m, rope, mode, pr, sum);
}

template <class F>
__global__ void __launch_bounds__(kThreads) gemv_decode_kernel(Mats m, Act x, Rope rope, int mode) {
    pdl_trigger();
    constexpr int U = F::kUnroll;
    const int lane = threadIdx.x & 31;
    const int64_t pair = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int64_t nb = m.K / 32, np = m.K / F::kPieceElems;
    const bool swiglu = mode == int(GemvMode::swiglu);
    const PairRows pr = pair_rows(m, pair, swiglu);
    float acc[kRows] = {};
    bool waited = false;
    for (int64_t u0 = lane; u0 < np; u0 += 32 * U) {
        typename F::W w[U][kRows];
        load_round<F, U>(w, pr, nb, np, u0);
        if (!waited) {  // weights are in flight; now the activations may be read
            pdl_wait();
            waited = true;
        }
        dot_round<F, U>(acc, w, pr, x, np, u0);
    }
    if (!waited) pdl_wait();
    finish_pair(acc, m, rope, mode, pr, lane);
}

// Several tokens (decode steps of a batch of sequences): the one-shot kernel with T
// accumulators per row, each weight piece loaded once and dotted with the activations of
// every token (nt <= T of them; the activations of token t start at t * K). The weights are
// read once for up to T tokens, so a step of 16 sequences costs about what one token does.
template <class F, int T>
__global__ void __launch_bounds__(kThreads)
    gemv_decode_tokens_kernel(Mats m, Act x, int mode, int nt) {
    pdl_trigger();
    constexpr int U = F::kUnroll;
    const int lane = threadIdx.x & 31;
    const int64_t pair = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int64_t nb = m.K / 32, np = m.K / F::kPieceElems;
    const bool swiglu = mode == int(GemvMode::swiglu);
    const PairRows pr = pair_rows(m, pair, swiglu);
    float acc[T][kRows] = {};
    bool waited = false;
    for (int64_t u0 = lane; u0 < np; u0 += 32 * U) {
        typename F::W w[U][kRows];
        load_round<F, U>(w, pr, nb, np, u0);
        if (!waited) {  // weights are in flight; now the activations may be read
            pdl_wait();
            waited = true;
        }
#pragma unroll
        for (int t = 0; t < T; ++t) {
            if (t >= nt) break;
            const Act xt = {x.f ? x.f + t * m.K : nullptr, x.q ? x.q + t * m.K : nullptr,
                            x.ds ? x.ds + t * nb : nullptr};
            dot_round<F, U>(acc[t], w, pr, xt, np, u0);
        }
    }
    if (!waited) pdl_wait();
    const Rope none = {};
#pragma unroll
    for (int t = 0; t < T; ++t) {
        if (t >= nt) break;
        float sum[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) sum[r] = warp_sum(acc[t][r]);
        if (lane == 0) store_pair(m, none, mode, pr, sum, t);
    }
}

// ---- several tokens on tensor cores -----------------------------------------------------------
//
// gemm_q8act_mma: a decode step of 5..64 sequences over Q4_0 / Q8_0 weights (split layout),
// int8 activations per 32-element unit as decode_act makes them. One mma.sync.m16n8k32
// (s8 x s8 -> s32) covers one 32-element quant block of 16 weight rows and 8 tokens, so each
// product is exactly the unit's integer dot product of the dp4a path; it is then scaled by the
// row's and the token's block scales in float (Q4_0: the nibbles go in unsigned and 8 * the
// unit's activation sum is taken out, as in FmtQ4_0::dot). The integer becomes a float by the
// 1.5 * 2^23 bias trick (an integer add and a float add, both exact for |I| < 2^22: the
// conversion instruction runs at 1/8 of the float rate on sm_90 and would bound the kernel).
//
// A block of 4 warps owns 32 weight rows (two 16-row tiles; SwiGLU: the same 16 rows of gate and
// up) and every token. Stages of kKB quant blocks of those rows (their quants and half scales)
// and of every token's activations (quants, (scale, sum) pairs) stream through a ring of
// shared memory by 16-byte cp.async, the weights of the first stages issued before the PDL wait;
// rows are padded by 16 bytes so that ldmatrix (four 8x16-byte matrices: A for two blocks of
// Q4_0 or one of Q8_0, B for 16 tokens) reads without bank conflicts. Up to 16 tokens the four
// warps split each stage's blocks and their sums meet in shared memory; up to 32, two pairs of
// warps split the blocks, each warp of a pair taking 16 tokens; above 32 each warp takes 16
// tokens of every block. Fragment layouts of m16n8k32 (PTX ISA): A regs {a0, a1, a2, a3} =
// rows (g, g+8) x k (4c..4c+3, 16+4c..16+4c+3), B regs {b0, b1} = token g x k (4c.., 16+4c..),
// C {c0..c3} = (g, 2c), (g, 2c+1), (g+8, 2c), (g+8, 2c+1), with g = lane / 4 and c = lane % 4.
// In the split Q4_0 layout byte j of a block holds element j (low nibble) and j + 16 (high
// nibble), so the ldmatrix word of a lane gives a0 (low nibbles) and a2 (high nibbles).
//
// Measured and dropped (H200, llama-2-7B Q4_0, llm8-batched-bench S_TG at 16 / 64 sequences):
// fragments loaded straight from global memory by 8 warps strided over K (1,519 / 1,902 t/s;
// ~250-300 GB/s: a few hundred bytes in flight per warp), 4 warps with 4 quant blocks each in
// flight (1,198 / 1,695), each warp a contiguous quarter of K (1,236 / 1,556). Measured after
// this one (S_TG 2,975 / 3,801) and dropped: the ring filled by bulk copies (cp.async.bulk +
// mbarrier) from the lanes of warp 0 (1,303 / 1,502: ~100 small copies a stage queue behind one
// warp while the others wait at the barrier); a ring per warp with no block barrier (2,727 /
// 2,859); K split over a cluster of 2-4 blocks meeting in distributed shared memory where the
// row blocks do not fill the GPU (Wq 4096 x 4096 at 64 tokens 110.7 us against 42.3 unsplit).
// Session 10, against this kernel in the same runs (gate+up at 16 tokens 36.1 us, S_TG
// 2,949 / 3,680): one kernel for any tile shape (row blocks of 32-128 rows sharing each stage's
// activations, warps split over rows, blocks and tokens), the K split over blocks of a grid
// (the last block of a row block to arrive adds the partial sums in a fixed order), a resident
// grid walking (row block, stage) units with the ring running on across row blocks (stream-K),
// and the mma accumulator starting at the bias (one float subtraction per product): gate+up
// 45-52 us, S_TG 2,291 / 3,402. The split helped only the long rows (down at 32 / 64 tokens
// 53 / 79 us against 81 / 96). ncu of this kernel (16 tokens): 8 warps per SM (registers and
// shared memory: 2 blocks), one issue every ~2 cycles per scheduler, stalls led by shared-memory
// loads (short scoreboard) then global (long scoreboard) and fixed-latency waits. Also
// dropped: 3 ring slots at <= 16 tokens (3 blocks per SM; S_TG 2,900 against 2,937 at 16).
template <bool kQ4, int NT>
struct MmaCfg {  // NT = 2, 4, 8: token tiles of 8
    static constexpr int kKW = 8 / NT;            // warps splitting a stage's blocks
    static constexpr int kT = NT * 8;             // token slots
    static constexpr int kKB = NT == 2 ? 16 : 8;  // quant blocks per stage
    static constexpr int kStages = NT == 2 ? 4 : 3;
    static constexpr int kKBW = kKB / kKW;     // blocks per warp and stage
    static constexpr int kQB = kQ4 ? 16 : 32;  // quant bytes per block
    static constexpr int kWPitch = kKB * kQB + 16;
    static constexpr int kXPitch = kKB * 32 + 16;
    static constexpr int kW = 32 * kWPitch;   // weight quants [32 rows][pitch]
    static constexpr int kWS = 32 * kKB * 2;  // weight scales [32 rows][kKB] halves
    static constexpr int kX = kT * kXPitch;   // activation quants [kT][pitch]
    static constexpr int kXS = kT * kKB * 8;  // activation pairs [kT][kKB] float2
    static constexpr int kStage = kW + kWS + kX + kXS;
    static constexpr int kSmem = kStages * kStage;
    static_assert(kKW * (NT / 2) == 4, "4 warps: k-split x 16-token groups");
    static_assert(kKBW % 2 == 0, "blocks go in pairs (one ldmatrix of Q4_0)");
    static_assert(kKW * 32 * kT * 4 <= kSmem, "the reduction reuses the ring");
};

// The two row tiles of block `blk`: matrix and first row of each.
struct TilePair {
    int mat[2];
    int64_t row0[2];
    bool ok[2];
};

__device__ __forceinline__ TilePair tile_pair(const Mats& m, int64_t blk, bool swiglu) {
    TilePair tp;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int64_t g = swiglu ? blk * 16 : (blk * 2 + i) * 16;
        int mi = swiglu ? i : 0;
        while (!swiglu && mi < m.count - 1 && g >= pick(m.rows, mi)) {
            g -= pick(m.rows, mi);
            ++mi;
        }
        tp.mat[i] = mi;
        tp.row0[i] = g;
        tp.ok[i] = g < pick(m.rows, mi);
    }
    return tp;
}

template <bool kQ4, int NT>
__global__ void __launch_bounds__(128) gemm_q8act_mma_kernel(Mats m, Act x, int mode, int n_tok) {
    using C = MmaCfg<kQ4, NT>;
    extern __shared__ __align__(16) uint8_t sm[];
    pdl_trigger();
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, c = lane & 3;
    const bool swiglu = mode == int(GemvMode::swiglu);
    const TilePair tp = tile_pair(m, blockIdx.x, swiglu);
    const int64_t nb = m.K / 32;
    const int nst = int((nb + C::kKB - 1) / C::kKB);
    const uint8_t* tb[2];
    size_t tpitch[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        tpitch[i] = pick(m.row_bytes, tp.mat[i]);
        tb[i] = pick(m.data, tp.mat[i]) + (tp.ok[i] ? tp.row0[i] : 0) * tpitch[i];
    }
    const uint32_t sbase = smem_u32(sm);
    // Stage st's weights (blocks st * kKB ..) into ring slot `slot`; blocks past the row's end
    // and rows of a missing tile are zero-filled (zero scales: they add nothing).
    auto load_w = [&](int slot, int st) {
        const uint32_t s = sbase + slot * C::kStage;
        const int64_t b0 = int64_t(st) * C::kKB;
        constexpr int CPR = C::kKB * C::kQB / 16;  // 16-byte chunks per row
#pragma unroll
        for (int j = 0; j < 32 * CPR / 128; ++j) {
            const int ci = tid + 128 * j, r = ci / CPR, k = ci % CPR;
            const bool t1 = r >= 16;
            const int64_t blk = b0 + k * 16 / C::kQB;
            const bool ok = (t1 ? tp.ok[1] : tp.ok[0]) && blk < nb;
            const uint8_t* src = (t1 ? tb[1] : tb[0]) + (r & 15) * (t1 ? tpitch[1] : tpitch[0]) +
                                 b0 * C::kQB + k * 16;
            cp_async16(s + r * C::kWPitch + k * 16, ok ? src : tb[0], ok);
        }
        constexpr int SPR = C::kKB / 8;  // 16-byte chunks of scales per row
        if (tid < 32 * SPR) {
            const int r = tid / SPR, p = tid % SPR;
            const bool t1 = r >= 16;
            const int64_t blk = b0 + 8 * p;
            const bool ok = (t1 ? tp.ok[1] : tp.ok[0]) && blk < nb;
            const uint8_t* src = (t1 ? tb[1] : tb[0]) + (r & 15) * (t1 ? tpitch[1] : tpitch[0]) +
                                 nb * C::kQB + blk * 2;
            cp_async16(s + C::kW + r * C::kKB * 2 + p * 16, ok ? src : tb[0], ok);
        }
    };
    // Stage st's activations: every token's quants and (scale, sum) pairs; tokens >= n_tok
    // zero-filled.
    auto load_x = [&](int slot, int st) {
        const uint32_t s = sbase + slot * C::kStage + C::kW + C::kWS;
        const int64_t b0 = int64_t(st) * C::kKB;
        constexpr int XC = C::kKB * 2;  // 16-byte chunks of quants per token
#pragma unroll
        for (int j = 0; j < C::kT * XC / 128; ++j) {
            const int ci = tid + 128 * j, t = ci / XC, k = ci % XC;
            const bool ok = t < n_tok && b0 + k / 2 < nb;
            const int8_t* src = x.q + int64_t(t) * m.K + b0 * 32 + k * 16;
            cp_async16(s + t * C::kXPitch + k * 16, ok ? src : x.q, ok);
        }
        constexpr int DC = C::kKB / 2;  // 16-byte chunks of pairs per token
#pragma unroll
        for (int j = 0; j < C::kT * DC / 128; ++j) {
            const int ci = tid + 128 * j, t = ci / DC, k = ci % DC;
            const bool ok = t < n_tok && b0 + 2 * k < nb;
            const float2* src = x.ds + int64_t(t) * nb + b0 + 2 * k;
            cp_async16(s + C::kX + t * C::kKB * 8 + k * 16, ok ? src : x.ds, ok);
        }
    };
    const int kw = warp % C::kKW, tok0 = (warp / C::kKW) * 16;
    float acc[2][2][4] = {};  // [row tile][token tile][C regs]
    constexpr uint32_t kLo = 0x0F0F0F0Fu;
    constexpr int kBias = 0x4B400000;  // the bits of 1.5 * 2^23
    // One stage's products for this warp: blocks kw * kKBW .. + kKBW, tokens tok0 .. + 16.
    auto compute = [&](int slot) {
        const uint32_t s = sbase + slot * C::kStage;
        const uint8_t* sp = sm + slot * C::kStage;
        const __half2* ws = reinterpret_cast<const __half2*>(sp + C::kW);
        const float4* xs = reinterpret_cast<const float4*>(sp + C::kW + C::kWS + C::kX);
#pragma unroll
        for (int p = 0; p < C::kKBW; p += 2) {
            const int kb = kw * C::kKBW + p;  // this pair: blocks kb, kb + 1
            uint32_t a[2][2][4];              // [block of the pair][row tile][A regs]
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const uint32_t row = s + (i * 16 + (lane & 15)) * C::kWPitch;
                if (kQ4) {
                    uint32_t r[4];
                    ldsm_x4(row + (kb + (lane >> 4)) * 16, r);
#pragma unroll
                    for (int q = 0; q < 2; ++q) {
                        a[q][i][0] = r[2 * q] & kLo;
                        a[q][i][1] = r[2 * q + 1] & kLo;
                        a[q][i][2] = (r[2 * q] >> 4) & kLo;
                        a[q][i][3] = (r[2 * q + 1] >> 4) & kLo;
                    }
                } else {
#pragma unroll
                    for (int q = 0; q < 2; ++q)
                        ldsm_x4(row + (kb + q) * 32 + (lane >> 4) * 16, a[q][i]);
                }
            }
            // Row scales (rows g, g + 8 of each tile) and token pairs (tokens 2c, 2c + 1 of
            // each 8-token tile) of both blocks.
            float2 dw[2][2];
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    dw[i][h] = __half22float2(ws[((i * 16 + g + 8 * h) * C::kKB + kb) / 2]);
            float4 xd[2][2];  // [token tile][token]: (d, sum) of block kb, then of kb + 1
#pragma unroll
            for (int j = 0; j < 2; ++j)
#pragma unroll
                for (int e = 0; e < 2; ++e)
                    xd[j][e] = xs[((tok0 + j * 8 + 2 * c + e) * C::kKB + kb) / 2];
#pragma unroll
            for (int q = 0; q < 2; ++q) {
                uint32_t b[4];
                ldsm_x4(s + C::kW + C::kWS + (tok0 + (lane & 7) + ((lane >> 4) << 3)) * C::kXPitch +
                            (kb + q) * 32 + ((lane >> 3) & 1) * 16,
                        b);
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    float d[2], off[2];
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        d[e] = q ? xd[j][e].z : xd[j][e].x;
                        const float sum = q ? xd[j][e].w : xd[j][e].y;
                        // 1.5 * 2^23 (+ 8 * sum for Q4_0): exact, |8 * sum| <= 32512
                        off[e] = kQ4 ? fmaf(8.0f, sum, 12582912.0f) : 12582912.0f;
                    }
#pragma unroll
                    for (int i = 0; i < 2; ++i) {
                        int cc[4] = {0, 0, 0, 0};
                        mma_16832_s8(cc, a[q][i], b[2 * j], b[2 * j + 1]);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const float w = q ? dw[i][e >> 1].y : dw[i][e >> 1].x;
                            const float v = __int_as_float(cc[e] + kBias) - off[e & 1];
                            acc[i][j][e] = fmaf(w * d[e & 1], v, acc[i][j][e]);
                        }
                    }
                }
            }
        }
    };
    // The ring: stages 0 .. kStages-2 in flight before the first product; weights before the
    // PDL wait (no kernel of the step writes them), activations after.
    for (int st = 0; st < C::kStages - 1; ++st)
        if (st < nst) load_w(st, st);
    pdl_wait();
    for (int st = 0; st < C::kStages - 1; ++st) {
        if (st < nst) load_x(st, st);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    for (int st = 0; st < nst; ++st) {
        asm volatile("cp.async.wait_group %0;" ::"n"(C::kStages - 2) : "memory");
        __syncthreads();
        const int nx = st + C::kStages - 1;  // into the slot every warp finished last round
        if (nx < nst) {
            load_w(nx % C::kStages, nx);
            load_x(nx % C::kStages, nx);
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
        if (tok0 < n_tok) compute(st % C::kStages);
    }
    asm volatile("cp.async.wait_all;" ::: "memory");
    __syncthreads();
    // The warps' sums: red[k-split warp][row 0..31][token].
    float* red = reinterpret_cast<float*>(sm);
    if (tok0 < n_tok) {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 2; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = i * 16 + g + 8 * (e >> 1), t = tok0 + j * 8 + 2 * c + (e & 1);
                    red[(kw * 32 + r) * C::kT + t] = acc[i][j][e];
                }
    }
    __syncthreads();
    auto total = [&](int r, int t) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < C::kKW; ++w) v += red[(w * 32 + r) * C::kT + t];
        return v;
    };
    if (swiglu) {
        if (!tp.ok[0] || !tp.ok[1]) return;
        for (int e = tid; e < 16 * n_tok; e += 128) {
            const int r = e % 16, t = e / 16;
            const float gt = total(r, t), up = total(16 + r, t);
            m.y[0][int64_t(t) * m.rows[0] + tp.row0[0] + r] = gt / (1.0f + __expf(-gt)) * up;
        }
        return;
    }
    for (int e = tid; e < 32 * n_tok; e += 128) {
        const int rr = e % 32, t = e / 32, i = rr / 16;
        if (!(i ? tp.ok[1] : tp.ok[0])) continue;
        const int mi = i ? tp.mat[1] : tp.mat[0];
        float* y =
            pick(m.y, mi) + int64_t(t) * pick(m.rows, mi) + (i ? tp.row0[1] : tp.row0[0]) + rr % 16;
        const float v = total(rr, t);
        if (mode == int(GemvMode::accumulate))
            *y += v;
        else
            *y = v;
    }
}

// Launches gemm_q8act_mma_kernel<kQ4, NT> (its shared memory raised past 48 KB once).
template <bool kQ4, int NT>
void launch_q8act_mma(int64_t tiles, const Mats& m, const Act& x, GemvMode mode, int n_tok,
                      cudaStream_t s) {
    using C = MmaCfg<kQ4, NT>;
    static bool attr = false;
    if (!attr) {
        LLM8_CUDA_CHECK(cudaFuncSetAttribute(
            gemm_q8act_mma_kernel<kQ4, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem));
        attr = true;
    }
    launch_pdl(gemm_q8act_mma_kernel<kQ4, NT>, unsigned(tiles), 128, size_t(C::kSmem), s, m, x,
               int(mode), n_tok);
}

// Persistent variant: a grid that fits on the GPU at once; each warp walks the row pairs
// p, p + (all warps), ... in steps of U pieces per row, and the loads of the next step are
// issued before the dot products of the current one (double buffering in registers), so
// every warp keeps a step of weights in flight all the time instead of one burst per pair.
template <class F>
__global__ void __launch_bounds__(kThreads)
    gemv_decode_persist_kernel(Mats m, Act x, Rope rope, int mode, int64_t n_pairs) {
    pdl_trigger();
    constexpr int U = F::kUnrollPersist;
    const int lane = threadIdx.x & 31;
    const int64_t stride = int64_t(gridDim.x) * kWarps;
    int64_t pair = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int64_t nb = m.K / 32, np = m.K / F::kPieceElems;
    const int rounds = int((np + 32 * U - 1) / (32 * U));
    const bool swiglu = mode == int(GemvMode::swiglu);
    if (pair >= n_pairs) {
        pdl_wait();
        return;
    }
    // Piece offset of round rnd of a pair for this lane.
    auto round_u0 = [&](int rnd) { return lane + int64_t(32) * U * rnd; };
    PairRows pr = pair_rows(m, pair, swiglu);
    int rnd = 0;
    typename F::W wc[U][kRows], wn[U][kRows];
    load_round<F, U>(wc, pr, nb, np, round_u0(0));
    pdl_wait();  // weights are in flight; now the activations may be read
    float acc[kRows] = {};
    while (true) {
        int64_t npair = pair;
        int nrnd = rnd + 1;
        if (nrnd == rounds) {
            npair = pair + stride;
            nrnd = 0;
        }
        const bool more = npair < n_pairs;
        PairRows nr = pr;
        if (more) {
            if (npair != pair) nr = pair_rows(m, npair, swiglu);
            load_round<F, U>(wn, nr, nb, np, round_u0(nrnd));
        }
        dot_round<F, U>(acc, wc, pr, x, np, round_u0(rnd));
        if (rnd == rounds - 1) finish_pair(acc, m, rope, mode, pr, lane);
        if (!more) break;
        pair = npair;
        rnd = nrnd;
        pr = nr;
#pragma unroll
        for (int j = 0; j < U; ++j)
#pragma unroll
            for (int s = 0; s < kRows; ++s) wc[j][s] = wn[j][s];
    }
}

// One warp per 32-element unit, 8 units per block; with a norm every block first reduces the
// whole row (K <= a few 10^4 floats, read from L2) so that no second launch is needed.
template <bool kNorm, bool kQ8>
__global__ void __launch_bounds__(256)
    decode_act_kernel(const float* __restrict__ x, int64_t K, const float* __restrict__ nw,
                      float eps, float* __restrict__ xf, int8_t* __restrict__ xq,
                      float2* __restrict__ xds) {
    pdl_trigger();
    pdl_wait();
    // blockIdx.y: the token (row of x).
    x += int64_t(blockIdx.y) * K;
    if (xf) xf += int64_t(blockIdx.y) * K;
    if (xq) xq += int64_t(blockIdx.y) * K;
    if (xds) xds += int64_t(blockIdx.y) * (K / 32);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float scale = 1.0f;
    if (kNorm) {
        float ss = 0.0f;
        for (int64_t i = tid; i < K / 4; i += 256) {
            const float4 v = reinterpret_cast<const float4*>(x)[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        __shared__ float part[8];
        ss = warp_sum(ss);
        if (lane == 0) part[warp] = ss;
        __syncthreads();
        ss = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; ++w) ss += part[w];
        scale = rsqrtf(ss / float(K) + eps);
    }
    for (int64_t u = int64_t(blockIdx.x) * 8 + warp; u < K / 32; u += int64_t(gridDim.x) * 8) {
        const int64_t i = u * 32 + lane;
        float v = x[i];
        if (kNorm) v = v * scale * nw[i];
        if (!kQ8) {
            xf[i] = v;
            continue;
        }
        quantize_unit_q8(v, lane, xq + u * 32, xds + u);
    }
}

bool decode_disabled() {
    return !tuning().decode_gemv;
}

}  // namespace

ActKind decode_act_kind(const DeviceMatrix& w) {
    if (decode_disabled() || w.ne0 % 32 != 0 || w.ne0 == 0) return ActKind::none;
    if (w.split && (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q8_0 || ksplit_type(w.type)))
        return ActKind::q8;
    if (w.type == GgmlType::F16 && w.row_bytes % 16 == 0 &&
        reinterpret_cast<uintptr_t>(w.data) % 16 == 0)
        return ActKind::f32;
    return ActKind::none;
}

void decode_act(const float* x, int64_t K, const float* norm_w, float eps, ActKind kind, float* xf,
                int8_t* xq, float* xds, cudaStream_t s, int rows) {
    if (K % 32 != 0 || K <= 0)
        fail(ErrorKind::invalid_arg, "decode_act: K must be a multiple of 32");
    if (rows < 1 || rows > 65535) fail(ErrorKind::invalid_arg, "decode_act: bad row count");
    const dim3 blocks(unsigned(ceil_div(K / 32, 8)), unsigned(rows));
    float2* ds = reinterpret_cast<float2*>(xds);
    if (kind == ActKind::q8) {
        if (norm_w)
            launch_pdl(decode_act_kernel<true, true>, blocks, 256, 0, s, x, K, norm_w, eps, xf, xq,
                       ds);
        else
            launch_pdl(decode_act_kernel<false, true>, blocks, 256, 0, s, x, K, norm_w, eps, xf, xq,
                       ds);
    } else if (kind == ActKind::f32) {
        if (!norm_w) fail(ErrorKind::invalid_arg, "decode_act: float activations need a norm");
        launch_pdl(decode_act_kernel<true, false>, blocks, 256, 0, s, x, K, norm_w, eps, xf, xq,
                   ds);
    } else {
        fail(ErrorKind::invalid_arg, "decode_act: no activation kind");
    }
}

bool gemv_decode(const DeviceMatrix* mats, float* const* ys, int count, const DecodeAct& a,
                 GemvMode mode, cudaStream_t s, const RopeFuse* rope, int n_tokens) {
    if (count < 1 || count > kMaxMats || n_tokens < 1) return false;
    if (mode == GemvMode::qkv_rope && n_tokens != 1) return false;
    if (mode == GemvMode::swiglu && (count != 2 || mats[0].ne1 != mats[1].ne1)) return false;
    Rope r = {};
    if (mode == GemvMode::qkv_rope) {
        // Pairs of rows must not straddle two matrices or two heads.
        if (count != 3 || !rope || rope->head_dim % 2 != 0 || rope->n_rot % 2 != 0 ||
            rope->n_rot > rope->head_dim || mats[1].ne1 != mats[2].ne1)
            return false;
        for (int i = 0; i < 3; ++i)
            if (mats[i].ne1 % rope->head_dim != 0) return false;
        r = {rope->pos,
             rope->slot,
             reinterpret_cast<__half*>(rope->kc),
             reinterpret_cast<__half*>(rope->vc),
             rope->bq,
             rope->bk,
             rope->bv,
             rope->factors,
             rope->head_dim,
             rope->n_rot,
             rope->base,
             rope->freq_scale,
             mats[1].ne1};
    }
    const ActKind kind = decode_act_kind(mats[0]);
    if (kind == ActKind::none || kind != a.kind) return false;
    bool mixed = false;
    for (int i = 1; i < count; ++i) mixed = mixed || mats[i].type != mats[0].type;
    if (mixed) {
        // Store / accumulate over int8 activations: one launch per matrix (Q4_K_M's V or
        // down may be q6_K next to q4_K), the activations quantized once.
        if (kind != ActKind::q8 || (mode != GemvMode::store && mode != GemvMode::accumulate))
            return false;
        for (int i = 0; i < count; ++i)
            if (decode_act_kind(mats[i]) != kind || mats[i].ne0 != mats[0].ne0) return false;
        for (int i = 0; i < count; ++i)
            if (!gemv_decode(&mats[i], &ys[i], 1, a, mode, s, nullptr, n_tokens)) return false;
        return true;
    }
    Mats m = {};
    m.count = count;
    m.K = mats[0].ne0;
    int64_t total = 0;
    for (int i = 0; i < count; ++i) {
        if (mats[i].type != mats[0].type || mats[i].ne0 != m.K || decode_act_kind(mats[i]) != kind)
            return false;
        m.data[i] = mats[i].data;
        m.row_bytes[i] = mats[i].row_bytes;
        m.rows[i] = mats[i].ne1;
        m.y[i] = ys[i];
        total += mats[i].ne1;
    }
    const int64_t pairs = mode == GemvMode::swiglu ? mats[0].ne1 : (total + kRows - 1) / kRows;
    const int64_t blocks = (pairs + kWarps - 1) / kWarps;
    if (blocks == 0) return true;
    const Act act = {a.f, a.q, reinterpret_cast<const float2*>(a.ds)};
    // Several tokens of int8 activations: the tensor-core kernel, when every matrix's rows come
    // in whole 16-row tiles (at most 64 tokens).
    bool mma_ok = kind == ActKind::q8 && n_tokens <= 64 && !ksplit_type(mats[0].type);
    for (int i = 0; i < count; ++i) mma_ok = mma_ok && mats[i].ne1 % 16 == 0;
    // LLM8_GEMV_PERSIST=0 / 1 forces the one-shot / persistent kernel for every type.
    const int force = tuning().gemv_persist;
    auto go = [&](auto fmt) {
        using F = decltype(fmt);
        if constexpr (F::kAllKernels) {
            if (n_tokens > 4 && mma_ok) {
                // Tensor cores: every 16-row tile of the group pairs with the next (SwiGLU:
                // gate with up), all tokens (<= 64) in one pass over the weights.
                const int64_t tiles =
                    mode == GemvMode::swiglu ? mats[0].ne1 / 16 : (total / 16 + 1) / 2;
                constexpr bool q4 = F::kMmaQ4;
                if (n_tokens <= 16)
                    launch_q8act_mma<q4, 2>(tiles, m, act, mode, n_tokens, s);
                else if (n_tokens <= 32)
                    launch_q8act_mma<q4, 4>(tiles, m, act, mode, n_tokens, s);
                else
                    launch_q8act_mma<q4, 8>(tiles, m, act, mode, n_tokens, s);
                return;
            }
        }
        if (n_tokens > 1) {
            // Chunks of up to 16 tokens, each reading the weights once (at most 4 tokens of
            // int8 activations measured faster here than on the tensor-core kernel).
            for (int t0 = 0; t0 < n_tokens; t0 += 16) {
                const int nt = std::min(16, n_tokens - t0);
                Mats mt = m;
                for (int i = 0; i < count; ++i) mt.y[i] = m.y[i] + int64_t(t0) * m.rows[i];
                const Act at = {act.f ? act.f + t0 * m.K : nullptr,
                                act.q ? act.q + t0 * m.K : nullptr,
                                act.ds ? act.ds + t0 * (m.K / 32) : nullptr};
                bool done = false;
                if constexpr (F::kAllKernels) {
                    if (nt <= 4) {
                        launch_pdl(gemv_decode_tokens_kernel<F, 4>, unsigned(blocks), kThreads, 0,
                                   s, mt, at, int(mode), nt);
                        done = true;
                    }
                }
                if (!done)
                    launch_pdl(gemv_decode_tokens_kernel<F, 16>, unsigned(blocks), kThreads, 0,
                               s, mt, at, int(mode), nt);
            }
            return;
        }
        const bool persist = F::kAllKernels && (force < 0 ? F::kPersistent : force == 1);
        if (!persist) {
            launch_pdl(gemv_decode_kernel<F>, unsigned(blocks), kThreads, 0, s, m, act, r,
                       int(mode));
            return;
        }
        if constexpr (F::kAllKernels) {
            // As many blocks as are resident at once (queried once per format), at most one pair
            // per warp.
            static int per_sm = 0, sms = 0;
            if (per_sm == 0) {
                int dev = 0;
                LLM8_CUDA_CHECK(cudaGetDevice(&dev));
                LLM8_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
                LLM8_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                    &per_sm, gemv_decode_persist_kernel<F>, kThreads, 0));
                per_sm = std::max(per_sm, 1);
            }
            const int64_t grid = std::min<int64_t>(blocks, int64_t(per_sm) * sms);
            launch_pdl(gemv_decode_persist_kernel<F>, unsigned(grid), kThreads, 0, s, m, act, r,
                       int(mode), pairs);
        }
    };
    switch (mats[0].type) {
        case GgmlType::Q4_0:
            go(FmtQ4_0{});
            break;
        case GgmlType::Q8_0:
            go(FmtQ8_0{});
            break;
        case GgmlType::F16:
            go(FmtF16{});
            break;
        default:
            return ksplit_dispatch(mats[0].type, go);
    }
    return true;
}

void ksplit_unit_ints_gpu(const DeviceMatrix& w, const int8_t* xq, const float* xds, int* I,
                          int* J, cudaStream_t s) {
    if (!w.split || !ksplit_type(w.type))
        fail(ErrorKind::invalid_arg, "ksplit_unit_ints_gpu: not a K split matrix");
    const int64_t total = w.ne1 * (w.ne0 / 32);
    if (total == 0) return;
    const Act x = {nullptr, xq, reinterpret_cast<const float2*>(xds)};
    ksplit_dispatch(w.type, [&](auto fmt) {
        (void)fmt;
        constexpr GgmlType T = decltype(fmt)::kType;
        ksplit_ints_kernel<T><<<unsigned(ceil_div(total, 256)), 256, 0, s>>>(
            w.data, w.row_bytes, w.ne0, w.ne1, x, I, J);
    });
    LLM8_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda
}  // namespace llm8
