// sample_cluster_sm90: one token per row of a [batch, vocab] fp32 logits buffer, drawn from the
// CPU chain's distribution (llm8/sampling.h) without sorting the vocabulary.
//
// With a workspace, llm8_sample_cuda runs sample_topk_sm90 first: rows with a small top-k and
// greedy rows end there, and this kernel samples only the rows it leaves pending (top-p or
// min-p alone, large k, bias, penalties, +inf logits, heavy ties at the top), or every row when
// there is no workspace or top-n logprobs are asked for.
//
// Layout. A thread-block cluster (sm_90) of C blocks owns one row; block r copies entries
// [r*slice, (r+1)*slice) of the row into its shared memory once (16-byte streaming loads) and
// every later pass reads shared memory, never HBM again. C is chosen per call: 16 at batch 1 so
// that a 128K-152K row is read by 16 SMs, ~11 at large batches so that three blocks fit per SM.
// Blocks exchange partial results through distributed shared memory (map_shared_rank), one
// cluster barrier per exchange, double-buffered so that one barrier per exchange suffices.
//
// Passes of one row (sample_common.cuh defines d, w, u, g):
//   1. cp.async copies the slice into shared memory (all 16-byte copies in flight at once);
//      bias, penalties; block max (argmax, lowest id, for greedy rows). Greedy rows end after
//      the max exchange. A row with +inf logits becomes "0 for +inf, -inf otherwise".
//   2. histogram of the level-0 bins of d (1/8 nat each; float4 reads, one shared atomic per
//      entry, none for the overflow bin where NaN, -inf and everything below 31.9 nats land):
//      counts, and integer masses when top-p alone needs them.
//      Top-k rows (the common configuration) take the fused path: each block measures its bins
//      from its own max and publishes them at the same barrier as the max; the row histogram is
//      the sum of the blocks' histograms shifted by floor((m - M_r) 8 / T), and the gather takes
//      two bins of slack, which provably still contains the whole top-k (fused_merge). One
//      cluster barrier less per row; if the crossing is not found there, the exact path runs.
//   3. common case (top-k small, or a small top-p nucleus): every candidate in the bins up to the
//      crossing bin (one float compare per entry) is gathered into block 0, which applies
//      top-k, top-p and min-p exactly and draws by inverse CDF in id order. Two finishes: at
//      batch <= 4 all 256 threads rank the candidates by counting (finish_rank); above, one
//      warp sorts up to 128 in registers (finish_warp), leaving the SM to other rows' blocks.
//      Two (fused) or three cluster barriers per row in all.
//   4. otherwise (k in the thousands, flat distributions): the top-k and top-p boundaries are
//      found exactly by refining the crossing bin (levels 1 and 2 of g, 256 sub-bins each) until
//      it holds <= 512 candidates, which are gathered and ranked; then one pass sums the kept
//      integer weights per 32-entry task, and the block and the task where the cumulative
//      weight crosses floor(u * total) are found with warp scans (inverse CDF in id order).
//
// Where the time goes (H200, V = 128256, top-k 50 + top-p 0.9; bench/sampling/NOTES.md): at
// batch 1 ~10 us for launch + load + the first exchange, ~2 us per further exchange, ~5 us for
// the finish in block 0; the histogram's atomics cost ~0.3 us. At batch 256 the rows in flight
// (three blocks per SM, ~36 rows) times the per-row latency bound the throughput, not HBM
// (0.8 TB/s effective). The passes over shared memory are cheap: ~2 instructions per logit for
// the max, ~5 and one atomic for the histogram, ~3 for the gather test (v1 spent ~60 and ran
// 2x slower at large batches).
//
// Tried and rejected:
//   - FlashInfer-style rejection sampling (pivot rounds): a random number of passes, several
//     uniforms per draw (so the GPU token for a seed differs from the CPU token), and ties at
//     the top-k boundary need extra care. Exact thresholds keep the CPU's token for the same
//     (seed, draw index) up to rounding of the weights.
//   - radix select on the raw float bits: the top bits of real logits fall in a handful of
//     buckets, so shared-memory atomics serialize 16-32 ways; bins of d spread the bulk of the
//     row over ~200 bins and put the few tokens that matter near the max in bins of their own.
//   - float atomics for masses: order-dependent sums make top-p boundaries and draws depend on
//     scheduling; 64-bit integer weights are exact.
//   - one block per row: at batch 1 one SM reads 0.5 MB alone (the anchor's weak spot).
//   - a histogram window of 8 nats with a retry beyond it (to spare atomics): slower.
//   - rolled bitonic loops in finish_warp (smaller code): 2.7 us slower per row at batch 1.
//   - serial per-rank remote loads in the histogram reduction: issued all at once now
//     (cluster_bin_sums), though the measured gain was small.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>

#include "cuda/sampling/sample_cluster_sm90.cuh"
#include "cuda/sampling/sample_common.cuh"
#include "sampling/philox.h"

namespace llm8::cuda_sampling {

namespace cg = cooperative_groups;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;  // == kThreads: thread t owns bin t in reductions
constexpr int kCap = 512;   // most candidates gathered into one list
constexpr int kMaxGathers = 8;
constexpr int kMaxGroups = 64;  // groups of 32 tasks of 32 entries: slices up to 64K
constexpr float kInf = __builtin_huge_valf();

struct Item {
    float x;
    int32_t id;
};

enum BoundMode : int { kAll = 0, kByKey = 1, kByG = 2 };

// The last kept element of an ordered prefix. kByKey: order (logit desc, id asc), exact.
// kByG: order (g asc, id asc), used only when more than kCap candidates share one level-2 bin.
struct Bound {
    int mode;
    uint32_t v;
    int32_t id;
};

__device__ __forceinline__ bool within(const Bound& b, uint32_t key, uint32_t g, int32_t id) {
    if (b.mode == kByKey) return key > b.v || (key == b.v && id <= b.id);
    if (b.mode == kByG) return g < b.v || (g == b.v && id <= b.id);
    return true;
}

struct Xchg {  // what a block publishes at one cluster barrier
    float maxv;
    int32_t arg;
    int32_t bad;
    float z1;
    unsigned long long total;
    float res_x;
    int32_t res_id;
};

struct WarpStats {
    float maxv;
    int32_t arg;
};

struct Shared {
    Xchg x[2];                        // by cluster-barrier parity
    uint32_t hc[2][kBins];            // local histogram counts, by histogram parity
    unsigned long long hm[2][kBins];  // local histogram masses
    uint32_t gc0[kBins];              // level-0 histogram of the cluster, all candidates
    unsigned long long gm0[kBins];
    uint32_t gc[kBins];  // scratch histogram of the cluster
    unsigned long long gm[kBins];
    Item list[2][kCap];  // gathered candidates, by gather parity
    Item sorted[kCap];
    uint32_t gcount[kMaxGathers];
    unsigned long long group_sum[kMaxGroups];
    unsigned long long red_u64[kWarps];
    float red_f[kWarps];
    WarpStats ws[kWarps];
    float rank_max[16];  // fused path: every block's max
    int32_t bi[8];       // block-wide broadcasts
    unsigned long long bu[4];
    float bf[4];
};

struct Row {
    float m;      // max logit after bias and penalties (0 when +inf logits were mapped to 0)
    float inv_t;  // 1/T (clamped to FLT_MAX / 8); 1 for greedy rows; 0 for T = +inf
    __device__ __forceinline__ bool cand(float x) const { return x > -kInf; }  // NaN: false
    __device__ __forceinline__ float dist(float x) const { return (m - x) * inv_t; }
};

__device__ __forceinline__ void argmax_combine(float& v, int32_t& a, float ov, int32_t oa) {
    if (ov > v || (ov == v && oa < a)) {
        v = ov;
        a = oa;
    }
}

struct RowSampler {
    Shared& sm;
    float* s;                  // [slice] this block's part of the row
    unsigned long long* task;  // [slice / 32] per-task weight sums
    const llm8_sampling_args& a;
    cg::cluster_group cl;
    int C, rank, tid, lane, warp, row, s0, n, n4, ntasks;
    float scale;  // 2^shift
    int xs = 0;   // cluster barriers so far
    int hp = 0;   // histogram buffer parity
    int gi = 0;   // gathers so far
    llm8_sampling_row_params p;
    Row r;
    int32_t argmax = -1;
    float z1 = 1.0f;  // softmax normalizer at T = 1 (for logprobs)

    __device__ RowSampler(Shared& sm_, unsigned char* dyn, const llm8_sampling_args& a_, int slice,
                          float scale_)
        : sm(sm_), a(a_), cl(cg::this_cluster()) {
        s = reinterpret_cast<float*>(dyn);
        task = reinterpret_cast<unsigned long long*>(dyn + size_t(slice) * sizeof(float));
        C = int(cl.num_blocks());
        rank = int(cl.block_rank());
        tid = int(threadIdx.x);
        lane = tid & 31;
        warp = tid >> 5;
        row = int(blockIdx.y);
        s0 = rank * slice;
        n = max(0, min(slice, a.vocab - s0));
        n4 = (n + 3) >> 2;  // float4s; the slice is padded with -inf to a multiple of 4
        ntasks = (n + 31) / 32;
        scale = scale_;
    }

    // ---- cluster exchange plumbing --------------------------------------------------------
    __device__ void csync() {
        cl.sync();
        ++xs;
    }
    __device__ Xchg& xw() { return sm.x[xs & 1]; }  // published at the next barrier
    __device__ const Xchg* xr(int rk) { return cl.map_shared_rank(&sm.x[(xs - 1) & 1], rk); }

    __device__ unsigned long long block_sum(unsigned long long v) {
        v = warp_sum(v);
        if (lane == 0) sm.red_u64[warp] = v;
        __syncthreads();
        unsigned long long t = 0;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) t += sm.red_u64[w];
        __syncthreads();
        return t;
    }
    __device__ float block_sum(float v) {
        v = warp_sum(v);
        if (lane == 0) sm.red_f[warp] = v;
        __syncthreads();
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) t += sm.red_f[w];
        __syncthreads();
        return t;
    }
    // Sum of the z1 that the blocks published at the last barrier (fixed order: deterministic).
    __device__ float cluster_z1() {
        if (warp == 0) {
            float z = lane < C ? xr(lane)->z1 : 0.0f;
            z = warp_sum(z);
            if (lane == 0) sm.bf[1] = z;
        }
        __syncthreads();
        const float z = sm.bf[1];
        __syncthreads();
        return z;
    }

    __device__ float logprob(float x) const {
        return (x - r.m) - logf(z1);
    }

    // Bin `tid` of every block's local histogram, summed. All remote loads are issued before
    // the first add (a rolled loop waits ~C distributed-shared-memory round trips).
    __device__ void cluster_bin_sums(const uint32_t* hc, const unsigned long long* hm,
                                     bool want_mass, unsigned long long* cs,
                                     unsigned long long* ms) {
        uint32_t c[16];
#pragma unroll
        for (int rk = 0; rk < 16; ++rk) c[rk] = rk < C ? cl.map_shared_rank(hc, rk)[tid] : 0u;
        unsigned long long t = 0;
#pragma unroll
        for (int rk = 0; rk < 16; ++rk) t += c[rk];
        *cs = t;
        *ms = 0;
        if (want_mass) {
            unsigned long long m[16];
#pragma unroll
            for (int rk = 0; rk < 16; ++rk) m[rk] = rk < C ? cl.map_shared_rank(hm, rk)[tid] : 0ull;
            unsigned long long mt = 0;
#pragma unroll
            for (int rk = 0; rk < 16; ++rk) mt += m[rk];
            *ms = mt;
        }
    }

    // ---- pass 1 ---------------------------------------------------------------------------
    __device__ bool params_bad() const {
        return row_params_bad(p, a);
    }
    __device__ bool penalties_on() const {
        return row_penalties_on(p);
    }

    // Copies the slice into shared memory (padded with -inf to a multiple of 4), applies bias
    // and penalties, and publishes the block's max (and argmax for greedy rows) and bad flag.
    __device__ void load(bool bad, bool vec_ok, bool greedy) {
        const float* src = a.logits + size_t(row) * size_t(a.ld) + s0;
        if (vec_ok) {
            const int nv = n >> 2;
            for (int i = tid; i < nv; i += kThreads) {
                const unsigned sa = unsigned(__cvta_generic_to_shared(s + 4 * i));
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa),
                             "l"(src + 4 * i)
                             : "memory");
            }
            asm volatile("cp.async.commit_group;\n" ::: "memory");
            for (int i = 4 * nv + tid; i < n; i += kThreads) s[i] = __ldcs(src + i);
            asm volatile("cp.async.wait_all;\n" ::: "memory");
        } else {
            for (int i = tid; i < n; i += kThreads) s[i] = __ldcs(src + i);
        }
        for (int i = n + tid; i < 4 * n4; i += kThreads) s[i] = -kInf;
        __syncthreads();

        const bool tinf = p.temperature == kInf;
        bool bad_local = false;
        if (!bad && (p.bias_count > 0 || penalties_on() || tinf)) {
            for (int j = tid; j < p.bias_count; j += kThreads) {
                const int32_t id = a.bias_tokens[p.bias_begin + j];
                const float v = a.bias_values[p.bias_begin + j];
                if (id < 0 || id >= a.vocab || isnan(v)) {
                    bad_local = true;
                } else if (id >= s0 && id < s0 + n) {
                    atomicAdd(&s[id - s0], v);  // NaN + v stays NaN -> -inf below, as on the CPU
                }
            }
            __syncthreads();
            if (penalties_on()) apply_penalties();
            __syncthreads();
            for (int i = tid; i < n; i += kThreads) {
                float x = sanitize(s[i]);
                if (tinf && x > -kInf && x < kInf) x = 0.0f;  // T = +inf: uniform over finite
                s[i] = x;
            }
            __syncthreads();
        }

        const float4* s4 = reinterpret_cast<const float4*>(s);
        float bm = -kInf;
        int32_t ba = INT_MAX;
        if (greedy) {  // argmax, ties to the lowest id, NaN ignored (llm8::argmax)
            for (int i = tid; i < n4; i += kThreads) {
                const float4 v = s4[i];
                if (v.x > bm) {
                    bm = v.x;
                    ba = s0 + 4 * i;
                }
                if (v.y > bm) {
                    bm = v.y;
                    ba = s0 + 4 * i + 1;
                }
                if (v.z > bm) {
                    bm = v.z;
                    ba = s0 + 4 * i + 2;
                }
                if (v.w > bm) {
                    bm = v.w;
                    ba = s0 + 4 * i + 3;
                }
            }
        } else {
            for (int i = tid; i < n4; i += kThreads) {
                const float4 v = s4[i];
                bm = fmaxf(bm, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));  // fmaxf skips NaN
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            argmax_combine(bm, ba, __shfl_xor_sync(kFullMask, bm, o),
                           __shfl_xor_sync(kFullMask, ba, o));
        if (lane == 0) sm.ws[warp] = WarpStats{bm, ba};
        const int any_bad = __syncthreads_or(bad_local ? 1 : 0);
        if (tid == 0) {
            WarpStats t = sm.ws[0];
            for (int w = 1; w < kWarps; ++w)
                argmax_combine(t.maxv, t.arg, sm.ws[w].maxv, sm.ws[w].arg);
            Xchg& X = xw();
            X.maxv = t.maxv;
            X.arg = t.arg;
            X.bad = (bad || any_bad) ? 1 : 0;
        }
    }

    // Penalties of the tokens of the window that fall in this slice (CPU chain, step 2).
    __device__ void apply_penalties() {
        const int32_t* tok = a.penalty_tokens + p.penalty_begin;
        const int cnt_n = p.penalty_count;
        for (int j = tid; j < cnt_n; j += kThreads) {
            const int32_t t = tok[j];
            if (t < s0 || t >= s0 + n) continue;  // also skips ids outside [0, vocab)
            int count;
            if (a.penalty_counts != nullptr) {
                count = a.penalty_counts[p.penalty_begin + j];
                if (count <= 0) continue;
            } else {
                bool first = true;
                for (int k = 0; k < j && first; ++k) first = tok[k] != t;
                if (!first) continue;
                count = 1;
                for (int k = j + 1; k < cnt_n; ++k) count += tok[k] == t;
            }
            float x = s[t - s0];
            x = x > 0.0f ? __fdiv_rn(x, p.repeat_penalty) : __fmul_rn(x, p.repeat_penalty);
            x = __fsub_rn(
                x, __fadd_rn(__fmul_rn(float(count), p.frequency_penalty), p.presence_penalty));
            s[t - s0] = x;
        }
    }

    // ---- histograms -----------------------------------------------------------------------
    // Counts (and integer masses) of the candidates in the bins of `level` inside the bin
    // `prefix` of the level above, restricted to the ordered prefix R; reduced over the cluster
    // into out_c/out_m. Level-0 bin 255 (the overflow: NaN, -inf, u = 0) is never added.
    // The general path's version; the common path uses hist0_pass.
    __device__ void hist_pass(const Row& rr, int level, uint32_t prefix, const Bound& R,
                              bool want_mass, bool want_z1, uint32_t* out_c,
                              unsigned long long* out_m) {
        uint32_t* hc = sm.hc[hp];
        unsigned long long* hm = sm.hm[hp];
        hc[tid] = 0;
        hm[tid] = 0;
        __syncthreads();
        const int sh_match = 24 - 8 * level;
        const int sh_bin = 16 - 8 * level;
        float z = 0.0f;
        for (int base = warp * 32; base < n; base += kThreads) {
            const int i = base + lane;
            const bool valid = i < n;
            const float x = valid ? s[i] : -kInf;
            bool c = valid && rr.cand(x);
            if (want_z1 && c) z += expf(x - r.m);
            uint32_t bin = 0;
            unsigned long long u = 0;
            if (c) {
                const float d = rr.dist(x);
                const uint32_t g = gbin(d);
                if (level > 0 && (g >> sh_match) != prefix) c = false;
                if (c && R.mode != kAll && !within(R, order_key(x), g, s0 + i)) c = false;
                bin = (g >> sh_bin) & 255u;
                if (level == 0 && bin == 255u) c = false;
                if (c && want_mass) u = weight_units(weight(d), scale);
            }
            const unsigned act = __ballot_sync(kFullMask, c);
            if (act == 0) continue;
            const uint32_t b0 = __shfl_sync(kFullMask, bin, __ffs(act) - 1);
            // Degenerate rows (all logits equal, +inf ties) put a whole warp in one bin:
            // one atomic per warp instead of 32 serialized ones.
            if (__all_sync(kFullMask, !c || bin == b0)) {
                const unsigned long long msum = want_mass ? warp_sum(u) : 0ull;
                if (lane == 0) {
                    atomicAdd(&hc[b0], uint32_t(__popc(act)));
                    if (msum) atomicAdd(&hm[b0], msum);
                }
            } else if (c) {
                atomicAdd(&hc[bin], 1u);
                if (u) atomicAdd(&hm[bin], u);
            }
        }
        if (want_z1) {
            z = block_sum(z);
            if (tid == 0) xw().z1 = z;
        }
        csync();
        unsigned long long cs = 0, ms = 0;
        cluster_bin_sums(hc, hm, want_mass, &cs, &ms);
        out_c[tid] = uint32_t(cs);
        out_m[tid] = ms;
        hp ^= 1;
        if (want_z1) z1 = cluster_z1();  // includes a block barrier
        __syncthreads();
    }

    // First bin (in order of decreasing probability) where the running count/mass exceeds tgt;
    // -1 if none. *before: count/mass of the bins before it; *through (optional): the number
    // of candidates in the bins up to and including it.
    __device__ int find_cross(const uint32_t* hcnt, const unsigned long long* hmass, bool by_mass,
                              unsigned long long tgt, unsigned long long* before,
                              unsigned long long* through = nullptr) {
        const unsigned long long cnt = hcnt[tid];
        const unsigned long long v = by_mass ? hmass[tid] : cnt;
        const unsigned long long inc = warp_inclusive_scan(v, lane);
        const unsigned long long cinc = by_mass ? warp_inclusive_scan(cnt, lane) : inc;
        if (lane == 31) {
            sm.red_u64[warp] = inc;
            sm.group_sum[warp] = cinc;
        }
        if (tid == 0) sm.bi[7] = -1;
        __syncthreads();
        unsigned long long off = 0, coff = 0;
        for (int w = 0; w < warp; ++w) {
            off += sm.red_u64[w];
            coff += sm.group_sum[w];
        }
        const unsigned long long excl = off + inc - v;
        if (v > 0 && excl <= tgt && tgt < excl + v) {
            sm.bi[7] = tid;
            sm.bu[3] = excl;
            sm.bu[1] = coff + cinc;
        }
        __syncthreads();
        const int b = sm.bi[7];
        *before = sm.bu[3];
        if (through) *through = sm.bu[1];
        __syncthreads();
        return b;
    }

    // ---- gathers --------------------------------------------------------------------------
    // Every candidate of this slice with pred(i, x) goes into block 0's list (to_all: into
    // every block's list). Ends with a cluster barrier. Returns the gather's number.
    template <class P>
    __device__ int gather(P pred, bool to_all) {
        const int g = gi++;
        Item* dst = sm.list[g & 1];
        uint32_t* counter = cl.map_shared_rank(&sm.gcount[g], 0);
        for (int base = warp * 32; base < n; base += kThreads) {
            const int i = base + lane;
            const bool valid = i < n;
            const float x = valid ? s[i] : -kInf;
            const bool c = valid && pred(i, x);
            const unsigned act = __ballot_sync(kFullMask, c);
            if (act == 0) continue;
            const int leader = __ffs(act) - 1;
            uint32_t slot0 = 0;
            if (lane == leader) slot0 = atomicAdd(counter, uint32_t(__popc(act)));
            slot0 = __shfl_sync(kFullMask, slot0, leader);
            if (c) {
                const uint32_t slot = slot0 + uint32_t(__popc(act & ((1u << lane) - 1u)));
                if (slot < uint32_t(kCap)) {
                    const Item it{x, s0 + i};
                    if (to_all) {
                        for (int rk = 0; rk < C; ++rk) cl.map_shared_rank(dst, rk)[slot] = it;
                    } else {
                        cl.map_shared_rank(dst, 0)[slot] = it;
                    }
                }
            }
        }
        csync();
        return g;
    }
    // Number of items of gather g (remote read for blocks other than 0).
    __device__ int gather_count(int g) {
        const uint32_t c = rank == 0 ? sm.gcount[g] : *cl.map_shared_rank(&sm.gcount[g], 0);
        return int(min(c, uint32_t(kCap)));
    }
    // sm.sorted[0, cnt) = list of gather g by (logit desc, id asc): rank by counting.
    __device__ void sort_list(int g, int cnt) {
        const Item* L = sm.list[g & 1];
        for (int i = tid; i < cnt; i += kThreads) {
            const Item it = L[i];
            const unsigned long long k = rank_key(order_key(it.x), it.id);
            int rk = 0;
            for (int j = 0; j < cnt; ++j) rk += rank_key(order_key(L[j].x), L[j].id) < k;
            sm.sorted[rk] = it;
        }
        __syncthreads();
    }

    // ---- inverse CDF in id order over the cluster ----------------------------------------
    // wfun(i, x): integer weight of slice entry i. Finds the first entry, in id order over the
    // whole row, whose running weight exceeds tgt (draw: tgt = floor(u * total)). Returns the
    // entry's slice index in the block that holds it, -1 in the other blocks; *cross_rank is
    // that block (-1 if the total is 0). With want_z1 also reduces z1 at the same barrier.
    template <class W>
    __device__ int id_walk(W wfun, bool draw, float u01, unsigned long long tgt_in, bool want_z1,
                           int* cross_rank) {
        unsigned long long mine = 0;
        float z = 0.0f;
        for (int t = tid; t < ntasks; t += kThreads) {
            unsigned long long acc = 0;
            for (int j = 0; j < 32; ++j) {
                const int e = 32 * t + ((j + lane) & 31);  // conflict-free: lane l hits bank l+j
                if (e < n) {
                    const float x = s[e];
                    acc += wfun(e, x);
                    if (want_z1 && r.cand(x)) z += expf(x - r.m);
                }
            }
            task[t] = acc;
            mine += acc;
        }
        mine = block_sum(mine);
        if (want_z1) z = block_sum(z);
        if (tid == 0) {
            xw().total = mine;
            xw().z1 = z;
        }
        csync();
        if (warp == 0) {
            const unsigned long long v = lane < C ? xr(lane)->total : 0ull;
            float zz = (want_z1 && lane < C) ? xr(lane)->z1 : 0.0f;
            zz = warp_sum(zz);
            const unsigned long long inc = warp_inclusive_scan(v, lane);
            const unsigned long long total = __shfl_sync(kFullMask, inc, 31);
            unsigned long long tgt = tgt_in;
            if (draw) {
                const double f = floor(double(u01) * double(total));
                tgt = total ? min(total - 1, (unsigned long long)f) : 0ull;
            }
            const unsigned hit = __ballot_sync(kFullMask, lane < C && inc > tgt);
            const int rc = hit ? __ffs(hit) - 1 : -1;
            const unsigned long long before = __shfl_sync(kFullMask, inc - v, rc < 0 ? 0 : rc);
            if (lane == 0) {
                sm.bi[5] = rc;
                sm.bu[2] = tgt - before;
                sm.bf[2] = zz;
            }
        }
        __syncthreads();
        const int rc = sm.bi[5];
        const unsigned long long lt = sm.bu[2];
        if (want_z1) z1 = sm.bf[2];
        __syncthreads();
        *cross_rank = rc;
        if (rank != rc) return -1;

        const int ngroups = (ntasks + 31) / 32;
        for (int gI = warp; gI < ngroups; gI += kWarps) {
            const int t = 32 * gI + lane;
            unsigned long long v = t < ntasks ? task[t] : 0ull;
            v = warp_sum(v);
            if (lane == 0) sm.group_sum[gI] = v;
        }
        __syncthreads();
        if (warp == 0) {
            int e = -1;
            unsigned long long b1, b2, b3;
            const int gsel = warp_find_first_above(
                ngroups, lt, [&](int j) { return sm.group_sum[j]; }, &b1, lane);
            if (gsel >= 0) {
                const unsigned long long l2 = lt - b1;
                const int tn = min(32, ntasks - 32 * gsel);
                const int tsel = warp_find_first_above(
                    tn, l2, [&](int j) { return task[32 * gsel + j]; }, &b2, lane);
                if (tsel >= 0) {
                    const int t = 32 * gsel + tsel;
                    const unsigned long long l3 = l2 - b2;
                    const int en = min(32, n - 32 * t);
                    const int esel = warp_find_first_above(
                        en, l3, [&](int j) { return wfun(32 * t + j, s[32 * t + j]); }, &b3, lane);
                    if (esel >= 0) e = 32 * t + esel;
                }
            }
            if (lane == 0) sm.bi[4] = e;
        }
        __syncthreads();
        const int e = sm.bi[4];
        __syncthreads();
        return e;
    }

    // ---- exact boundary of an ordered prefix ---------------------------------------------
    // The last element of the shortest prefix, in order of decreasing probability (ties: lower
    // id), whose count (by_mass: integer mass) reaches `target`, among candidates within R.
    // (c0, m0): the level-0 histogram restricted to R.
    __device__ Bound resolve(const Row& rr, bool by_mass, unsigned long long target, const Bound& R,
                             const uint32_t* c0, const unsigned long long* m0) {
        unsigned long long tgt = target - 1;  // first element with running value > tgt
        uint32_t prefix = 0;
        const uint32_t* hcnt = c0;
        const unsigned long long* hmass = m0;
        for (int level = 0; level < 3; ++level) {
            unsigned long long before = 0;
            const int b = find_cross(hcnt, hmass, by_mass, tgt, &before);
            if (b < 0 || (level == 0 && b == 255)) return Bound{kAll, 0u, 0};
            const uint32_t cnt = hcnt[b];
            tgt -= before;
            prefix = (prefix << 8) | uint32_t(b);
            const int sh = 16 - 8 * level;
            if (cnt <= uint32_t(kCap)) {
                const int g = gather(
                    [&](int i, float x) {
                        if (!rr.cand(x)) return false;
                        const uint32_t gg = gbin(rr.dist(x));
                        return (gg >> sh) == prefix && within(R, order_key(x), gg, s0 + i);
                    },
                    true);
                const int m = gather_count(g);
                sort_list(g, m);
                if (warp == 0) {
                    int idx;
                    if (!by_mass) {
                        idx = tgt < (unsigned long long)m ? int(tgt) : m - 1;
                    } else {
                        unsigned long long bf;
                        idx = warp_find_first_above(
                            m, tgt,
                            [&](int j) {
                                return weight_units(weight(rr.dist(sm.sorted[j].x)), scale);
                            },
                            &bf, lane);
                        if (idx < 0) idx = m - 1;
                    }
                    if (lane == 0) sm.bi[6] = idx;
                }
                __syncthreads();
                const int idx = sm.bi[6];
                const Item it = sm.sorted[idx < 0 ? 0 : idx];
                __syncthreads();
                if (m <= 0) return Bound{kAll, 0u, 0};
                return Bound{kByKey, order_key(it.x), it.id};
            }
            if (level == 2) {
                // More than kCap candidates within 2^-19 nats: take them in id order.
                const uint32_t gsel = prefix;
                int rc = -1;
                const int e = id_walk(
                    [&](int i, float x) -> unsigned long long {
                        if (!rr.cand(x)) return 0ull;
                        const float d = rr.dist(x);
                        const uint32_t gg = gbin(d);
                        if (gg != gsel || !within(R, order_key(x), gg, s0 + i)) return 0ull;
                        return by_mass ? weight_units(weight(d), scale) : 1ull;
                    },
                    false, 0.0f, tgt, false, &rc);
                if (tid == 0 && rank == rc) xw().res_id = e >= 0 ? s0 + e : -1;
                csync();
                if (rc < 0) return Bound{kAll, 0u, 0};
                if (tid == 0) sm.bi[6] = xr(rc)->res_id;
                __syncthreads();
                const int32_t id = sm.bi[6];
                __syncthreads();
                if (id < 0) return Bound{kAll, 0u, 0};
                return Bound{kByG, gsel, id};
            }
            hist_pass(rr, level + 1, prefix, R, by_mass, false, sm.gc, sm.gm);
            hcnt = sm.gc;
            hmass = sm.gm;
        }
        return Bound{kAll, 0u, 0};
    }

    // ---- the common path ------------------------------------------------------------------
    // Level-0 histogram of all candidates: counts (and integer masses), optionally z1.
    // (Tried: counting only a window of 8 nats first, to spare the atomics of the bulk of the
    // row, with a retry when top-k reaches beyond it. Slower: the atomics cost ~0.3 us per row,
    // the extra reduction more.)
    __device__ void hist0_pass(bool want_mass, bool want_z1) {
        hist0_local(r.m, want_mass, want_z1);
        csync();
        unsigned long long cs = 0, ms = 0;
        cluster_bin_sums(sm.hc[hp], sm.hm[hp], want_mass, &cs, &ms);
        sm.gc0[tid] = uint32_t(cs);
        sm.gm0[tid] = ms;
        hp ^= 1;
        if (want_z1) z1 = cluster_z1();  // includes a block barrier
        __syncthreads();
    }

    // The block's level-0 histogram with bins measured from `ref` (the row max, or in the fused
    // path this block's own max); publishes z1 relative to ref at the next barrier.
    __device__ void hist0_local(float ref, bool want_mass, bool want_z1) {
        uint32_t* hc = sm.hc[hp];
        unsigned long long* hm = sm.hm[hp];
        hc[tid] = 0;
        hm[tid] = 0;
        __syncthreads();
        const float m = ref, c8 = r.inv_t * 8.0f;
        const float4* s4 = reinterpret_cast<const float4*>(s);
        float z = 0.0f;
        auto one = [&](float x) {
            const float d8 = (m - x) * c8;  // == dist(x) * 8 exactly; NaN and -inf fail below
            if (d8 < 255.0f) {
                const uint32_t bin = uint32_t(d8);
                if (stop_at == 4) {
                    z += float(bin);  // keeps the bin computation alive
                    return;
                }
                atomicAdd(&hc[bin], 1u);
                if (want_mass) {
                    const unsigned long long u = weight_units(weight(d8 * 0.125f), scale);
                    if (u) atomicAdd(&hm[bin], u);
                }
            }
            if (want_z1 && x > -kInf) z += expf(x - m);
        };
        if (m > -kInf && m < kInf) {
            for (int i = tid; i < n4; i += kThreads) {
                const float4 v = s4[i];
                one(v.x);
                one(v.y);
                one(v.z);
                one(v.w);
            }
        }
        if (want_z1 || stop_at == 4) {
            z = block_sum(z);
            if (tid == 0) xw().z1 = z;
        } else {
            __syncthreads();
        }
    }

    // Fused path, after the one barrier that published every block's max and local histogram:
    // the row's level-0 histogram, each block's bins shifted by floor((m - M_r) c8). A block's
    // shifted bin b' of an entry satisfies b' <= floor((m - x) c8) <= b' + 1, so the entries of
    // shifted bins 0..bstar+2 include every entry of value >= the k-th largest (proof in
    // docs/sampling.md); block 0 then selects exactly. shift[] receives the offsets.
    __device__ void fused_merge(bool want_z1) {
        const float* rank_max = sm.rank_max;
        const float c8 = r.inv_t * 8.0f;
        unsigned long long t = 0;
#pragma unroll
        for (int rk = 0; rk < 16; ++rk) {
            uint32_t v = 0;
            if (rk < C && rank_max[rk] > -kInf) {
                const float sh = (r.m - rank_max[rk]) * c8;
                const int b = tid - (sh < 1e6f ? int(sh) : 1000000);
                if (b >= 0) v = cl.map_shared_rank(sm.hc[hp], rk)[b];
            }
            t += v;
        }
        sm.gc0[tid] = uint32_t(t);
        sm.gm0[tid] = 0;
        hp ^= 1;
        if (want_z1) {
            if (warp == 0) {
                float z = 0.0f;
                if (lane < C && rank_max[lane] > -kInf)
                    z = xr(lane)->z1 * expf(rank_max[lane] - r.m);
                z = warp_sum(z);
                if (lane == 0) sm.bf[1] = z;
            }
            __syncthreads();
            z1 = sm.bf[1];
        }
        __syncthreads();
    }

    // Every entry with floor((ref - x) * 8 / T) <= bmax (bmax < 255; NaN and -inf never) into
    // block 0's list: the level-0 bins 0..bmax, measured from ref.
    __device__ int gather_prefix(float ref, int bmax) {
        const int g = gi++;
        if (bmax > 254) bmax = 254;
        Item* dst = cl.map_shared_rank(sm.list[g & 1], 0);
        uint32_t* counter = cl.map_shared_rank(&sm.gcount[g], 0);
        const float m = ref, c8 = r.inv_t * 8.0f,
                    lim = float(bmax + 1);  // bin <= bmax <=> d8 < lim
        const float4* s4 = reinterpret_cast<const float4*>(s);
        for (int base = warp * 32; base < n4; base += kThreads) {
            const int i = base + lane;
            const float4 v = i < n4 ? s4[i] : make_float4(-kInf, -kInf, -kInf, -kInf);
            const float xv[4] = {v.x, v.y, v.z, v.w};
            bool c[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) c[k] = (m - xv[k]) * c8 < lim;
            if (!__any_sync(kFullMask, c[0] || c[1] || c[2] || c[3])) continue;
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const unsigned act = __ballot_sync(kFullMask, c[k]);
                if (act == 0) continue;
                const int leader = __ffs(act) - 1;
                uint32_t slot0 = 0;
                if (lane == leader) slot0 = atomicAdd(counter, uint32_t(__popc(act)));
                slot0 = __shfl_sync(kFullMask, slot0, leader);
                if (c[k]) {
                    const uint32_t slot = slot0 + uint32_t(__popc(act & ((1u << lane) - 1u)));
                    if (slot < uint32_t(kCap)) dst[slot] = Item{xv[k], s0 + 4 * i + k};
                }
            }
        }
        csync();
        return g;
    }

    // Warp 0 of block 0, at most 128 gathered candidates: everything in registers.
    __device__ void finish_warp(int g, int cnt, bool greedy, bool topk_on, bool topp_on, int ntop,
                                unsigned long long s_total, float u01) {
        const Item* L = sm.list[g & 1];
        unsigned long long k[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int i = 32 * j + lane;
            k[j] = i < cnt ? rank_key(order_key(L[i].x), L[i].id) : ~0ull;
        }
        warp_bitonic_sort128(k, lane, pow2_at_least(cnt));  // (logit desc, id asc)
        float x[4];
        int32_t id[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            x[j] = key_value(~uint32_t(k[j] >> 32));
            id[j] = int32_t(uint32_t(k[j]));
        }
        int32_t tok = __shfl_sync(kFullMask, id[0], 0);
        float tx = __shfl_sync(kFullMask, x[0], 0);
        if (!greedy) {
            const int nk = topk_on ? min(p.top_k, cnt) : cnt;
            unsigned long long u[4], c[4];
            float w[4];
            unsigned long long off = 0;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int i = 32 * j + lane;
                w[j] = weight(r.dist(x[j]));
                u[j] = i < nk ? weight_units(w[j], scale) : 0ull;
                c[j] = warp_inclusive_scan(u[j], lane) + off;
                off = __shfl_sync(kFullMask, c[j], 31);
            }
            const unsigned long long S = topk_on ? off : s_total;
            const int keep = keep_after_cuts(c, w, nk, topp_on, p.top_p, S, p.min_p, lane);
            // the kept prefix in id order, then the inverse CDF
            unsigned long long k2[4];
#pragma unroll
            for (int j = 0; j < 4; ++j)
                k2[j] =
                    32 * j + lane < keep
                        ? (static_cast<unsigned long long>(uint32_t(id[j])) << 32) | (k[j] >> 32)
                        : ~0ull;
            warp_bitonic_sort128(k2, lane, pow2_at_least(keep));
            off = 0;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int i = 32 * j + lane;
                u[j] = i < keep ? weight_units(weight(r.dist(key_value(~uint32_t(k2[j])))), scale)
                                : 0ull;
                c[j] = warp_inclusive_scan(u[j], lane) + off;
                off = __shfl_sync(kFullMask, c[j], 31);
            }
            const unsigned long long W = off;
            const double f = floor(double(u01) * double(W));
            const unsigned long long tgt = W ? min(W - 1, (unsigned long long)f) : 0ull;
            int pick = -1;
#pragma unroll
            for (int j = 3; j >= 0; --j) {
                const unsigned b = __ballot_sync(kFullMask, 32 * j + lane < keep && c[j] > tgt);
                if (b) pick = 32 * j + __ffs(b) - 1;
            }
            if (pick < 0) pick = 0;
            const int pj = pick >> 5, pl = pick & 31;
            unsigned long long kk = k2[0];
#pragma unroll
            for (int j = 1; j < 4; ++j)
                if (j == pj) kk = k2[j];
            kk = __shfl_sync(kFullMask, kk, pl);
            tok = int32_t(kk >> 32);
            tx = key_value(~uint32_t(kk));
        }
        if (lane == 0) {
            write_token(tok, tx);
            advance();
        }
        for (int i = lane; i < a.top_n; i += 32) {
            // item i of the sorted list sits in register i / 32 of lane i % 32
            a.out_top_tokens[size_t(row) * a.top_n + i] = -1;
            a.out_top_logprobs[size_t(row) * a.top_n + i] = -kInf;
        }
        __syncwarp();
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int i = 32 * j + lane;
            if (i < ntop && i < cnt && i < a.top_n) {
                a.out_top_tokens[size_t(row) * a.top_n + i] = id[j];
                a.out_top_logprobs[size_t(row) * a.top_n + i] = logprob(x[j]);
            }
        }
    }

    // Block 0, all threads, at most 512 gathered candidates (the default finish). No sort: each
    // thread ranks its candidates by counting over the list, summing on the way the integer
    // mass ranked before them; the top-k / top-p / min-p cuts are then per-candidate tests, and
    // the draw is a second counting pass in id order. Two loops of <= 512 shared-memory
    // broadcasts per thread instead of one warp's ~2K dependent instructions (the warp's
    // bitonic sorts measured ~7 us per row at batch 1, this version ~2).
    __device__ void finish_rank(int g, int cnt, bool greedy, bool topk_on, bool topp_on, int ntop,
                                unsigned long long s_total, float u01) {
        const Item* L = sm.list[g & 1];
        unsigned long long* K = reinterpret_cast<unsigned long long*>(sm.sorted);  // [kCap]
        unsigned long long* U = reinterpret_cast<unsigned long long*>(sm.list[(g + 1) & 1]);
        unsigned long long* UK = &sm.hm[0][0];  // [2 * kBins]
        static_assert(
            sizeof(sm.sorted) >= kCap * 8 && sizeof(sm.list[0]) >= kCap * 8 && 2 * kBins >= kCap,
            "finish_rank's arrays");
        for (int i = tid; i < cnt; i += kThreads) {
            K[i] = rank_key(order_key(L[i].x), L[i].id);
            U[i] = weight_units(weight(r.dist(L[i].x)), scale);
        }
        __syncthreads();
        // my candidates: i0 = tid, i1 = tid + 256
        const int i0 = tid, i1 = tid + kThreads;
        const unsigned long long k0 = i0 < cnt ? K[i0] : ~0ull, k1 = i1 < cnt ? K[i1] : ~0ull;
        int r0 = 0, r1 = 0;
        unsigned long long b0 = 0, b1 = 0;
        for (int f = 0; f < cnt; ++f) {
            const unsigned long long kf = K[f], uf = U[f];
            if (kf < k0) {
                ++r0;
                b0 += uf;
            }
            if (kf < k1) {
                ++r1;
                b1 += uf;
            }
        }
        const int nk = topk_on ? min(p.top_k, cnt) : cnt;
        unsigned long long S = s_total;
        if (topk_on) {
            unsigned long long mine = 0;
            if (i0 < cnt && r0 < nk) mine += U[i0];
            if (i1 < cnt && r1 < nk) mine += U[i1];
            S = block_sum(mine);
        }
        const unsigned long long T = topp_on ? mass_target(S) : 0ull;
        auto kept = [&](int i, int rk, unsigned long long before) {
            if (i >= cnt || rk >= nk) return false;
            if (topp_on && !(before < T)) return false;
            if (p.min_p > 0.0f && !(weight(r.dist(L[i].x)) >= p.min_p)) return false;
            return true;
        };
        const bool kp0 = kept(i0, r0, b0), kp1 = kept(i1, r1, b1);
        if (i0 < cnt) UK[i0] = kp0 ? U[i0] : 0ull;
        if (i1 < cnt) UK[i1] = kp1 ? U[i1] : 0ull;
        if (greedy) {
            if (i0 < cnt && r0 == 0) write_token(L[i0].id, L[i0].x);
            if (i1 < cnt && r1 == 0) write_token(L[i1].id, L[i1].x);
        } else {
            const unsigned long long W = block_sum((kp0 ? U[i0] : 0ull) + (kp1 ? U[i1] : 0ull));
            const double fl = floor(double(u01) * double(W));
            const unsigned long long tgt = W ? min(W - 1, (unsigned long long)fl) : 0ull;
            // running kept weight in id order, through each of my candidates
            const int32_t id0 = i0 < cnt ? L[i0].id : INT_MAX, id1 = i1 < cnt ? L[i1].id : INT_MAX;
            unsigned long long c0 = 0, c1 = 0;
            for (int f = 0; f < cnt; ++f) {
                const int32_t idf = L[f].id;
                const unsigned long long uf = UK[f];
                if (idf <= id0) c0 += uf;
                if (idf <= id1) c1 += uf;
            }
            if (kp0 && c0 > tgt && c0 - U[i0] <= tgt) write_token(L[i0].id, L[i0].x);
            if (kp1 && c1 > tgt && c1 - U[i1] <= tgt) write_token(L[i1].id, L[i1].x);
        }
        if (tid == 0) advance();
        const int listed = min(min(ntop, cnt), a.top_n);
        if (i0 < cnt && r0 < listed) {
            a.out_top_tokens[size_t(row) * a.top_n + r0] = L[i0].id;
            a.out_top_logprobs[size_t(row) * a.top_n + r0] = logprob(L[i0].x);
        }
        if (i1 < cnt && r1 < listed) {
            a.out_top_tokens[size_t(row) * a.top_n + r1] = L[i1].id;
            a.out_top_logprobs[size_t(row) * a.top_n + r1] = logprob(L[i1].x);
        }
        for (int i = listed + tid; i < a.top_n; i += kThreads) {
            a.out_top_tokens[size_t(row) * a.top_n + i] = -1;
            a.out_top_logprobs[size_t(row) * a.top_n + i] = -kInf;
        }
    }

    // Block 0 alone, 129..512 gathered candidates: ranking by counting.
    __device__ void finish_block(int g, int cnt, bool greedy, bool topk_on, bool topp_on, int ntop,
                                 unsigned long long s_total, float u01) {
        sort_list(g, cnt);
        auto u_sorted = [&](int j) { return weight_units(weight(r.dist(sm.sorted[j].x)), scale); };
        int32_t tok = sm.sorted[0].id;
        float tx = sm.sorted[0].x;
        if (!greedy) {
            if (warp == 0) {
                const int nk = topk_on ? min(p.top_k, cnt) : cnt;
                unsigned long long S = s_total;
                if (topk_on) {
                    unsigned long long acc = 0;
                    for (int j = lane; j < nk; j += 32) acc += u_sorted(j);
                    S = warp_sum(acc);
                }
                int keep = nk;
                if (topp_on) {
                    unsigned long long bf;
                    const int j =
                        warp_find_first_above(nk, mass_target(S) - 1, u_sorted, &bf, lane);
                    if (j >= 0) keep = j + 1;
                }
                if (p.min_p > 0.0f) {
                    for (int base = 0; base < keep; base += 32) {
                        const int j = base + lane;
                        const bool low = j < keep && !(weight(r.dist(sm.sorted[j].x)) >= p.min_p);
                        const unsigned mk = __ballot_sync(kFullMask, low);
                        if (mk) {
                            keep = base + __ffs(mk) - 1;
                            break;
                        }
                    }
                    if (keep < 1) keep = 1;
                }
                if (lane == 0) sm.bi[0] = keep;
            }
            __syncthreads();
            const int keep = sm.bi[0];
            Item* byid = sm.list[(g + 1) & 1];  // free: no gather follows
            for (int i = tid; i < keep; i += kThreads) {
                const Item it = sm.sorted[i];
                int rk = 0;
                for (int j = 0; j < keep; ++j) rk += sm.sorted[j].id < it.id;
                byid[rk] = it;
            }
            __syncthreads();
            if (warp == 0) {
                auto u_id = [&](int j) { return weight_units(weight(r.dist(byid[j].x)), scale); };
                unsigned long long acc = 0;
                for (int j = lane; j < keep; j += 32) acc += u_id(j);
                const unsigned long long W = warp_sum(acc);
                const double f = floor(double(u01) * double(W));
                const unsigned long long tgt = W ? min(W - 1, (unsigned long long)f) : 0ull;
                unsigned long long bf;
                const int j = warp_find_first_above(keep, tgt, u_id, &bf, lane);
                if (lane == 0) sm.bi[1] = j < 0 ? 0 : j;
            }
            __syncthreads();
            tok = byid[sm.bi[1]].id;
            tx = byid[sm.bi[1]].x;
        }
        if (tid == 0) {
            write_token(tok, tx);
            advance();
        }
        for (int i = tid; i < a.top_n; i += kThreads) {
            const bool ok = i < ntop && i < cnt;
            a.out_top_tokens[size_t(row) * a.top_n + i] = ok ? sm.sorted[i].id : -1;
            a.out_top_logprobs[size_t(row) * a.top_n + i] = ok ? logprob(sm.sorted[i].x) : -kInf;
        }
    }

    __device__ void finish(int g, int cnt, bool greedy, bool topk_on, bool topp_on, int ntop,
                           unsigned long long s_total, float u01) {
        if (!warp_finish) {
            finish_rank(g, cnt, greedy, topk_on, topp_on, ntop, s_total, u01);
        } else if (cnt <= 128) {
            if (warp == 0) finish_warp(g, cnt, greedy, topk_on, topp_on, ntop, s_total, u01);
        } else {
            finish_block(g, cnt, greedy, topk_on, topp_on, ntop, s_total, u01);
        }
    }

    // ---- outputs --------------------------------------------------------------------------
    __device__ void write_token(int32_t tok, float x) {
        a.out_tokens[row] = tok;
        if (a.out_status) a.out_status[row] = LLM8_SAMPLE_ROW_OK;
        if (a.out_logprobs) a.out_logprobs[row] = logprob(x);
    }
    __device__ void write_error(int status) {
        a.out_tokens[row] = -1;
        if (a.out_status) a.out_status[row] = status;
        if (a.out_logprobs) a.out_logprobs[row] = __int_as_float(0x7fc00000);
        for (int i = 0; i < a.top_n; ++i) {
            a.out_top_tokens[size_t(row) * a.top_n + i] = -1;
            a.out_top_logprobs[size_t(row) * a.top_n + i] = __int_as_float(0x7fc00000);
        }
    }
    __device__ void advance() {
        if (p.flags & LLM8_SAMPLE_ADVANCE_DRAW) a.params[row].draw_index = p.draw_index + 1;
    }
    __device__ unsigned long long mass_target(unsigned long long S) const {
        return top_p_target(p.top_p, S);
    }

    // ---- the row --------------------------------------------------------------------------
    // stop_at (benchmarks only, to time the stages): 0 full; 1 after the max exchange; 2 after
    // the histogram exchange; 3 after the gather (block 0 does not finish); 4 as 2 without the
    // histogram's atomics. Rows stopped early leave their outputs unwritten.
    int stop_at = 0;
    bool fuse = true;  // fused max + histogram exchange for top-k rows (LLM8_SAMPLING_FUSED=0: off)
    // Finish in block 0: false = all threads rank by counting (finish_rank; faster alone, at
    // batch <= 4); true = one warp sorts in registers (finish_warp, up to 128 candidates; at
    // larger batches it leaves the SM to the co-resident blocks of other rows and wins).
    bool warp_finish = false;

    __device__ void run(bool vec_ok) {
        if (tid < kMaxGathers) sm.gcount[tid] = 0;
        p = a.params[row];
        const bool bad = params_bad();
        const bool greedy = !(p.temperature > 0.0f);
        load(bad, vec_ok, greedy);
        // Fused path (top-k rows): the histogram is measured from this block's own max and
        // published at the same barrier as the max, saving one cluster barrier per row.
        bool fused = fuse && !bad && !greedy && p.top_k > 0 && p.top_k < a.vocab && a.top_n == 0;
        float my_max = -kInf;
        if (fused) {
            if (tid == 0) sm.bf[2] = xw().maxv;
            __syncthreads();
            my_max = sm.bf[2];
            r.inv_t = p.temperature == kInf ? 0.0f : fminf(1.0f / p.temperature, 4.2e37f);
            hist0_local(my_max, false, a.out_logprobs != nullptr);
        }
        csync();  // exchange A (and, fused, the histograms)
        if (warp == 0) {
            float mv = -kInf;
            int32_t ma = INT_MAX, bd = 0;
            if (lane < C) {
                const Xchg* X = xr(lane);
                mv = X->maxv;
                ma = X->arg;
                bd = X->bad;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                argmax_combine(mv, ma, __shfl_xor_sync(kFullMask, mv, o),
                               __shfl_xor_sync(kFullMask, ma, o));
                bd |= __shfl_xor_sync(kFullMask, bd, o);
            }
            if (lane == 0) {
                sm.bf[0] = mv;
                sm.bi[0] = ma;
                sm.bi[3] = bd;
            }
        }
        __syncthreads();
        r.m = sm.bf[0];
        argmax = sm.bi[0];
        const bool row_bad = sm.bi[3] != 0;
        if (fused && tid < 16) sm.rank_max[tid] = tid < C ? xr(tid)->maxv : -kInf;
        __syncthreads();
        if (stop_at == 1) {
            cl.sync();
            return;
        }

        if (row_bad || !(r.m > -kInf)) {
            if (rank == 0 && tid == 0) {
                write_error(row_bad ? LLM8_SAMPLE_ROW_BAD_PARAMS : LLM8_SAMPLE_ROW_NO_CANDIDATES);
                advance();
            }
            cl.sync();  // others may still read this block's exchange
            return;
        }
        if (r.m == kInf) {
            fused = false;  // the histograms were measured before the +inf mapping
            // Some logit is +inf: the candidates are the +inf tokens, uniformly (CPU chain).
            float4* s4w = reinterpret_cast<float4*>(s);
            for (int i = tid; i < n4; i += kThreads) {
                float4 v = s4w[i];
                v.x = v.x == kInf ? 0.0f : -kInf;
                v.y = v.y == kInf ? 0.0f : -kInf;
                v.z = v.z == kInf ? 0.0f : -kInf;
                v.w = v.w == kInf ? 0.0f : -kInf;
                s4w[i] = v;
            }
            r.m = 0.0f;
            __syncthreads();
        }
        r.inv_t =
            greedy ? 1.0f
                   : (p.temperature == kInf ? 0.0f
                                            : fminf(1.0f / p.temperature, 4.2e37f));  // *8 finite
        const bool topk_on = !greedy && p.top_k > 0 && p.top_k < a.vocab;
        const bool topp_on = !greedy && p.top_p < 1.0f;
        const bool need_z1 = a.out_logprobs != nullptr || a.top_n > 0;
        const bool need_hist = topk_on || topp_on || a.top_n > 0;
        const float u01 = philox_draw(p.seed, p.draw_index);

        if (fused) {
            fused_merge(need_z1);
            if (stop_at == 2 || stop_at == 4) {
                cl.sync();
                return;
            }
            unsigned long long before = 0, through = 0;
            const int bk = find_cross(sm.gc0, sm.gm0, false, (unsigned long long)(p.top_k - 1),
                                      &before, &through);
            if (bk >= 0 && bk + 2 <= 254) {
                const int bmax = bk + 2;
                const unsigned long long cnt =
                    block_sum(tid <= bmax ? (unsigned long long)sm.gc0[tid] : 0ull);
                if (cnt <= (unsigned long long)kCap) {
                    const float sh = (r.m - my_max) * (r.inv_t * 8.0f);  // as in fused_merge
                    const int mine = sh < 1e6f ? int(sh) : 1000000;
                    const int g = gather_prefix(my_max, my_max > -kInf ? bmax - mine : -1);
                    if (rank != 0 || stop_at == 3) return;
                    finish(g, gather_count(g), false, true, topp_on, 0, 0ull, u01);
                    return;
                }
            }
            // the crossing lies beyond 31.9 nats or too many candidates: the standard path
        }

        if (!need_hist) {
            if (greedy) {
                if (need_z1) {
                    float z = 0.0f;
                    for (int i = tid; i < n; i += kThreads) {
                        const float x = s[i];
                        if (r.cand(x)) z += expf(x - r.m);
                    }
                    z = block_sum(z);
                    if (tid == 0) xw().z1 = z;
                    csync();
                    z1 = cluster_z1();
                }
                if (tid == 0 && argmax >= s0 && argmax < s0 + n)
                    write_token(argmax, s[argmax - s0]);
            } else {
                int rc = -1;
                const float min_p = p.min_p;
                const int e = id_walk(
                    [&](int i, float x) -> unsigned long long {
                        if (!r.cand(x)) return 0ull;
                        const float w = weight(r.dist(x));
                        if (min_p > 0.0f && !(w >= min_p)) return 0ull;
                        return weight_units(w, scale);
                    },
                    true, u01, 0ull, need_z1, &rc);
                if (tid == 0 && e >= 0) write_token(s0 + e, s[e]);
            }
            if (rank == 0 && tid == 0) advance();
            cl.sync();
            return;
        }

        // pass 2: level-0 histogram of all candidates
        const bool mass0 = topp_on && !topk_on;
        hist0_pass(mass0, need_z1);
        if (stop_at == 2 || stop_at == 4) {
            cl.sync();
            return;
        }
        const unsigned long long s_total = mass0 ? block_sum(sm.gm0[tid]) : 0ull;
        int ntop = 0;
        if (a.top_n > 0) {  // candidates within the window (the top-n list stops there)
            const unsigned long long n_in = block_sum((unsigned long long)sm.gc0[tid]);
            ntop = int(min((unsigned long long)a.top_n, n_in));
        }

        // the common case: everything that matters fits in one list in block 0. The candidates
        // through the crossing bin are counted by the same scan that finds it.
        bool pg = greedy || topk_on || topp_on;
        int bstar = -1;
        unsigned long long cnt_prefix = 0, before = 0, through = 0;
        if (topk_on) {
            bstar = find_cross(sm.gc0, sm.gm0, false, (unsigned long long)(p.top_k - 1), &before,
                               &through);
            cnt_prefix = through;
        } else if (topp_on) {
            bstar = find_cross(sm.gc0, sm.gm0, true, mass_target(s_total) - 1, &before, &through);
            cnt_prefix = through;
        }
        if ((topk_on || topp_on) && bstar < 0) pg = false;
        if (ntop > 0) {
            const int b = find_cross(sm.gc0, sm.gm0, false, (unsigned long long)(ntop - 1), &before,
                                     &through);
            if (b < 0) pg = false;
            if (b > bstar) {
                bstar = b;
                cnt_prefix = through;
            }
        }
        if (pg && bstar >= 0 && bstar < 255 && cnt_prefix <= (unsigned long long)kCap) {
            const int g = gather_prefix(r.m, bstar);
            if (rank != 0 || stop_at == 3) return;  // no block reads another block's memory now
            finish(g, gather_count(g), greedy, topk_on, topp_on, ntop, s_total, u01);
            return;
        }

        // general case: exact boundaries, then a cluster-wide draw
        Bound K{kAll, 0u, 0}, P{kAll, 0u, 0};
        if (topk_on)
            K = resolve(r, false, (unsigned long long)p.top_k, Bound{kAll, 0u, 0}, sm.gc0, sm.gm0);
        if (ntop > 0) top_n_general(ntop);
        if (topp_on) {
            hist_pass(r, 0, 0u, K, true, false, sm.gc, sm.gm);
            const unsigned long long S = block_sum(sm.gm[tid]);
            P = resolve(r, true, mass_target(S), K, sm.gc, sm.gm);
        }
        if (greedy) {
            if (tid == 0 && argmax >= s0 && argmax < s0 + n) write_token(argmax, s[argmax - s0]);
        } else {
            int rc = -1;
            const float min_p = p.min_p;
            const int e = id_walk(
                [&](int i, float x) -> unsigned long long {
                    if (!r.cand(x)) return 0ull;
                    const float d = r.dist(x);
                    const float w = weight(d);
                    if (min_p > 0.0f && !(w >= min_p)) return 0ull;
                    if (K.mode != kAll || P.mode != kAll) {
                        const uint32_t key = order_key(x), g = gbin(d);
                        if (!within(K, key, g, s0 + i) || !within(P, key, g, s0 + i)) return 0ull;
                    }
                    return weight_units(w, scale);
                },
                true, u01, 0ull, false, &rc);
            if (tid == 0 && e >= 0) write_token(s0 + e, s[e]);
        }
        if (rank == 0 && tid == 0) advance();
        cl.sync();
    }

    // Top-n outside the common case: bins by logit (T = 1), exact boundary, gather into block 0.
    __device__ void top_n_general(int ntop) {
        Row rl = r;
        rl.inv_t = 1.0f;
        hist_pass(rl, 0, 0u, Bound{kAll, 0u, 0}, false, false, sm.gc, sm.gm);
        Bound N = resolve(rl, false, (unsigned long long)ntop, Bound{kAll, 0u, 0}, sm.gc, sm.gm);
        const int g = gather(
            [&](int i, float x) {
                if (!rl.cand(x)) return false;
                const uint32_t gg = gbin(rl.dist(x));
                if (N.mode == kAll) return (gg >> 16) < 255u;  // beyond 32 nats: not listed
                return within(N, order_key(x), gg, s0 + i);
            },
            false);
        if (rank == 0) {
            const int cnt = gather_count(g);
            sort_list(g, cnt);
            for (int i = tid; i < a.top_n; i += kThreads) {
                const bool ok = i < cnt && i < ntop;
                a.out_top_tokens[size_t(row) * a.top_n + i] = ok ? sm.sorted[i].id : -1;
                a.out_top_logprobs[size_t(row) * a.top_n + i] =
                    ok ? logprob(sm.sorted[i].x) : -kInf;
            }
            __syncthreads();
        }
    }
};

__global__ void __launch_bounds__(kThreads, 3)
    sample_cluster_sm90_kernel(const __grid_constant__ llm8_sampling_args a, int slice, float scale,
                               int vec_ok, int stop_at, int fuse, int warp_finish,
                               const int32_t* pending) {
    // Rows that sample_topk_sm90 finished (pending[row] == 0) are left alone; every block of
    // the cluster leaves before its first barrier. This launch is a programmatic dependent of
    // the top-k kernel: wait for it to complete (and its writes to be visible) first.
    if (pending != nullptr) {
        // the next call's top-k kernel may launch now: it waits for this grid's end itself
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
        asm volatile("griddepcontrol.wait;" ::: "memory");
        if (pending[blockIdx.y] == 0) return;
    }
    __shared__ Shared sm;
    extern __shared__ __align__(16) unsigned char dyn[];
    RowSampler rs(sm, dyn, a, slice, scale);
    rs.stop_at = stop_at;
    rs.fuse = fuse != 0;
    rs.warp_finish = warp_finish != 0;
    rs.run(vec_ok != 0);
}

int g_stop_at = 0;
int g_fuse = 1;
int g_finish_mode = 0;  // 0: by batch size, 1: warp, 2: rank

}  // namespace

ClusterConfig cluster_config(int vocab, int cluster) {
    ClusterConfig c;
    c.cluster = cluster;
    const int per = (vocab + cluster - 1) / cluster;
    c.slice = (per + 31) / 32 * 32;
    c.dyn_smem =
        size_t(c.slice) * sizeof(float) + size_t(c.slice / 32) * sizeof(unsigned long long);
    return c;
}

size_t static_smem_bytes() {
    return sizeof(Shared);
}

cudaError_t prepare_sample_cluster_sm90() {
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    int optin = 0;
    e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    const int dyn_max = optin - int(sizeof(Shared));
    e = cudaFuncSetAttribute(sample_cluster_sm90_kernel,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, dyn_max);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(sample_cluster_sm90_kernel,
                             cudaFuncAttributePreferredSharedMemoryCarveout, 100);
    if (e != cudaSuccess) return e;
    return cudaFuncSetAttribute(sample_cluster_sm90_kernel,
                                cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
}

static void fill_launch(const llm8_sampling_args& a, const ClusterConfig& c, cudaStream_t stream,
                        cudaLaunchConfig_t* cfg, cudaLaunchAttribute* attr) {
    cfg->gridDim = dim3(unsigned(c.cluster), unsigned(a.batch > 0 ? a.batch : 1), 1);
    cfg->blockDim = dim3(kThreads, 1, 1);
    cfg->dynamicSmemBytes = c.dyn_smem;
    cfg->stream = stream;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(c.cluster);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg->attrs = attr;
    cfg->numAttrs = 1;
}

int max_active_clusters(const ClusterConfig& c) {
    llm8_sampling_args a{};
    a.batch = 1;
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr[1];
    fill_launch(a, c, nullptr, &cfg, attr);
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, sample_cluster_sm90_kernel, &cfg) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

cudaError_t launch_sample_cluster_sm90(const llm8_sampling_args& a, const ClusterConfig& c,
                                       cudaStream_t stream, const int32_t* pending, bool pdl) {
    if (a.batch <= 0) return cudaSuccess;
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr[2];
    fill_launch(a, c, stream, &cfg, attr);
    if (pending != nullptr && pdl) {  // launched early, behind the top-k kernel
        attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[1].val.programmaticStreamSerializationAllowed = 1;
        cfg.numAttrs = 2;
    }
    const float scale = weight_scale(a.vocab);
    const bool vec_ok = rows_16b_aligned(a);
    const int warp_finish = g_finish_mode == 1 || (g_finish_mode == 0 && a.batch > 4);
    return cudaLaunchKernelEx(&cfg, sample_cluster_sm90_kernel, a, c.slice, scale, vec_ok ? 1 : 0,
                              g_stop_at, g_fuse, warp_finish, pending);
}

void set_stage_limit(int stop_at) {
    g_stop_at = stop_at;
}
void set_fused(bool on) {
    g_fuse = on ? 1 : 0;
}
void set_finish_mode(int mode) {
    g_finish_mode = mode;
}

}  // namespace llm8::cuda_sampling
