// sample_topk_sm90: the fast path of the GPU sampler for rows with a small top-k (1..64) and for
// greedy rows (top-1): one read of the logits from HBM into registers, no shared-memory copy of
// the row, no histogram and no cluster.
//
// Layout. S blocks of 512 threads share a row (topk_split: 16 at batch 1, 8 up to batch 32,
// then ~256 blocks in all, 1 per row from batch 256); block b streams entries
// [b*slice, (b+1)*slice) in chunks of 8192 (16 per thread, the next chunk's loads in flight
// while the current one is filtered).
//
// Selection, exact. A threshold t is a value with at least k entries >= t: the k-th largest
// entry is then >= t, so every entry of the top-k, ties included, passes "x >= t".
//   - bound(): each thread offers one value (the max of its entries); each warp sorts its 32
//     values and takes its ceil(k/W)-th largest; the smallest of the W warps' picks has at least
//     W * ceil(k/W) >= k values at or above it. Every offering thread must own an entry (a
//     warp of empty lanes would offer -inf and stall the bound).
//   - The first chunk sets t from the threads' maxima; entries >= t go to a shared buffer (one
//     shared atomic per warp and chunk, offsets by a warp scan). When the buffer holds more
//     than 512 entries it is compacted with a bound over its own entries, which raises t;
//     later chunks then append almost nothing.
//   - At the end of the slice the buffer is cut (same bound) to <= 192 entries, which are
//     ranked exactly by (value desc, id asc), by counting: the block's top-k, sorted.
//   - With S > 1 each block writes its sorted top-k (padded with -inf to k) and statistics to
//     the workspace; the last block to finish (an atomic counter per row, reset by that block)
//     merges: with d = ceil(k/S), every list holds d entries >= its d-th, so the smallest d-th
//     entry bounds the row's k-th from below, and only the entries above it are ranked.
// The row's top-k is in the union of the blocks' top-k lists, so the merge is exact.
//
// Finish (warp 0 of the last block) with the cluster kernel's arithmetic (sample_common.cuh):
// integer weights floor(exp(-(m - x)/T) 2^s), top-p on their running sums in order of
// probability, min-p on the float weight, then the inverse CDF in id order at floor(u * W).
// Hence, for the same top-k set, the same token as sample_cluster_sm90 (a test checks it).
//
// Rows it hands back to the cluster kernel (pending = 1): no valid k (top-p or min-p alone,
// k > 64, T = +inf), bias or penalties, a +inf logit, no finite logit, and buffers that
// overflow (thousands of near-equal logits at the top). Bad parameters too: the cluster kernel
// writes their status. Both launches are programmatic dependent launches: the cluster kernel
// is resident before this one ends, and the next call's top-k kernel before it ends; each
// waits (griddepcontrol.wait) for its predecessor's completion before its first read.
//
// Measured (H200, V = 128256, top-k 50 + top-p 0.9, bench/sampling/NOTES.md runs 13-18): B = 1
// / 16 / 64 / 256 in ~15 / 18 / 28 / 52 us with the cluster launch behind it, against 20 / 26 /
// 56 / 156 for the cluster kernel alone. At batch 256 the stream runs at ~2.8 TB/s.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "cuda/sampling/sample_common.cuh"
#include "cuda/sampling/sample_topk_sm90.cuh"
#include "sampling/philox.h"

namespace llm8::cuda_sampling {

namespace {

#ifndef LLM8_TOPK_THREADS  // build-time knobs for sweeps on the GPU machine
#define LLM8_TOPK_THREADS 512
#endif
#ifndef LLM8_TOPK_COMPACT
#define LLM8_TOPK_COMPACT 512
#endif
#ifndef LLM8_TOPK_VEC
#define LLM8_TOPK_VEC 4
#endif
constexpr int kT = LLM8_TOPK_THREADS;
constexpr int kW = kT / 32;
constexpr int kVec = LLM8_TOPK_VEC;            // float4 loads per thread per chunk
constexpr int kChunk = kT * kVec * 4;          // entries per chunk
constexpr int kBuf = 2048;                     // candidate buffer (entries)
constexpr int kCompactAt = LLM8_TOPK_COMPACT;  // compact when a chunk leaves more than this
#ifndef LLM8_TOPK_RANKMAX
#define LLM8_TOPK_RANKMAX 192
#endif
constexpr int kRankMax = LLM8_TOPK_RANKMAX;  // exact ranking of at most this many
constexpr float kInf = __builtin_huge_valf();

struct Cand {
    float x;
    int32_t id;
};

// What a block leaves for the merge.
struct BlockStat {
    float m;        // max of the slice (for the logprob normalizer)
    float z;        // sum of exp(x - m) over the slice
    int32_t flags;  // kFlag*
};

constexpr int kFlagInf = 1;       // some logit is +inf
constexpr int kFlagOverflow = 2;  // too many candidates at the threshold

struct Ws {
    unsigned* counter;  // [B]
    int32_t* pending;   // [B]
    BlockStat* stat;    // [B][kTopkMaxSplit]
    Cand* cand;         // [B][kTopkMaxSplit][kTopkMaxK]
};

size_t align_up(size_t v) {
    return (v + 255) / 256 * 256;
}

Ws ws_layout(void* base, int batch) {
    unsigned char* p = static_cast<unsigned char*>(base);
    Ws w;
    w.counter = reinterpret_cast<unsigned*>(p);
    p += align_up(size_t(batch) * sizeof(unsigned));
    w.pending = reinterpret_cast<int32_t*>(p);
    p += align_up(size_t(batch) * sizeof(int32_t));
    w.stat = reinterpret_cast<BlockStat*>(p);
    p += align_up(size_t(batch) * kTopkMaxSplit * sizeof(BlockStat));
    w.cand = reinterpret_cast<Cand*>(p);
    return w;
}

struct TopkShared {
    Cand buf[2][kBuf];  // candidates, ping-pong for compaction
    Cand list[kTopkMaxK];
    unsigned long long uw[kTopkMaxK];  // finish: integer weights in rank order
    float wq[kW];
    float wm[kW];
    float wz[kW];
    int n[2];
    int flags;
    float u01;  // the draw's uniform
    int last;
};

// k for the fast path, 0 when the row belongs to the cluster kernel.
__device__ __forceinline__ int fast_k(const llm8_sampling_row_params& p,
                                      const llm8_sampling_args& a) {
    if (row_params_bad(p, a) || p.bias_count > 0 || row_penalties_on(p)) return 0;
    if (!(p.temperature > 0.0f)) return 1;  // greedy: the top-1, ties to the lowest id
    if (p.temperature == kInf) return 0;
    if (p.top_k >= 1 && p.top_k <= kTopkMaxK && p.top_k < a.vocab) return p.top_k;
    return 0;
}

__device__ __forceinline__ void stat_merge(float& m, float& z, float om, float oz) {
    if (om > m) {
        z = z * expf(m - om) + oz;  // m = -inf: z = 0
        m = om;
    } else if (om > -kInf) {
        z += oz * expf(om - m);
    }
}

struct Block {
    TopkShared& sh;
    int tid, lane, warp, k;
    float tau = -kInf;  // current threshold, block-uniform
    int cur = 0;        // buffer in use

    // Block-collective: a value with at least k of the values v of warps [0, active) at or
    // above it (-inf when k > 32 * active: no bound).
    __device__ float bound(float v, int active = kW) {
        float s = v;
#pragma unroll
        for (int size = 2; size <= 32; size <<= 1) {
#pragma unroll
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                const float o = __shfl_xor_sync(kFullMask, s, stride);
                const bool desc = (lane & size) == 0;  // the last merge (size 32): all lanes
                const bool lower = (lane & stride) == 0;
                s = (lower == desc) ? fmaxf(s, o) : fminf(s, o);
            }
        }
        const int q = (k + active - 1) / active;
        const float pick = __shfl_sync(kFullMask, s, min(q, 32) - 1);
        if (lane == 0) sh.wq[warp] = pick;
        __syncthreads();
        float t = q > 32 ? -kInf : sh.wq[0];
        for (int w = 1; w < active; ++w) t = fminf(t, sh.wq[w]);
        __syncthreads();
        return t;
    }

    // Warp-collective: reserves `mine` consecutive slots of buffer b for this thread (one
    // shared atomic per warp, offsets by a warp scan) and returns the first.
    __device__ int reserve(int mine, int b) {
        int incl = mine;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int t = __shfl_up_sync(kFullMask, incl, o);
            if (lane >= o) incl += t;
        }
        int base = 0;
        if (lane == 31) base = atomicAdd(&sh.n[b], incl);
        return __shfl_sync(kFullMask, base, 31) + incl - mine;
    }
    // Stores into a reserved slot; past the buffer the row is flagged instead.
    __device__ void put(int b, int pos, Cand c) {
        if (pos < kBuf)
            sh.buf[b][pos] = c;
        else
            atomicOr(&sh.flags, kFlagOverflow);
    }
    // Warp-collective append of (x, id) to buffer b when x >= t (and x is finite or +inf).
    __device__ void push(float x, int32_t id, float t, int b) {
        const bool pred = x >= t && x > -kInf;
        if (!__any_sync(kFullMask, pred)) return;
        const int pos = reserve(pred ? 1 : 0, b);
        if (pred) put(b, pos, Cand{x, id});
    }

    // Raises tau with a bound over the buffer's entries and keeps those at or above it.
    // Returns the new count.
    __device__ int compact(int n) {
        const Cand* src = sh.buf[cur];
        // every thread of the first `active` warps offers the max of at least one entry (a warp
        // with empty lanes could offer -inf and stall the bound)
        const int active = max(1, min(kW, n / 32));
        const int stride = 32 * active;
        float tm = -kInf;
        if (tid < stride)
            for (int i = tid; i < n; i += stride) tm = fmaxf(tm, src[i].x);
        tau = fmaxf(tau, bound(tm, active));
        if (tid == 0) sh.n[cur ^ 1] = 0;
        __syncthreads();
        for (int b0 = 0; b0 < n; b0 += kT) {
            const int i = b0 + tid;
            const Cand c = i < n ? src[i] : Cand{-kInf, 0};
            push(c.x, c.id, tau, cur ^ 1);
        }
        __syncthreads();
        cur ^= 1;
        const int m = min(sh.n[cur], kBuf);
        __syncthreads();  // every thread has read the count before the next appends
        return m;
    }

    // The top-k of the buffer's n entries, sorted, into sh.list; returns their count, or -1
    // when the buffer overflowed or more than kRankMax entries tie at the threshold.
    __device__ int select(int n) {
        if (sh.flags & kFlagOverflow) return -1;
        for (int round = 0; n > kRankMax && round < 3; ++round) n = compact(n);
        if (n > kRankMax || (sh.flags & kFlagOverflow)) return -1;
        // keys into the other buffer, then rank by counting
        unsigned long long* key = reinterpret_cast<unsigned long long*>(sh.buf[cur ^ 1]);
        const Cand* src = sh.buf[cur];
        Cand mine{-kInf, 0};
        unsigned long long my = ~0ull;
        if (tid < n) {
            mine = src[tid];
            my = rank_key(order_key(mine.x), mine.id);
            key[tid] = my;
        }
        __syncthreads();
        if (tid < n) {
            int r = 0;
            for (int j = 0; j < n; ++j) r += key[j] < my;
            if (r < k) sh.list[r] = mine;
        }
        __syncthreads();
        return min(n, k);
    }
};

__global__ void __launch_bounds__(kT)
    sample_topk_sm90_kernel(const __grid_constant__ llm8_sampling_args a, Ws ws, int split,
                            int slice, float scale, int vec_ok, int stop_at) {
    __shared__ TopkShared sh;
    const int row = int(blockIdx.y), blk = int(blockIdx.x);
    const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
    const int s0 = blk * slice;
    const int n = max(0, min(slice, a.vocab - s0));
    const float* src = a.logits + size_t(row) * size_t(a.ld) + s0;
    // Launched as a programmatic dependent (when allowed): wait for the kernel before it (the
    // logits' producer, or the previous call) to complete before reading anything.
    asm volatile("griddepcontrol.wait;" ::: "memory");
    float4 nxt[kVec];
    auto load = [&](int c0, float4(&v)[kVec]) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
            const int e = c0 + 4 * (j * kT + tid);
            if (vec_ok && e + 3 < n) {
                v[j] = __ldcs(reinterpret_cast<const float4*>(src + e));
            } else {
                v[j].x = e < n ? __ldcs(src + e) : -kInf;
                v[j].y = e + 1 < n ? __ldcs(src + e + 1) : -kInf;
                v[j].z = e + 2 < n ? __ldcs(src + e + 2) : -kInf;
                v[j].w = e + 3 < n ? __ldcs(src + e + 3) : -kInf;
            }
        }
    };
    load(0, nxt);  // in flight while the parameters arrive
    // the cluster kernel behind this one may start launching (it waits for this grid's end)
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const llm8_sampling_row_params p = a.params[row];
    const int k = fast_k(p, a);
    if (k == 0) {
        if (blk == 0 && tid == 0) ws.pending[row] = 1;
        return;
    }
    Block B{sh, tid, lane, warp, k};
    const bool want_z = a.out_logprobs != nullptr;
    if (tid == 0) {
        sh.n[0] = 0;
        sh.flags = 0;
    }
    __syncthreads();

    // ---- stream the slice ----------------------------------------------------------------
    float tm = -kInf, tz = 0.0f;  // this thread's max and sum of exp(x - tm)
    float seen_max = -kInf;       // +inf anywhere hands the row back
    int cnt = 0;
    for (int c0 = 0; c0 < n; c0 += kChunk) {
        float x[4 * kVec];
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
            x[4 * j] = nxt[j].x;
            x[4 * j + 1] = nxt[j].y;
            x[4 * j + 2] = nxt[j].z;
            x[4 * j + 3] = nxt[j].w;
        }
        if (c0 + kChunk < n) load(c0 + kChunk, nxt);
        // NaN fails every comparison below and fmaxf skips it: no sanitizing pass
        float cm = -kInf;
#pragma unroll
        for (int e = 0; e < 4 * kVec; ++e) cm = fmaxf(cm, x[e]);
        seen_max = fmaxf(seen_max, cm);
        if (want_z && cm > -kInf) {
            if (cm > tm) {
                tz *= expf(tm - cm);
                tm = cm;
            }
#pragma unroll
            for (int e = 0; e < 4 * kVec; ++e) tz += x[e] > -kInf ? expf(x[e] - tm) : 0.0f;
        }
        if (c0 == 0) B.tau = B.bound(cm);
        int mine = 0;
#pragma unroll
        for (int e = 0; e < 4 * kVec; ++e) mine += x[e] >= B.tau && x[e] > -kInf;
        if (__any_sync(kFullMask, mine != 0)) {
            int pos = B.reserve(mine, B.cur);
#pragma unroll
            for (int j = 0; j < kVec; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    const float v = x[4 * j + q];
                    if (v >= B.tau && v > -kInf)
                        B.put(B.cur, pos++, Cand{v + 0.0f, s0 + c0 + 4 * (j * kT + tid) + q});
                }
        }
        __syncthreads();
        cnt = min(sh.n[B.cur], kBuf);
        const bool overflow = (sh.flags & kFlagOverflow) != 0;
        __syncthreads();  // every thread has read the count before the next appends
        if (overflow) break;
        if (cnt > kCompactAt) cnt = B.compact(cnt);
    }

    // ---- this block's top-k, statistics ----------------------------------------------------
    const int any_inf = __syncthreads_or(seen_max == kInf);
    int nk = B.select(cnt);
    if (stop_at == 1) return;  // benchmarks: the stream and the local selection only
    if (!want_z && tid == 0) {
        sh.wm[0] = -kInf;
        sh.wz[0] = 0.0f;
    }
    if (want_z) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            stat_merge(tm, tz, __shfl_xor_sync(kFullMask, tm, o),
                       __shfl_xor_sync(kFullMask, tz, o));
        if (lane == 0) {
            sh.wm[warp] = tm;
            sh.wz[warp] = tz;
        }
        __syncthreads();
        if (tid == 0) {
            for (int w = 1; w < kW; ++w) stat_merge(sh.wm[0], sh.wz[0], sh.wm[w], sh.wz[w]);
        }
        __syncthreads();
    }
    int flags = (nk < 0 ? kFlagOverflow : 0) | (any_inf ? kFlagInf : 0);

    if (split > 1) {
        const size_t base = size_t(row) * kTopkMaxSplit;
        Cand* out = ws.cand + (base + blk) * kTopkMaxK;
        if (tid < k) out[tid] = tid < nk ? sh.list[tid] : Cand{-kInf, INT_MAX};  // padded
        if (tid == 0) ws.stat[base + blk] = BlockStat{sh.wm[0], sh.wz[0], flags};
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            const unsigned done = atomicAdd(&ws.counter[row], 1u);
            sh.last = done == unsigned(split - 1);
            if (sh.last) ws.counter[row] = 0;  // ready for the next call
        }
        __syncthreads();
        if (!sh.last || stop_at == 2) return;
        __threadfence();
        // ---- merge: the last block ranks the union of the S lists ----------------------------
        // Every list is sorted and padded with -inf to k entries. A bound without any search:
        // with d = ceil(k / S), each list holds d entries >= its d-th, so at least k entries are
        // >= the smallest of the S d-th entries; only those are ranked.
        const int d = (k + split - 1) / split;
        const Cand* lists = ws.cand + base * kTopkMaxK;
        constexpr int kPer = kTopkMaxSplit * kTopkMaxK / kT;
        int2 v[kPer];  // every load issued before the first use: one L2 round trip
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int i = j * kT + tid;  // entry i % k of list i / k
            v[j] = i < split * k ? __ldcg(reinterpret_cast<const int2*>(
                                       lists + size_t(i / k) * kTopkMaxK + i % k))
                                 : make_int2(__float_as_int(-kInf), 0);
        }
        if (tid == 0) {
            sh.n[0] = 0;
            sh.n[1] = 0;
            sh.flags = 0;
        }
        if (tid == 32 && p.temperature > 0.0f)  // the draw's uniform, while the loads fly
            sh.u01 = philox_draw(p.seed, p.draw_index);
        if (warp == 0) {
            BlockStat st{-kInf, 0.0f, 0};
            float dth = kInf;
            if (lane < split) {
                const BlockStat* q = ws.stat + base + lane;
                st = BlockStat{__ldcg(&q->m), __ldcg(&q->z), __ldcg(&q->flags)};
                dth = __ldcg(&lists[size_t(lane) * kTopkMaxK + d - 1].x);
            }
            int f = st.flags;
            float m = st.m, z = st.z;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                f |= __shfl_xor_sync(kFullMask, f, o);
                stat_merge(m, z, __shfl_xor_sync(kFullMask, m, o),
                           __shfl_xor_sync(kFullMask, z, o));
                dth = fminf(dth, __shfl_xor_sync(kFullMask, dth, o));
            }
            if (lane == 0) {
                sh.wm[0] = m;
                sh.wz[0] = z;
                sh.wq[0] = __int_as_float(f);
                sh.wq[1] = dth;
            }
        }
        __syncthreads();
        flags = __float_as_int(sh.wq[0]);
        const float t_merge = sh.wq[1];
        B.cur = 0;
        B.tau = t_merge;
        int total = 0;
        if (!(flags & (kFlagOverflow | kFlagInf))) {
#pragma unroll
            for (int j = 0; j < kPer; ++j) B.push(__int_as_float(v[j].x), v[j].y, t_merge, 0);
            __syncthreads();
            total = min(sh.n[0], kBuf);
            nk = B.select(total);
            if (nk < 0) flags |= kFlagOverflow;
        }
    }

    // ---- finish: warp 0 draws from the sorted top-k ----------------------------------------
    if (split == 1 && tid == 32 && p.temperature > 0.0f) sh.u01 = philox_draw(p.seed, p.draw_index);
    if (split == 1) __syncthreads();
    if (warp != 0 || stop_at == 3) return;
    if (flags != 0 || nk <= 0 || !(sh.list[0].x > -kInf)) {
        if (lane == 0) ws.pending[row] = 1;  // the cluster kernel samples this row
        return;
    }
    const float m = sh.list[0].x;
    const float inv_t = p.temperature > 0.0f ? fminf(1.0f / p.temperature, 4.2e37f) : 1.0f;
    // two candidates per lane: i = lane, lane + 32 (rank order)
    Cand c[2];
    unsigned long long u[2], cum[2];
    float w[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const int i = 32 * j + lane;
        c[j] = i < nk ? sh.list[i] : Cand{-kInf, INT_MAX};
        w[j] = i < nk ? weight((m - c[j].x) * inv_t) : 0.0f;
        u[j] = i < nk ? weight_units(w[j], scale) : 0ull;
    }
    int32_t tok = c[0].id;  // lane 0: the top-1
    tok = __shfl_sync(kFullMask, tok, 0);
    float tx = m;
    if (p.temperature > 0.0f && nk > 1) {
        cum[0] = warp_inclusive_scan(u[0], lane);
        const unsigned long long off = __shfl_sync(kFullMask, cum[0], 31);
        cum[1] = warp_inclusive_scan(u[1], lane) + off;
        const unsigned long long S = __shfl_sync(kFullMask, cum[1], 31);
        const int keep = keep_after_cuts(cum, w, nk, p.top_p < 1.0f, p.top_p, S, p.min_p, lane);
        // inverse CDF in id order: each kept candidate's running weight over the kept ids <= its
        // own, by counting over the list in shared memory (independent loads: no sort, no
        // chain of shuffles; a warp bitonic sort here measured ~1 us slower)
#pragma unroll
        for (int j = 0; j < 2; ++j)
            if (32 * j + lane < nk) sh.uw[32 * j + lane] = u[j];
        __syncwarp();
        unsigned long long run[2] = {0ull, 0ull}, W = 0;
#pragma unroll 4
        for (int j = 0; j < keep; ++j) {
            const int32_t idj = sh.list[j].id;
            const unsigned long long uj = sh.uw[j];
            W += uj;
            run[0] += idj <= c[0].id ? uj : 0ull;
            run[1] += idj <= c[1].id ? uj : 0ull;
        }
        const double f = floor(double(sh.u01) * double(W));
        const unsigned long long tgt = W ? min(W - 1, (unsigned long long)f) : 0ull;
        // the kept candidate with the lowest id whose running weight passes tgt
        int32_t best = INT_MAX;
        float bx = m;
#pragma unroll
        for (int q = 0; q < 2; ++q)
            if (32 * q + lane < keep && run[q] > tgt && c[q].id < best) {
                best = c[q].id;
                bx = c[q].x;
            }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const int32_t ob = __shfl_xor_sync(kFullMask, best, o);
            const float ox = __shfl_xor_sync(kFullMask, bx, o);
            if (ob < best) {
                best = ob;
                bx = ox;
            }
        }
        tok = best;
        tx = bx;
    }
    if (lane == 0) {
        a.out_tokens[row] = tok;
        if (a.out_status) a.out_status[row] = LLM8_SAMPLE_ROW_OK;
        if (a.out_logprobs) a.out_logprobs[row] = (tx - sh.wm[0]) - logf(sh.wz[0]);
        if (p.flags & LLM8_SAMPLE_ADVANCE_DRAW) a.params[row].draw_index = p.draw_index + 1;
        ws.pending[row] = 0;
    }
}

int g_split = 0;
int g_stop_at = 0;
bool g_alone = false;

}  // namespace

size_t topk_workspace_bytes(int batch) {
    const size_t b = size_t(batch > 0 ? batch : 1);
    return align_up(b * sizeof(unsigned)) + align_up(b * sizeof(int32_t)) +
           align_up(b * kTopkMaxSplit * sizeof(BlockStat)) +
           b * kTopkMaxSplit * kTopkMaxK * sizeof(Cand);
}

int topk_split(int batch, int vocab) {
    if (g_split > 0) return std::min(g_split, kTopkMaxSplit);
    // Measured on the H200 (bench/sampling/NOTES.md, runs 15-16), V = 128256, 512 threads:
    // best with 16 blocks at batch 1, then about 256 blocks in all and at most 8 per row
    // (16: 8, 64: 4, 256: 1); more blocks per row cost more in the merge than they save.
    const int b = batch > 0 ? batch : 1;
    int s = b == 1 ? 16 : std::min(8, 256 / b);
    s = std::min(s, (vocab + 2047) / 2048);  // at least ~2K entries per block
    return std::max(1, std::min(s, kTopkMaxSplit));
}

const int32_t* topk_pending(const void* ws, int batch) {
    return ws_layout(const_cast<void*>(ws), batch).pending;
}

cudaError_t launch_sample_topk_sm90(const llm8_sampling_args& a, int split, void* ws,
                                    cudaStream_t stream, bool pdl) {
    if (a.batch <= 0) return cudaSuccess;
    split = std::max(1, std::min(split, kTopkMaxSplit));
    int slice = (a.vocab + split - 1) / split;
    slice = (slice + 3) / 4 * 4;
    split = (a.vocab + slice - 1) / slice;
    const float scale = weight_scale(a.vocab);
    const bool vec_ok = rows_16b_aligned(a);
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(split), unsigned(a.batch), 1);
    cfg.blockDim = dim3(kT, 1, 1);
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, sample_topk_sm90_kernel, a, ws_layout(ws, a.batch), split,
                              slice, scale, vec_ok ? 1 : 0, g_stop_at);
}

void set_topk_split(int split) {
    g_split = split;
}
void set_topk_stage(int stop_at, bool alone) {
    g_stop_at = stop_at;
    g_alone = alone;
}
bool topk_alone() {
    return g_alone;
}

}  // namespace llm8::cuda_sampling
