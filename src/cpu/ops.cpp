// CPU operators. The fast matmul dequantizes a tile of weight rows (our threads) into a float
// buffer and hands it to OpenBLAS sgemm (its own threads), so quantized weights cost one
// dequantization per batch instead of one per token; for one or two tokens it streams the rows
// through vec_dot_row instead (decode is bandwidth-bound: a buffer would only add traffic).
// Rejected: one single-threaded sgemm per tile from each of our threads at once: OpenBLAS
// builds are not all safe for concurrent calls (it failed intermittently on the 16-core GPU
// machine's OpenBLAS, never on Debian's).
#include "cpu/ops.h"

#include "cpu/attn_8bit.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "gguf/quants.h"

namespace llm8 {
namespace cpu {

namespace {
int g_threads = 0;

int g_blas_threads = 0;
void sync_blas_threads(int n) {
    if (n != g_blas_threads) {
        openblas_set_num_threads(n);
        g_blas_threads = n;
    }
}
}  // namespace

void set_threads(int n) {
    g_threads = n;
}
int threads() {
    return g_threads > 0 ? g_threads : omp_get_num_procs();
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(ss / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void matmul_ref(const WeightView& w, const float* x, int64_t n, float* y) {
    std::vector<float> row(static_cast<size_t>(w.ne0));
    for (int64_t r = 0; r < w.ne1; ++r) {
        dequantize_row(w.type, w.row(r), row.data(), w.ne0);
        for (int64_t t = 0; t < n; ++t) {
            double acc = 0;
            const float* xt = x + t * w.ne0;
            for (int64_t i = 0; i < w.ne0; ++i) acc += double(row[size_t(i)]) * xt[i];
            y[t * w.ne1 + r] = float(acc);
        }
    }
}

void matmul_rows(const WeightView& w, const float* x, int64_t n, float* y) {
    const int64_t K = w.ne0, M = w.ne1;
    if (n <= 8) {
        // Small matrices are not worth waking the threads (and suffer badly when a core is busy).
#pragma omp parallel for num_threads(threads()) schedule(static) if (M * K >= (1 << 17))
        for (int64_t r = 0; r < M; ++r)
            for (int64_t t = 0; t < n; ++t)
                y[t * M + r] = vec_dot_row(w.type, w.row(r), x + t * K, K);
        return;
    }
    // More tokens: each row dequantized once (into a per-thread buffer that stays in L1), then
    // a float dot product per token (2-core EPYC, tiny-llama-hd64 Q8_0, batched decode: at 4
    // tokens slower than 4 fused dot products, 188-197 against 227-258 t/s; at 16 faster).
#pragma omp parallel num_threads(threads()) if (M * K >= (1 << 17))
    {
        std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < M; ++r) {
            dequantize_row(w.type, w.row(r), row.data(), K);
            for (int64_t t = 0; t < n; ++t) {
                const float* xt = x + t * K;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int64_t i = 0; i < K; ++i) acc += row[size_t(i)] * xt[i];
                y[t * M + r] = acc;
            }
        }
    }
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y) {
    const int64_t K = w.ne0, M = w.ne1;
    const int nth = threads();
    if (n <= 2) {
        matmul_rows(w, x, n, y);
        return;
    }
    sync_blas_threads(nth);
    if (w.type == GgmlType::F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(M), int(K), 1.0f, x,
                    int(K), reinterpret_cast<const float*>(w.data), int(K), 0.0f, y, int(M));
        return;
    }
    // Tiles of ~8 MB of float weights: dequantized by our threads, multiplied by OpenBLAS's.
    const int64_t tile =
        std::max<int64_t>(16, std::min<int64_t>(M, (int64_t(2) << 20) / std::max<int64_t>(K, 1)));
    // One buffer per calling thread (sessions on several threads each get their own); the
    // OpenMP workers write into the caller's buffer through the captured pointer.
    thread_local std::vector<float> buf;
    buf.resize(size_t(tile * K));
    float* const bp = buf.data();
    for (int64_t r0 = 0; r0 < M; r0 += tile) {
        const int64_t rows = std::min(tile, M - r0);
#pragma omp parallel for num_threads(nth) schedule(static) if (rows * K >= (1 << 16))
        for (int64_t r = 0; r < rows; ++r) dequantize_row(w.type, w.row(r0 + r), bp + r * K, K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(rows), int(K), 1.0f, x,
                    int(K), bp, int(K), 0.0f, y + r0, int(M));
    }
}

void add_bias(float* y, const float* b, int64_t n, int64_t m) {
    for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < m; ++i) y[t * m + i] += b[i];
}

void matmul_t(const WeightView& w, const float* x, int64_t n, float* y) {
    const int64_t K = w.ne1, M = w.ne0;
    std::vector<float> row(static_cast<size_t>(M));
    std::fill(y, y + n * M, 0.0f);
    for (int64_t r = 0; r < K; ++r) {
        dequantize_row(w.type, w.row(r), row.data(), M);
        for (int64_t t = 0; t < n; ++t) {
            const float xr = x[t * K + r];
            float* yt = y + t * M;
            for (int64_t c = 0; c < M; ++c) yt[c] += xr * row[size_t(c)];
        }
    }
}

void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos,
          RopeLayout layout, float base, float freq_scale, const float* factors,
          const RopeYarn* yarn) {
    const int half = n_rot / 2;
    std::vector<float> inv_freq(static_cast<size_t>(half)), mix(static_cast<size_t>(half), 0.0f);
    for (int i = 0; i < half; ++i) {
        inv_freq[size_t(i)] = float(std::pow(double(base), -2.0 * i / n_rot));
        if (factors) inv_freq[size_t(i)] /= factors[i];
        if (yarn && yarn->ext_factor != 0.0f) {
            const float r =
                (float(i) - yarn->corr_low) / std::max(0.001f, yarn->corr_high - yarn->corr_low);
            mix[size_t(i)] = (1.0f - std::min(1.0f, std::max(0.0f, r))) * yarn->ext_factor;
        }
    }
    const float mscale = yarn ? yarn->mscale : 1.0f;
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int i = 0; i < half; ++i) {
            // The original angle and the interpolated one, blended by the YaRN ramp (0 without).
            const float mx = mix[size_t(i)];
            const float interp = float(pos[t]) * freq_scale * inv_freq[size_t(i)];
            const float theta =
                mx == 0.0f ? interp
                           : interp * (1.0f - mx) + float(pos[t]) * inv_freq[size_t(i)] * mx;
            const float c = std::cos(theta) * mscale, s = std::sin(theta) * mscale;
            for (int h = 0; h < n_heads; ++h) {
                float* v = x + (t * n_heads + h) * head_dim;
                const int a = layout == RopeLayout::norm ? 2 * i : i;
                const int b = layout == RopeLayout::norm ? 2 * i + 1 : i + half;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

AttnItem attn_item(const AttnParams& p, int64_t wi) {
    AttnItem it;
    it.row = int(wi / p.n_head);
    it.h = int(wi % p.n_head);
    it.hk = it.h / (p.n_head / p.n_head_kv);
    it.s = int(std::upper_bound(p.q_start, p.q_start + p.n_seqs + 1, it.row) - p.q_start) - 1;
    const int q_len = p.q_start[it.s + 1] - p.q_start[it.s];
    it.i = it.row - p.q_start[it.s];
    it.n_keys = p.causal ? p.kv_len[it.s] - q_len + it.i + 1 : p.kv_len[it.s];
    return it;
}

void attention(const AttnParams& p) {
    if (p.kv.type != KvType::f32 && p.kv.type != KvType::i8)
        fail(ErrorKind::invalid_arg, "CPU attention: the cache must be f32 or int8");
    if (p.mode != AttnMode::f16) {
        attention_8bit(p);
        return;
    }
    const bool i8 = p.kv.type == KvType::i8;
    const int hd = p.head_dim;
    const int64_t q_stride = int64_t(p.n_head) * hd;
    const float scale = p.scale();
    const float* kpool = static_cast<const float*>(p.kv.k);
    const float* vpool = static_cast<const float*>(p.kv.v);
    // Work items: (query row, head); the row's sequence by a search in q_start.
    const int64_t n_work = int64_t(p.n_tokens) * p.n_head;
    int64_t cost = 0;
    for (int s = 0; s < p.n_seqs; ++s)
        cost += int64_t(p.q_start[s + 1] - p.q_start[s]) * p.kv_len[s];
#pragma omp parallel num_threads(threads()) if (cost * p.n_head * hd >= (1 << 16))
    {
        std::vector<float> sc(static_cast<size_t>(std::max(1, p.max_kv)));
        std::vector<float> acc(static_cast<size_t>(hd));
#pragma omp for schedule(dynamic, 4)
        for (int64_t wi = 0; wi < n_work; ++wi) {
            const AttnItem it = attn_item(p, wi);
            const int h = it.h, hk = it.hk, s = it.s, n_keys = it.n_keys;
            const float* qh = p.q + int64_t(it.row) * q_stride + int64_t(h) * hd;
            float mx = -INFINITY;
            for (int j = 0; j < n_keys; ++j) {
                const int64_t row = p.kv.row(s, j);
                float d = 0;
                if (i8) {  // the INT8 cache: smoothed K, one scale per (row, head)
                    const int8_t* kj =
                        static_cast<const int8_t*>(p.kv.k) + row * p.kv.kv_dim + int64_t(hk) * hd;
                    for (int c = 0; c < hd; ++c) d += qh[c] * float(kj[c]);
                    d *= p.kv.k_scale[row * p.n_head_kv + hk];
                } else {
                    const float* kj = kpool + row * p.kv.kv_dim + int64_t(hk) * hd;
                    for (int c = 0; c < hd; ++c) d += qh[c] * kj[c];
                }
                sc[size_t(j)] = d * scale;
                mx = std::max(mx, sc[size_t(j)]);
            }
            float sum = 0;
            for (int j = 0; j < n_keys; ++j) {
                sc[size_t(j)] = std::exp(sc[size_t(j)] - mx);
                sum += sc[size_t(j)];
            }
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int j = 0; j < n_keys; ++j) {
                const int64_t row = p.kv.row(s, j);
                if (i8) {
                    const int8_t* vj =
                        static_cast<const int8_t*>(p.kv.v) + row * p.kv.kv_dim + int64_t(hk) * hd;
                    const float pj = sc[size_t(j)] * p.kv.v_scale[row * p.n_head_kv + hk];
                    for (int c = 0; c < hd; ++c) acc[size_t(c)] += pj * float(vj[c]);
                } else {
                    const float* vj = vpool + row * p.kv.kv_dim + int64_t(hk) * hd;
                    const float pj = sc[size_t(j)];
                    for (int c = 0; c < hd; ++c) acc[size_t(c)] += pj * vj[c];
                }
            }
            float* o = p.out + int64_t(it.row) * q_stride + int64_t(h) * hd;
            const float inv = 1.0f / sum;
            for (int c = 0; c < hd; ++c) o[c] = acc[size_t(c)] * inv;
        }
    }
}

void attention_ref(const float* q, const float* k, const float* v, int64_t n_tokens, int64_t pos0,
                   int n_head, int n_head_kv, int head_dim, float* out) {
    const int gqa = n_head / n_head_kv;
    const int64_t q_stride = int64_t(n_head) * head_dim, kv_stride = int64_t(n_head_kv) * head_dim;
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int h = 0; h < n_head; ++h) {
            const int hk = h / gqa;
            const int64_t n_keys = pos0 + t + 1;
            std::vector<double> s(static_cast<size_t>(n_keys));
            double mx = -INFINITY;
            for (int64_t j = 0; j < n_keys; ++j) {
                double d = 0;
                for (int i = 0; i < head_dim; ++i)
                    d += double(q[t * q_stride + h * head_dim + i]) *
                         k[j * kv_stride + hk * head_dim + i];
                s[size_t(j)] = d / std::sqrt(double(head_dim));
                mx = std::max(mx, s[size_t(j)]);
            }
            double sum = 0;
            for (double& x : s) sum += (x = std::exp(x - mx));
            for (int i = 0; i < head_dim; ++i) {
                double acc = 0;
                for (int64_t j = 0; j < n_keys; ++j)
                    acc += s[size_t(j)] * v[j * kv_stride + hk * head_dim + i];
                out[t * q_stride + h * head_dim + i] = float(acc / sum);
            }
        }
}

void quantize_act_q8(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
    for (int64_t u = 0; u < K / 32; ++u) {
        const float* xu = x + u * 32;
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xu[i]));
        const float du = amax / 127.0f;
        int32_t s = 0;
        for (int i = 0; i < 32; ++i) {
            const int v = amax == 0.0f ? 0 : int(std::nearbyint(xu[i] / du));
            q[u * 32 + i] = int8_t(v);
            s += v;
        }
        d[u] = du;
        sum[u] = s;
    }
}

int32_t dot_unit_q8(GgmlType t, const uint8_t* row, int64_t u, const int8_t* q) {
    const int8_t* x = q + u * 32;
    int32_t s = 0;
    if (t == GgmlType::Q4_0) {
        const uint8_t* qs = row + u * 18 + 2;
        for (int j = 0; j < 16; ++j) {
            s += (int(qs[j] & 0x0F) - 8) * x[j];
            s += (int(qs[j] >> 4) - 8) * x[16 + j];
        }
    } else if (t == GgmlType::Q8_0) {
        const int8_t* qs = reinterpret_cast<const int8_t*>(row + u * 34 + 2);
        for (int j = 0; j < 32; ++j) s += int(qs[j]) * x[j];
    } else {
        fail(ErrorKind::unsupported, "dot_unit_q8: Q4_0 or Q8_0 only");
    }
    return s;
}

void matmul_act_q8_ref(const WeightView& w, const int8_t* q, const float* d, double* y) {
    const size_t bb = w.type == GgmlType::Q4_0 ? 18 : 34;
    for (int64_t r = 0; r < w.ne1; ++r) {
        const uint8_t* row = w.row(r);
        double acc = 0;
        for (int64_t u = 0; u < w.ne0 / 32; ++u) {
            uint16_t h;
            std::memcpy(&h, row + u * int64_t(bb), 2);
            acc += double(fp16_to_fp32(h)) * double(d[u]) * double(dot_unit_q8(w.type, row, u, q));
        }
        y[r] = acc;
    }
}

void swiglu(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace cpu
}  // namespace llm8
