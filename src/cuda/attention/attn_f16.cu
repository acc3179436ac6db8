// attn_f16_splitkv: causal attention over a half-precision KV cache, float math.
//
// Layout: q, out float [n_tokens, n_head*hd]; K/V cache half [n_ctx, n_kv*hd]; query head h
// reads kv head h / (n_head / n_kv). The keys of each (token, head) are split into n_splits
// ranges (flash-decoding): one 128-thread block per (token, head, split); its 4 warps take
// keys round-robin, each lane holding hd/32 dimensions (any hd <= 256), a warp reduction per
// score and an online softmax in float; the warps merge in shared memory and write a partial
// (m, l, acc[hd]); a second kernel merges the splits. Splits are sized so that the grid has
// ~2K blocks whatever the batch: decode (1 token) gets many splits, prefill few.
//
// This is the correctness baseline and the fallback (any head dim <= 256), not a fast path: it
// uses no tensor cores and reads K/V once per query head (GQA heads share only through L2). The
// fast paths live beside it: attn_f16_mma (prefill tiles), attn_decode_mma (decode, all query
// heads of a kv head in one block) and attn_8bit_mma (sage / int8 prefill); this file also
// holds the dispatcher, cuda::attention, that picks among them.
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "cuda/gemv_common.cuh"
#include "cuda/ops.h"

namespace llm8 {
namespace cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxHd = 256;
constexpr int kPer = kMaxHd / 32;  // dims per lane
constexpr int kTargetBlocks = 2048;

// blockIdx.x: query i of the sequence * n_head + head; blockIdx.y: key split; blockIdx.z:
// sequence.
__global__ void __launch_bounds__(kWarps * 32)
    attn_partial_kernel(const AttnParams p, int n_splits) {
    const int seq = blockIdx.z;
    const int i = blockIdx.x / p.n_head, h = blockIdx.x % p.n_head;
    const int q0 = p.q_start[seq], q_len = p.q_start[seq + 1] - q0;
    if (i >= q_len) return;
    const int hd = p.head_dim, hk = h / (p.n_head / p.n_head_kv);
    const int64_t th = int64_t(q0 + i) * p.n_head + h;  // global (token, head)
    const int split = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_keys = p.causal ? p.kv_len[seq] - q_len + i + 1 : p.kv_len[seq];
    // The sequence's keys split evenly over the grid's splits, at least 64 each.
    const int split_keys = max(64, (p.kv_len[seq] + n_splits - 1) / n_splits);
    const int j0 = split * split_keys, j1 = min(n_keys, j0 + split_keys);
    const __half* kc = static_cast<const __half*>(p.kv.k);
    const __half* vc = static_cast<const __half*>(p.kv.v);
    const int64_t kv_dim = p.kv.kv_dim;
    float* ws = p.ws;
    const float scale = p.softmax_scale > 0.f ? p.softmax_scale : rsqrtf(float(hd));

    float qv[kPer], acc[kPer];
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
        const int d = lane + 32 * c;
        qv[c] = d < hd ? p.q[th * hd + d] * scale : 0.0f;
        acc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = j0 + warp; j < j1; j += kWarps) {
        const int64_t row = p.kv.row(seq, j) * kv_dim + int64_t(hk) * hd;
        const __half* kj = kc + row;
        float s = 0.0f;
#pragma unroll
        for (int c = 0; c < kPer; ++c) {
            const int d = lane + 32 * c;
            if (d < hd) s += qv[c] * __half2float(kj[d]);
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        const float m_new = fmaxf(m, s);
        const float corr = __expf(m - m_new), pj = __expf(s - m_new);
        l = l * corr + pj;
        const __half* vj = vc + row;
#pragma unroll
        for (int c = 0; c < kPer; ++c) {
            const int d = lane + 32 * c;
            acc[c] = acc[c] * corr + (d < hd ? pj * __half2float(vj[d]) : 0.0f);
        }
        m = m_new;
    }

    // Merge the warps.
    __shared__ float sm_m[kWarps], sm_l[kWarps];
    __shared__ float sm_acc[kWarps][kMaxHd];
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) sm_acc[warp][d] = acc[i];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w]);
    float* out = ws + (th * n_splits + split) * (hd + 2);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int w = 0; w < kWarps; ++w)
            if (sm_m[w] != -INFINITY) a += sm_acc[w][d] * __expf(sm_m[w] - M);
        out[d] = a;
    }
    if (threadIdx.x == 0) {
        float L = 0.0f;
        for (int w = 0; w < kWarps; ++w)
            if (sm_m[w] != -INFINITY) L += sm_l[w] * __expf(sm_m[w] - M);
        out[hd] = M;
        out[hd + 1] = L;
    }
}

// With q8 (hd % 32 == 0, the decode path's next GEMV reads int8), the output is also written
// quantized, one 32-dim unit per warp, saving the quantize launch of the Wo GEMV.
__global__ void attn_combine_kernel(const float* __restrict__ ws, int hd, int n_splits,
                                    float* __restrict__ out, int8_t* __restrict__ q8,
                                    float2* __restrict__ q8_ds) {
    pdl_trigger();
    pdl_wait();  // launched with launch_pdl: the partials come from the kernel before
    const int th = blockIdx.x;
    const float* p = ws + int64_t(th) * n_splits * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; ++s) M = fmaxf(M, p[s * (hd + 2) + hd]);
    float L = 0.0f;
    for (int s = 0; s < n_splits; ++s) {
        const float ms = p[s * (hd + 2) + hd];
        if (ms != -INFINITY) L += p[s * (hd + 2) + hd + 1] * __expf(ms - M);
    }
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < n_splits; ++s) {
            const float ms = p[s * (hd + 2) + hd];
            if (ms != -INFINITY) a += p[s * (hd + 2) + d] * __expf(ms - M);
        }
        const int64_t o = int64_t(th) * hd + d;
        out[o] = a * inv;
        if (q8)
            quantize_unit_q8(a * inv, int(threadIdx.x & 31), q8 + (o - (o & 31)), q8_ds + o / 32);
    }
}

int choose_splits(int64_t n_tokens, int n_head, int max_keys, int* split_keys) {
    const int64_t heads = std::max<int64_t>(1, n_tokens * n_head);
    int splits = int(std::max<int64_t>(1, kTargetBlocks / heads));
    splits = std::min(splits, std::max(1, ceil_div(max_keys, 64)));
    *split_keys = ceil_div(max_keys, splits);
    return splits;
}

// The most key splits whose partials fit the workspace.
int splits_that_fit(const AttnParams& p) {
    const int64_t per = int64_t(p.n_tokens) * p.n_head * (p.head_dim + 2);
    return int(std::max<int64_t>(1, std::min<int64_t>(1 << 20, int64_t(p.ws_floats) / per)));
}

}  // namespace

size_t attention_workspace_floats(int64_t n_tokens, int n_head, int head_dim, int max_keys) {
    int split_keys;
    int splits = choose_splits(n_tokens, n_head, max_keys, &split_keys);
    // The decode kernel splits per kv head; n_kv >= 1 gives at most this many splits.
    splits = std::max(splits, std::min(528, std::max(1, (max_keys + 31) / 32)));
    return size_t(n_tokens) * size_t(n_head) * size_t(splits) * size_t(head_dim + 2);
}

void attention_combine(const float* ws, int64_t n_tokens, int n_head, int head_dim, int splits,
                       float* out, cudaStream_t s, int8_t* q8, float* q8_ds) {
    if (q8 && head_dim % 32 != 0)
        fail(ErrorKind::invalid_arg, "attention: q8 output needs hd % 32 == 0");
    launch_pdl(attn_combine_kernel, unsigned(n_tokens * n_head), 128, 0, s, ws, head_dim, splits,
               out, q8, reinterpret_cast<float2*>(q8_ds));
}

const char* attention_kernel_name(int head_dim, int gqa, int max_q) {
    if (max_q >= 16 && (head_dim == 64 || head_dim == 128)) return "mma_sm80";
    if (gqa * max_q <= attention_decode_max_rows() && (head_dim == 64 || head_dim == 128))
        return "decode_mma";
    return "splitkv";
}

bool attention(const AttnParams& p, cudaStream_t s) {
    if (p.n_tokens == 0) return false;
    const char* k = attention_kernel_name(p.head_dim, p.n_head / p.n_head_kv, p.max_q);
    if (k[0] == 'm' && p.mode != AttnMode::f16 && attention_8bit_mma(p, s)) return false;
    if (k[0] == 'm' && attention_f16_mma(p, s)) return false;
    if (k[0] == 'd') {
        AttnParams d = p;
        if (p.head_dim % 32 != 0) d.q8 = nullptr, d.q8_ds = nullptr;
        if (attention_decode_mma(d, s)) return d.q8 != nullptr;
    }
    if (p.new_k != nullptr)  // the plan folds the INT8 write in only where the decode kernel runs
        fail(ErrorKind::runtime, "CUDA attention: new INT8 cache rows need the decode kernel");
    // The INT8 cache has no split-KV kernel: a few queries of many heads take the tile kernel.
    if (p.kv.type == KvType::i8 && attention_f16_mma(p, s)) return false;
    attention_f16_splitkv(p, s);
    return false;
}

void attention_f16_splitkv(const AttnParams& p, cudaStream_t s) {
    if (p.head_dim > kMaxHd || p.head_dim < 1)
        fail(ErrorKind::unsupported, "CUDA attention: head dim " + std::to_string(p.head_dim) +
                                         " is not supported (1..256)");
    if (p.kv.type != KvType::f16)
        fail(ErrorKind::unsupported, "CUDA attention: the cache must be f16");
    if (p.n_tokens == 0) return;
    int split_keys;
    const int splits = std::min(choose_splits(p.n_tokens, p.n_head, p.max_kv, &split_keys),
                                splits_that_fit(p));
    const dim3 grid(unsigned(p.max_q * p.n_head), unsigned(splits), unsigned(p.n_seqs));
    attn_partial_kernel<<<grid, kWarps * 32, 0, s>>>(p, splits);
    LLM8_CUDA_CHECK_LAUNCH();
    attn_combine_kernel<<<unsigned(p.n_tokens * p.n_head), 128, 0, s>>>(p.ws, p.head_dim, splits,
                                                                        p.out, nullptr, nullptr);
    LLM8_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda
}  // namespace llm8
