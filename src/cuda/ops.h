// CUDA operators on device pointers, one per .cu file, callable from host C++ (the tests and
// the forward pass). Layouts follow src/cpu/ops.h; half-precision buffers are uint16_t here
// (IEEE binary16 bits) so that this header needs no CUDA compiler.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "gguf/quants.h"
#include "common/attn_params.h"
#include "common/tensor_types.h"

namespace llm8 {
namespace cuda {

// A weight matrix in device memory, in its file type: ne1 rows of ne0 elements. split: Q4_0 and
// Q8_0 rows repacked at upload as [all quants (16 or 32 bytes per block) | all half scales],
// the same bytes per row as ggml's interleaved blocks, with 16-byte aligned quants for the GEMV;
// K-quants and i-quants repacked on the host into the K split layout of cuda/ksplit.h, whose row
// pitch (row_bytes) is up to 1.09x the file's.
struct DeviceMatrix {
    GgmlType type = GgmlType::F32;
    int64_t ne0 = 0, ne1 = 0;
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;
    bool split = false;
};

// Can this matrix be repacked (Q4_0/Q8_0 with 16-byte aligned rows)?
bool can_split(const DeviceMatrix& w);
// Repacks rows [0, ne1) of ggml blocks at src into the split layout at dst (both on the device,
// distinct buffers of ne1 * row_bytes).
void repack_split(const DeviceMatrix& w, const uint8_t* src, uint8_t* dst, cudaStream_t s);
void gemv_split(const DeviceMatrix& w, const float* x, int n, float* y, cudaStream_t s);
void dequantize_split_f16(const DeviceMatrix& w, int64_t r0, int64_t rows, uint16_t* out,
                          cudaStream_t s);
// The K split recipe's integers (I, J) of every unit of every row of a split K-quant / i-quant
// matrix against one token's int8 activations (xq [K], xds [K / 32] pairs as decode_act writes
// them), computed by the decode kernel's own unpacking: I, J [ne1][K / 32]. For tests.
void ksplit_unit_ints_gpu(const DeviceMatrix& w, const int8_t* xq, const float* xds, int* I,
                          int* J, cudaStream_t s);

// Y[n, ne1] = X[n, ne0] * W^T, n <= 8: streams each weight row once for all n tokens.
void gemv(const DeviceMatrix& w, const float* x, int n, float* y, cudaStream_t s);
// Modes of the decode GEMV (gemv_decode): store writes y; accumulate adds into y (the
// residual); swiglu takes (gate, up) and writes silu(gate x) * (up x) to ys[0];
// qkv_rope: Q, K, V with bias + RoPE (adjacent-pair layout) + the store of K and V to the half
// cache in the epilogue, as rope_store does it (see RopeFuse).
enum class GemvMode { store = 0, accumulate = 1, swiglu = 2, qkv_rope = 3 };
// The decode path (one token, gemv_decode.cu). Activations take the form the weights' GEMV
// reads: int8 per 32-element unit with a float scale and the unit's integer sum (q8; Q4_0 and
// Q8_0 in the split layout, K-quants and i-quants in the K split layout), or float (f32; F16
// weights). Other types have no decode kernel
// (none) and take gemv(). LLM8_DECODE_GEMV=0 makes every kind none (A/B switch).
enum class ActKind { none = 0, f32 = 1, q8 = 2 };
ActKind decode_act_kind(const DeviceMatrix& w);
struct DecodeAct {
    ActKind kind = ActKind::none;
    const float* f = nullptr;   // f32: [K]
    const int8_t* q = nullptr;  // q8: [K] quants
    const float* ds = nullptr;  // q8: [K / 32] pairs (scale, sum of quants)
};
// One token's activations: x (K floats, K % 32 == 0), times norm_w / rms(x) when norm_w is not
// null, written as float to xf (f32; a norm is required) or quantized to xq / xds (q8).
// rows: tokens, each K floats in x and K outputs (K / 32 pairs) in the outputs.
void decode_act(const float* x, int64_t K, const float* norm_w, float eps, ActKind kind, float* xf,
                int8_t* xq, float* xds, cudaStream_t s, int rows = 1);
// y_i = W_i a for up to 3 matrices of one type and row length, one launch, in the given
// GemvMode (store / accumulate with int8 activations also take matrices of different types: one
// launch per type). Returns
// false (nothing launched) when a matrix has no decode kernel or does not match a.kind.
// For GemvMode::qkv_rope: mats are Q, K, V; ys[0] receives Q after bias and RoPE, K and V go
// to the cache pool at row *slot (pos[0] is the token's position), nothing to ys[1], ys[2];
// with kc and vc null (the INT8 cache, whose write needs whole rows: the decode attention does
// it, AttnParams::new_k) K after bias and RoPE goes to ys[1], V after bias to ys[2].
// Needs RopeLayout::norm, even row counts and head dims.
struct RopeFuse {
    const int32_t* pos = nullptr;
    const int32_t* slot = nullptr;
    uint16_t* kc = nullptr;
    uint16_t* vc = nullptr;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
    const float* factors = nullptr;
    int head_dim = 0, n_rot = 0;
    float base = 10000.0f, freq_scale = 1.0f;
};
// n_tokens > 1: the activations of token t at t * K (t * K / 32 pairs), its outputs at row t
// of each matrix's [n_tokens, rows] output; chunks of 16 tokens each read the weights once
// (not for qkv_rope).
bool gemv_decode(const DeviceMatrix* mats, float* const* ys, int count, const DecodeAct& a,
                 GemvMode mode, cudaStream_t s, const RopeFuse* rope = nullptr,
                 int n_tokens = 1);
// Bias, RoPE of Q and K, and the store of K/V to the half cache pool (token t to row
// slots[t]), for n tokens, in one launch (the INT8 cache: rope_store_i8).
void rope_store(float* q, float* k, const float* v, const float* bq, const float* bk,
                const float* bv, uint16_t* kc, uint16_t* vc, int64_t n, const int32_t* pos,
                const int32_t* slots, int n_head, int n_head_kv, int head_dim, int n_rot,
                RopeLayout layout, float base, float freq_scale, const float* factors,
                cudaStream_t s);

// out[r, 0..ne0) = dequant(W row r) as half, rows [r0, r0+rows).
void dequantize_f16(const DeviceMatrix& w, int64_t r0, int64_t rows, uint16_t* out, cudaStream_t s);
// out[i, :] = dequant(W row ids[i]) as float (embedding lookup).
void get_rows(const DeviceMatrix& w, const int32_t* ids, int n, float* out, cudaStream_t s);
void f32_to_f16(const float* x, uint16_t* y, int64_t n, cudaStream_t s);

// Y = X W^T for any n: gemv for n <= 8, else W dequantized to half in tiles (f16 weights used
// in place) and cuBLAS with float accumulation. ws: half scratch of at least
// matmul_workspace_elems(w, n) elements.
size_t matmul_workspace_elems(const DeviceMatrix& w, int64_t n);
void matmul(const DeviceMatrix& w, const float* x, int64_t n, float* y, uint16_t* ws,
            cublasHandle_t h, cudaStream_t s);

// Per row of n: y = x / rms(x) * w. rows rows, y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int n, float eps,
              cudaStream_t s);
void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos,
          RopeLayout layout, float base, float freq_scale, const float* factors, cudaStream_t s);
void swiglu(float* g, const float* u, int64_t n, cudaStream_t s);
void add(float* y, const float* x, int64_t n, cudaStream_t s);  // y += x
void add_bias(float* y, const float* b, int64_t n, int64_t m, cudaStream_t s);

// Stores n rows of K and V (float) to the half cache pool, token t at row slots[t] (device
// memory, so a captured graph replays with new slots).
void store_kv(const float* k, const float* v, uint16_t* kc, uint16_t* vc, int64_t n,
              const int32_t* slots, int kv_dim, cudaStream_t s);
// Copies whole blocks (block_bytes each, a multiple of 4) of a pool: the copy on write of the
// K/V pools and the INT8 cache's scale pools.
void copy_kv_blocks(void* pool, const int32_t* pairs, int n_pairs, int64_t block_bytes,
                    cudaStream_t s);
// rope_store for the INT8 cache (src/common/attn_recipe.h): bias + RoPE of Q (in place) and K,
// then token t's K minus the layer's mean k_mean [kv_dim] and its V (+ bv when non-null), each
// KV head's head_dim values to int8 with one scale, at pool row slots[t] of k8/v8
// [rows, kv_dim] and ks/vs [rows, n_head_kv]. On the same floats, bit for bit
// cpu::quantize_kv_row_i8. Head dim even and <= 256.
void rope_store_i8(float* q, const float* k, const float* v, const float* bq, const float* bk,
                   const float* bv, const float* k_mean, int8_t* k8, int8_t* v8, float* ks,
                   float* vs, int64_t n, const int32_t* pos, const int32_t* slots, int n_head,
                   int n_head_kv, int head_dim, int n_rot, RopeLayout layout, float base,
                   float freq_scale, const float* factors, cudaStream_t s);

// Attention of a batch of sequences over the paged cache, F16 or INT8 (common/attn_params.h).
// p.ws: float scratch of p.ws_floats elements; the kernels take as many key splits as fit.
size_t attention_workspace_floats(int64_t n_tokens, int n_head, int head_dim, int max_keys);
// The dispatcher: when some sequence has >= 16 queries (head dim 64 or 128), the 8-bit kernel
// of p.mode (sage, int8) or the FP16 tensor-core kernel; the GQA decode kernel when every
// sequence has G*q_len <= 16 (any mode: decode reads the cache as stored); the split-KV
// kernel otherwise. With p.q8 / p.q8_ds the decode kernel also writes its output as int8 (as
// decode_act does); returns true when it did.
bool attention(const AttnParams& p, cudaStream_t s);
// The kernels, for the plan, tests and benchmarks. attention_f16_mma / _decode return false
// (nothing launched) for shapes they have no instance for.
void attention_f16_splitkv(const AttnParams& p, cudaStream_t s);
// Decode on tensor cores over the F16 or the INT8 cache (attention/attn_decode_mma.cu).
bool attention_decode_mma(const AttnParams& p, cudaStream_t s);
bool attention_f16_mma(const AttnParams& p, cudaStream_t s);
void attention_combine(const float* ws, int64_t n_tokens, int n_head, int head_dim, int splits,
                       float* out, cudaStream_t s, int8_t* q8 = nullptr, float* q8_ds = nullptr);
// The 8-bit modes (attention/attn_8bit_mma.cu): p.mode sage or int8 over the F16 or INT8
// cache, head dim 64 or 128; false (nothing launched) otherwise. p.ws8 holds
// attention_8bit_workspace_bytes(...) bytes for p.kv_tiles = attention_kv_tiles(kv_len).
bool attention_8bit_mma(const AttnParams& p, cudaStream_t s);
size_t attention_8bit_workspace_bytes(int n_tokens, int n_head, int n_kv, int head_dim,
                                      int n_seqs, int64_t kv_tiles);
int attention_kv_tiles(const int32_t* kv_len, int n_seqs);  // host kv_len: sum of ceil(/64)
// Where attention_8bit_mma left the quantized operands in p.ws8 (tests compare them with the
// CPU's bit for bit): per 64-key tile t of the batch (sequence s's first is the sum of the
// earlier sequences' tile counts) and KV head hk, index i = t * n_kv + hk: k8 + i*64*hd
// [64][hd], ks + i*64 [64]; v: sage half [64][hd], int8 int8 [hd][64] with key r at
// attention_8bit_vt_pos(r); vs: int8 over the F16 cache [n_seqs][n_kv][hd], over the INT8
// cache [tiles][n_kv][64]; q8 [n_tokens][n_head][hd], qs [n_tokens][n_head].
struct Attn8Scratch {
    const int8_t* k8 = nullptr;
    const float* ks = nullptr;
    const void* v = nullptr;
    const float* vs = nullptr;
    const int8_t* q8 = nullptr;
    const float* qs = nullptr;
};
Attn8Scratch attention_8bit_scratch(const AttnParams& p);
int attention_8bit_vt_pos(int r);
// Which kernel attention takes for head dim hd with G query heads per kv head and at most
// max_q queries per sequence: "mma_sm80", "decode_mma" or "splitkv" (the INT8 cache takes
// "mma_sm80" where the F16 cache would take "splitkv").
const char* attention_kernel_name(int head_dim, int gqa, int max_q);
int attention_decode_max_rows();  // G * q_len bound of the decode kernel

}  // namespace cuda
}  // namespace llm8
