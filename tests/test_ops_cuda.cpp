// test-ops: every CUDA op against the CPU op, on awkward shapes (llama.cpp's
// test-backend-ops habit): token counts 1, 3, 8, 9, 75; KV lengths 1, 113, 4097; GQA 1, 4, 8;
// every weight type. Inputs are fresh random values, outputs are poisoned (NaN) first. Each op
// has its own bound on the normalized MSE: float math 1e-10, half-precision GEMM inputs 1e-5.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "cpu/attn_8bit.h"
#include "cpu/ops.h"
#include "attn_test_util.h"
#include "cuda_test_util.h"
#include "gguf/quants.h"
#include "llm8/error.h"

#ifdef LLM8_HAVE_CUDA
#include "cuda/ksplit.h"
#include "cuda/ops.h"

using llm8::GgmlType;
using llm8_test::Dev;

using llm8_test::nmse;
using llm8_test::randn;

namespace {

// The paged-cache case of an attention test's shape (n_head, n_kv, hd, block, q_len, kv_len),
// built: half rounds K and V to half first (the GPU's F16 pools); k_bias adds K's channel
// outliers.
template <typename Shape>
llm8_test::PagedCase paged_case(const Shape& sh, std::mt19937& rng, bool half, float k_bias = 0) {
    llm8_test::PagedCase c;
    c.n_head = sh.n_head;
    c.n_kv = sh.n_kv;
    c.hd = sh.hd;
    c.block = sh.block;
    c.q_len = sh.q_len;
    c.kv_len = sh.kv_len;
    c.k_bias = k_bias;
    c.build(rng, half);
    return c;
}

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                           GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q2_K,
                           GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};

// Per-output bound relative to sum_i |w_i x_i| (the scale of the rounding of a dot product,
// which a normalized MSE over few outputs does not capture when the sum cancels): float
// accumulation of K terms stays within ~K * 2^-24 of it; half inputs within ~2^-11.
double max_dot_err(const llm8::WeightView& w, const std::vector<float>& x, int64_t n,
                   const std::vector<float>& got, const std::vector<float>& want) {
    std::vector<float> row(static_cast<size_t>(w.ne0));
    double worst = 0;
    for (int64_t r = 0; r < w.ne1; ++r) {
        llm8::dequantize_row(w.type, w.row(r), row.data(), w.ne0);
        for (int64_t t = 0; t < n; ++t) {
            double absdot = 0;
            for (int64_t i = 0; i < w.ne0; ++i)
                absdot += std::fabs(double(row[size_t(i)]) * x[size_t(t * w.ne0 + i)]);
            const double g = got[size_t(t * w.ne1 + r)];
            if (!std::isfinite(g)) return INFINITY;
            worst = std::max(worst,
                             std::fabs(g - want[size_t(t * w.ne1 + r)]) / std::max(absdot, 1e-30));
        }
    }
    return worst;
}

struct HostMatrix {
    llm8::WeightView view;
    std::vector<uint8_t> bytes;
};

HostMatrix make_matrix(GgmlType t, int64_t K, int64_t M, std::mt19937& rng) {
    HostMatrix h;
    const auto f = randn(size_t(K * M), rng);
    h.view.type = t;
    h.view.ne0 = K;
    h.view.ne1 = M;
    h.view.row_bytes = llm8::row_size(t, K);
    h.bytes.resize(h.view.row_bytes * size_t(M));
    for (int64_t r = 0; r < M; ++r)
        llm8::quantize_row(t, f.data() + r * K, h.bytes.data() + size_t(r) * h.view.row_bytes, K);
    h.view.data = h.bytes.data();
    return h;
}

const GgmlType kKSplitTypes[] = {GgmlType::Q4_K, GgmlType::Q5_K,   GgmlType::Q6_K,  GgmlType::Q2_K,
                                 GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};

// A host matrix repacked on the host into the K split layout, as the upload does it.
std::vector<uint8_t> ksplit_bytes(const HostMatrix& h) {
    const size_t pitch = llm8::cuda::ksplit_row(h.view.type, h.view.ne0).pitch;
    std::vector<uint8_t> out(pitch * size_t(h.view.ne1));
    llm8::cuda::repack_ksplit_rows(h.view.type, h.view.ne0, h.bytes.data(), h.view.row_bytes,
                                   out.data(), 0, h.view.ne1);
    return out;
}

// A host matrix on the device as the model holds it: Q4_0/Q8_0 rows that allow it repacked
// into the split layout (what their decode kernels read), K-quants and i-quants into the K
// split layout, other types in their file blocks.
struct DeviceUpload {
    Dev<uint8_t> raw, packed;
    llm8::cuda::DeviceMatrix dm;
    explicit DeviceUpload(const HostMatrix& h)
        : raw(llm8::cuda::can_ksplit(h.view.type, h.view.ne0) ? ksplit_bytes(h) : h.bytes),
          packed(h.bytes.size()),
          dm{h.view.type, h.view.ne0, h.view.ne1, h.view.row_bytes, raw.get()} {
        if (llm8::cuda::can_ksplit(h.view.type, h.view.ne0)) {
            dm.row_bytes = llm8::cuda::ksplit_row(h.view.type, h.view.ne0).pitch;
            dm.split = true;
            return;
        }
        if (!llm8::cuda::can_split(dm)) return;
        llm8::cuda::repack_split(dm, raw.get(), packed.get(), nullptr);
        dm.data = packed.get();
        dm.split = true;
    }
};

}  // namespace

TEST(CudaOps, GetRowsDequantizesBitExactly) {
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t : kTypes) {
        const int64_t K = llm8::type_traits(t)->block_size == 256 ? 512 : 96, M = 37;
        auto h = make_matrix(t, K, M, rng);
        Dev<uint8_t> w(h.bytes);
        const std::vector<int32_t> ids = {0, 36, 5, 5, 17};
        Dev<int32_t> d_ids(ids);
        Dev<float> out(ids.size() * size_t(K));
        llm8::cuda::DeviceMatrix dm{t, K, M, h.view.row_bytes, w.get()};
        llm8::cuda::get_rows(dm, d_ids.get(), int(ids.size()), out.get(), nullptr);
        const auto got = out.download();
        std::vector<float> want(static_cast<size_t>(K));
        for (size_t i = 0; i < ids.size(); ++i) {
            llm8::dequantize_row(t, h.view.row(ids[i]), want.data(), K);
            for (int64_t k = 0; k < K; ++k)
                ASSERT_EQ(got[i * size_t(K) + size_t(k)], want[size_t(k)])
                    << llm8::type_name(t) << " row " << ids[i] << " elem " << k;
        }
        // Half dequantization: the CPU value rounded to half.
        Dev<uint16_t> h16(size_t(M * K));
        llm8::cuda::dequantize_f16(dm, 0, M, h16.get(), nullptr);
        const auto g16 = h16.download();
        for (int64_t r = 0; r < M; ++r) {
            llm8::dequantize_row(t, h.view.row(r), want.data(), K);
            for (int64_t k = 0; k < K; ++k)
                ASSERT_EQ(g16[size_t(r * K + k)], llm8::fp32_to_fp16(want[size_t(k)]))
                    << llm8::type_name(t);
        }
    }
}

TEST(CudaOps, MatmulEveryTypeAndTokenCount) {
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    cublasHandle_t handle;
    ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    for (GgmlType t : kTypes) {
        const int64_t K = llm8::type_traits(t)->block_size == 256 ? 512 : 160;
        for (int64_t M : {1, 133}) {
            auto h = make_matrix(t, K, M, rng);
            Dev<uint8_t> w(h.bytes);
            llm8::cuda::DeviceMatrix dm{t, K, M, h.view.row_bytes, w.get()};
            for (int64_t n : {1, 3, 8, 9, 75}) {
                const auto x = randn(size_t(n * K), rng);
                std::vector<float> want(static_cast<size_t>(n * M));
                llm8::cpu::matmul_ref(h.view, x.data(), n, want.data());
                Dev<float> dx(x), dy(size_t(n * M));
                Dev<uint16_t> ws(std::max<size_t>(1, llm8::cuda::matmul_workspace_elems(dm, n)));
                llm8::cuda::matmul(dm, dx.get(), n, dy.get(), ws.get(), handle, nullptr);
                const auto got = dy.download();
                // n <= 8: float GEMV. n > 8: half inputs, float accumulation (cuBLAS). Over a
                // handful of outputs a cancelling sum makes the normalized MSE meaningless (a
                // single output once failed at 1.6e-8): there max_dot_err alone decides.
                if (M * n >= 8) {
                    EXPECT_LT(nmse(got, want), n <= 8 ? 1e-8 : 2e-5)
                        << llm8::type_name(t) << " M=" << M << " n=" << n;
                }
                EXPECT_LT(max_dot_err(h.view, x, n, got, want), n <= 8 ? 4e-5 : 2e-3)
                    << llm8::type_name(t) << " M=" << M << " n=" << n;
            }
        }
    }
    cublasDestroy(handle);
}

TEST(CudaOps, SplitLayoutGemvAndDequantize) {
    // Q4_0/Q8_0 rows repacked at upload, and the K split types: GEMV (1..8 tokens) and cuBLAS
    // (> 8) against the CPU, and the half dequantization bit for bit.
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    cublasHandle_t handle;
    ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    for (GgmlType t :
         {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
          GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
        for (int64_t M : {1, 37, 130}) {
            const int64_t K = 768;
            auto h = make_matrix(t, K, M, rng);
            const DeviceUpload up(h);
            ASSERT_TRUE(up.dm.split);
            const llm8::cuda::DeviceMatrix& dm = up.dm;
            for (int64_t n : {1, 2, 3, 8, 9, 40}) {
                const auto x = randn(size_t(n * K), rng);
                std::vector<float> want(static_cast<size_t>(n * M));
                llm8::cpu::matmul_ref(h.view, x.data(), n, want.data());
                Dev<float> dx(x), dy(size_t(n * M));
                Dev<uint16_t> ws(std::max<size_t>(1, llm8::cuda::matmul_workspace_elems(dm, n)));
                llm8::cuda::matmul(dm, dx.get(), n, dy.get(), ws.get(), handle, nullptr);
                EXPECT_LT(max_dot_err(h.view, x, n, dy.download(), want), n <= 8 ? 4e-5 : 2e-3)
                    << llm8::type_name(t) << " M=" << M << " n=" << n;
            }
            Dev<uint16_t> h16(size_t(M * K));
            llm8::cuda::dequantize_f16(dm, 0, M, h16.get(), nullptr);
            const auto g16 = h16.download();
            std::vector<float> row(static_cast<size_t>(K));
            for (int64_t r = 0; r < M; ++r) {
                llm8::dequantize_row(t, h.view.row(r), row.data(), K);
                for (int64_t k = 0; k < K; ++k)
                    ASSERT_EQ(g16[size_t(r * K + k)], llm8::fp32_to_fp16(row[size_t(k)]))
                        << llm8::type_name(t);
            }
        }
    }
    llm8::cuda::DeviceMatrix f{GgmlType::F16, 256, 1, 512, nullptr};
    EXPECT_FALSE(llm8::cuda::can_split(f));
    cublasDestroy(handle);
}

TEST(CudaOps, DecodeActivationsQuantizeBitExactly) {
    // The decode path's int8 activations against the CPU recipe: quants, scales and sums bit
    // for bit (no norm); with the RMS norm folded in, the float form against cpu::rms_norm and
    // the quants within one step (the two sums of squares round differently).
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    for (int64_t K : {32, 96, 4096, 14336}) {
        auto x = randn(size_t(K), rng);
        for (int i = 0; i < 32; ++i) x[size_t(i)] = 0.0f;  // an all-zero unit: d = 0, q = 0
        x[size_t(K - 1)] = 1e6f;                           // a unit dominated by one value
        x[size_t(K - 2)] = -3e-7f;
        const auto nw = randn(size_t(K), rng);
        std::vector<int8_t> q(static_cast<size_t>(K));
        std::vector<float> d(size_t(K / 32));
        std::vector<int32_t> sum(size_t(K / 32));
        llm8::cpu::quantize_act_q8(x.data(), K, q.data(), d.data(), sum.data());
        Dev<float> dx(x), dnw(nw), ds(size_t(K / 16)), xf(static_cast<size_t>(K));
        Dev<int8_t> dq(static_cast<size_t>(K));
        llm8::cuda::decode_act(dx.get(), K, nullptr, 1e-5f, llm8::cuda::ActKind::q8, nullptr,
                               dq.get(), ds.get(), nullptr);
        const auto gq = dq.download();
        const auto gds = ds.download();
        for (int64_t i = 0; i < K; ++i)
            ASSERT_EQ(gq[size_t(i)], q[size_t(i)]) << "K " << K << " i " << i;
        for (int64_t u = 0; u < K / 32; ++u) {
            ASSERT_EQ(gds[size_t(2 * u)], d[size_t(u)]) << "K " << K << " unit " << u;
            ASSERT_EQ(gds[size_t(2 * u + 1)], float(sum[size_t(u)])) << "K " << K << " unit " << u;
        }
        // With the norm.
        std::vector<float> xn(static_cast<size_t>(K));
        llm8::cpu::rms_norm(x.data(), nw.data(), xn.data(), K, 1e-5f);
        llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, llm8::cuda::ActKind::f32, xf.get(),
                               nullptr, nullptr, nullptr);
        EXPECT_LT(nmse(xf.download(), xn), 1e-12) << "K " << K;
        llm8::cpu::quantize_act_q8(xn.data(), K, q.data(), d.data(), sum.data());
        llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, llm8::cuda::ActKind::q8, nullptr,
                               dq.get(), ds.get(), nullptr);
        const auto nq = dq.download();
        const auto nds = ds.download();
        for (int64_t i = 0; i < K; ++i) ASSERT_LE(std::abs(nq[size_t(i)] - q[size_t(i)]), 1);
        for (int64_t u = 0; u < K / 32; ++u)
            ASSERT_NEAR(nds[size_t(2 * u)], d[size_t(u)], 1e-5 * d[size_t(u)]);
    }
}

TEST(CudaOps, DecodeGemvMatchesTheQ8RecipeAndTheCpu) {
    // gemv_decode for split Q4_0 / Q8_0 (int8 activations) and F16 (float): three matrices in
    // one launch, the residual add and SwiGLU. Quantized types against the recipe's value
    // (cpu::matmul_act_q8_ref: exact integer dots, double sums) within float rounding, small
    // enough that one integer off by one in a unit fails; and against the float CPU matmul
    // within the int8 activations' error. K up to 8448 (264 units: two unrolled rounds).
    LLM8_REQUIRE_GPU();
    using llm8::cuda::ActKind;
    using llm8::cuda::GemvMode;
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16}) {
        for (int64_t K : {256, 768, 8448}) {
            const int64_t Ms[2] = {64, 17};  // the third matrix has 64 rows (SwiGLU's up)
            HostMatrix h[3] = {make_matrix(t, K, Ms[0], rng), make_matrix(t, K, Ms[1], rng),
                               make_matrix(t, K, 64, rng)};
            const DeviceUpload u0(h[0]), u1(h[1]), u2(h[2]);
            const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
            for (const auto& d : dm) ASSERT_EQ(d.split, t != GgmlType::F16);
            const ActKind kind = llm8::cuda::decode_act_kind(dm[0]);
            ASSERT_EQ(kind, t == GgmlType::F16 ? ActKind::f32 : ActKind::q8);
            const auto x = randn(static_cast<size_t>(K), rng), nw = randn(size_t(K), rng);
            std::vector<float> xn(static_cast<size_t>(K));
            llm8::cpu::rms_norm(x.data(), nw.data(), xn.data(), K, 1e-5f);
            Dev<float> dx(x), dnw(nw), xf(static_cast<size_t>(K)), ds(size_t(K / 16));
            Dev<int8_t> dq(static_cast<size_t>(K));
            llm8::cuda::DecodeAct a;
            a.kind = kind;
            a.f = xf.get();
            a.q = dq.get();
            a.ds = ds.get();
            llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, kind, xf.get(), dq.get(),
                                   ds.get(), nullptr);
            // The activations the kernel saw, as the recipe reference needs them.
            std::vector<int8_t> q(static_cast<size_t>(K));
            std::vector<float> d(size_t(K / 32));
            if (kind == ActKind::q8) {
                q = dq.download();
                const auto pairs = ds.download();
                for (int64_t u = 0; u < K / 32; ++u) d[size_t(u)] = pairs[size_t(2 * u)];
            }
            const std::vector<float> xa = kind == ActKind::f32 ? xf.download() : xn;
            // The bound per output: exact recipe (q8) or float sums (f16).
            auto check = [&](const HostMatrix& hm, const std::vector<float>& got,
                             const std::vector<float>& base, const char* what) {
                std::vector<double> ref(size_t(hm.view.ne1));
                std::vector<float> want(size_t(hm.view.ne1));
                llm8::cpu::matmul_ref(hm.view, xa.data(), 1, want.data());
                if (kind == ActKind::q8) {
                    llm8::cpu::matmul_act_q8_ref(hm.view, q.data(), d.data(), ref.data());
                    for (int64_t r = 0; r < hm.view.ne1; ++r) {
                        double mass = 0;
                        const uint8_t* row = hm.view.row(r);
                        const size_t bb = t == GgmlType::Q4_0 ? 18 : 34;
                        for (int64_t u = 0; u < K / 32; ++u) {
                            uint16_t hd;
                            std::memcpy(&hd, row + u * int64_t(bb), 2);
                            mass += std::fabs(double(llm8::fp16_to_fp32(hd)) * d[size_t(u)] *
                                              llm8::cpu::dot_unit_q8(t, row, u, q.data()));
                        }
                        const double g = got[size_t(r)] - (base.empty() ? 0.0 : base[size_t(r)]);
                        ASSERT_LE(std::fabs(g - ref[size_t(r)]), (K <= 768 ? 2e-6 : 1e-5) * mass)
                            << llm8::type_name(t) << " K " << K << " " << what << " row " << r;
                    }
                }
                std::vector<float> g2 = got;
                for (size_t i = 0; i < g2.size() && !base.empty(); ++i) g2[i] -= base[i];
                EXPECT_LT(max_dot_err(hm.view, xa, 1, g2, want), kind == ActKind::q8 ? 2e-2 : 4e-5)
                    << llm8::type_name(t) << " K " << K << " " << what;
            };
            // store, three matrices (rows 64, 17, 64)
            Dev<float> y0(static_cast<size_t>(Ms[0])), y1(static_cast<size_t>(Ms[1])),
                y2(static_cast<size_t>(64));
            float* const ys[3] = {y0.get(), y1.get(), y2.get()};
            ASSERT_TRUE(llm8::cuda::gemv_decode(dm, ys, 3, a, GemvMode::store, nullptr));
            check(h[0], y0.download(), {}, "store 0");
            check(h[1], y1.download(), {}, "store 1");
            check(h[2], y2.download(), {}, "store 2");
            // accumulate into a residual
            const auto base = randn(size_t(Ms[1]), rng);
            Dev<float> acc(base);
            float* accp = acc.get();
            ASSERT_TRUE(
                llm8::cuda::gemv_decode(&dm[1], &accp, 1, a, GemvMode::accumulate, nullptr));
            check(h[1], acc.download(), base, "accumulate");
            // SwiGLU of (gate = matrix 0, up = matrix 2), 64 rows each
            Dev<float> g(static_cast<size_t>(64));
            const llm8::cuda::DeviceMatrix gu[2] = {dm[0], dm[2]};
            float* const gys[2] = {g.get(), nullptr};
            ASSERT_TRUE(llm8::cuda::gemv_decode(gu, gys, 2, a, GemvMode::swiglu, nullptr));
            std::vector<float> gw = y0.download(), uw = y2.download();
            llm8::cpu::swiglu(gw.data(), uw.data(), 64);
            EXPECT_LT(nmse(g.download(), gw), 1e-10) << llm8::type_name(t) << " swiglu K " << K;
            // A kind the matrix does not read is refused, nothing launched.
            llm8::cuda::DecodeAct wrong = a;
            wrong.kind = kind == ActKind::q8 ? ActKind::f32 : ActKind::q8;
            EXPECT_FALSE(llm8::cuda::gemv_decode(dm, ys, 1, wrong, GemvMode::store, nullptr));
        }
    }
    // Types without a decode kernel: file blocks that were not repacked.
    llm8::cuda::DeviceMatrix q4k{GgmlType::Q4_K, 256, 1, 144, nullptr};
    EXPECT_EQ(llm8::cuda::decode_act_kind(q4k), ActKind::none);
    llm8::cuda::DeviceMatrix q41{GgmlType::Q4_1, 256, 1, 160, nullptr};
    EXPECT_EQ(llm8::cuda::decode_act_kind(q41), ActKind::none);
}

// The K split recipe's value of row r against int8 activations (q, d per unit), in double:
// sum_u d_x (d I - dmin J) with the CPU's integers; mass: the same sum of absolute values.
double ksplit_recipe_row(GgmlType t, const std::vector<uint8_t>& packed, int64_t K, int64_t r,
                         const std::vector<int8_t>& q, const std::vector<float>& d, double* mass) {
    const size_t pitch = llm8::cuda::ksplit_row(t, K).pitch;
    const uint8_t* row = packed.data() + size_t(r) * pitch;
    double sum = 0;
    *mass = 0;
    for (int64_t u = 0; u < K / 32; ++u) {
        int I, J;
        const llm8::cuda::KUnit w = llm8::cuda::ksplit_unit(t, row, K, u);
        llm8::cuda::ksplit_unit_ints(t, w, q.data() + u * 32, &I, &J);
        float ds, dm;
        llm8::cuda::ksplit_unit_scales(t, row, K, u, &ds, &dm);
        sum += double(d[size_t(u)]) * (double(ds) * I - double(dm) * J);
        *mass += std::fabs(double(d[size_t(u)])) *
                 (std::fabs(double(ds) * I) + std::fabs(double(dm) * J));
    }
    return sum;
}

TEST(CudaOps, KSplitRecipeEqualsTheFileBlocks) {
    // CPU only: the repack and the recipe's integers against the file's blocks. For each row,
    // sum_u d_x (d I - dmin J) must equal sum_e dequant(w)_e * q_e d_x(e) (the CPU dequantizer,
    // double sums) up to the float rounding of the dequantized weights: one quant or one
    // integer off in a unit moves the sum by ~1/K of its mass, far above the bound.
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t : kKSplitTypes) {
        for (int64_t K : {256, 768, 2816}) {
            const int64_t M = 5;
            const HostMatrix h = make_matrix(t, K, M, rng);
            const std::vector<uint8_t> packed = ksplit_bytes(h);
            const auto x = randn(size_t(K), rng);
            std::vector<int8_t> q(static_cast<size_t>(K));
            std::vector<float> d(size_t(K / 32));
            std::vector<int32_t> sums(size_t(K / 32));
            llm8::cpu::quantize_act_q8(x.data(), K, q.data(), d.data(), sums.data());
            std::vector<float> row(static_cast<size_t>(K));
            for (int64_t r = 0; r < M; ++r) {
                llm8::dequantize_row(t, h.view.row(r), row.data(), K);
                double want = 0, wmass = 0;
                for (int64_t e = 0; e < K; ++e) {
                    const double v = double(row[size_t(e)]) * q[size_t(e)] * d[size_t(e / 32)];
                    want += v;
                    wmass += std::fabs(v);
                }
                double mass = 0;
                const double got = ksplit_recipe_row(t, packed, K, r, q, d, &mass);
                EXPECT_LE(std::fabs(got - want), 1e-6 * (mass + wmass))
                    << llm8::type_name(t) << " K " << K << " row " << r;
            }
        }
    }
    // The i-quants' 16-entry lookup by two byte permutes, entry by entry.
    const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    for (uint32_t i = 0; i < 16; ++i) {
        const uint32_t g = llm8::cuda::iq4_index_swap(i) * 0x1111u;
        EXPECT_EQ(llm8::cuda::iq4_lookup(g), uint32_t(uint8_t(int8_t(kv[i]))) * 0x01010101u)
            << "index " << i;
    }
    EXPECT_FALSE(llm8::cuda::can_ksplit(GgmlType::Q4_K, 96));
    EXPECT_TRUE(llm8::cuda::can_ksplit(GgmlType::IQ4_NL, 96));
    EXPECT_FALSE(llm8::cuda::can_ksplit(GgmlType::Q4_0, 256));
}

TEST(CudaOps, KSplitUnitIntegersEqualTheCpuBitForBit) {
    // The decode kernel's unpacking on the GPU (ksplit_unit_ints_gpu) against the CPU's
    // ksplit_ints on the same int8 activations: every unit's (I, J) equal.
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t : kKSplitTypes) {
        const int64_t K = t == GgmlType::IQ4_NL ? 800 : 2816, M = 7;
        const HostMatrix h = make_matrix(t, K, M, rng);
        const DeviceUpload up(h);
        ASSERT_TRUE(up.dm.split);
        const std::vector<uint8_t> packed = ksplit_bytes(h);
        const auto x = randn(size_t(K), rng);
        Dev<float> dx(x), ds(size_t(K / 16));
        Dev<int8_t> dq(static_cast<size_t>(K));
        llm8::cuda::decode_act(dx.get(), K, nullptr, 1e-5f, llm8::cuda::ActKind::q8, nullptr,
                               dq.get(), ds.get(), nullptr);
        const int64_t nb = K / 32;
        Dev<int> dI(size_t(M * nb)), dJ(size_t(M * nb));
        llm8::cuda::ksplit_unit_ints_gpu(up.dm, dq.get(), ds.get(), dI.get(), dJ.get(), nullptr);
        const auto gI = dI.download(), gJ = dJ.download();
        const auto q = dq.download();
        for (int64_t r = 0; r < M; ++r)
            for (int64_t u = 0; u < nb; ++u) {
                int I, J;
                const llm8::cuda::KUnit w =
                    llm8::cuda::ksplit_unit(t, packed.data() + size_t(r) * up.dm.row_bytes, K, u);
                llm8::cuda::ksplit_unit_ints(t, w, q.data() + u * 32, &I, &J);
                ASSERT_EQ(gI[size_t(r * nb + u)], I)
                    << llm8::type_name(t) << " r " << r << " u " << u;
                ASSERT_EQ(gJ[size_t(r * nb + u)], J)
                    << llm8::type_name(t) << " r " << r << " u " << u;
            }
    }
}

TEST(CudaOps, KSplitDecodeGemvMatchesTheRecipeAndTheCpu) {
    // gemv_decode over the K split layout: three matrices in one launch (rows 64, 17, 64), the
    // residual add and SwiGLU, against the recipe's value in double within float rounding, and
    // against the float CPU matmul within the int8 activations' error. K up to 4352 (136 units:
    // two unrolled rounds); iq4_nl also 800 (25 units, a partial round). Then a group of mixed
    // types (q4_K, q4_K, q6_K as Q4_K_M's Q, K, V) equals the three matrices one at a time.
    LLM8_REQUIRE_GPU();
    using llm8::cuda::ActKind;
    using llm8::cuda::GemvMode;
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t : kKSplitTypes) {
        std::vector<int64_t> Ks = {256, 768, 4352};
        if (t == GgmlType::IQ4_NL) Ks.push_back(800);
        for (int64_t K : Ks) {
            const int64_t Ms[3] = {64, 17, 64};
            HostMatrix h[3] = {make_matrix(t, K, Ms[0], rng), make_matrix(t, K, Ms[1], rng),
                               make_matrix(t, K, Ms[2], rng)};
            const DeviceUpload u0(h[0]), u1(h[1]), u2(h[2]);
            const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
            ASSERT_EQ(llm8::cuda::decode_act_kind(dm[0]), ActKind::q8);
            const auto x = randn(static_cast<size_t>(K), rng), nw = randn(size_t(K), rng);
            std::vector<float> xn(static_cast<size_t>(K));
            llm8::cpu::rms_norm(x.data(), nw.data(), xn.data(), K, 1e-5f);
            Dev<float> dx(x), dnw(nw), ds(size_t(K / 16));
            Dev<int8_t> dq(static_cast<size_t>(K));
            llm8::cuda::DecodeAct a;
            a.kind = ActKind::q8;
            a.q = dq.get();
            a.ds = ds.get();
            llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, ActKind::q8, nullptr, dq.get(),
                                   ds.get(), nullptr);
            const std::vector<int8_t> q = dq.download();
            std::vector<float> d(size_t(K / 32));
            const auto pairs = ds.download();
            for (int64_t u = 0; u < K / 32; ++u) d[size_t(u)] = pairs[size_t(2 * u)];
            const std::string what =
                std::string(llm8::type_name(t)) + " K " + std::to_string(K) + " ";
            auto check = [&](const HostMatrix& hm, const std::vector<float>& got,
                             const std::vector<float>& base, const std::string& w) {
                const std::vector<uint8_t> packed = ksplit_bytes(hm);
                std::vector<float> want(size_t(hm.view.ne1));
                llm8::cpu::matmul_ref(hm.view, xn.data(), 1, want.data());
                for (int64_t r = 0; r < hm.view.ne1; ++r) {
                    double mass = 0;
                    const double ref = ksplit_recipe_row(t, packed, K, r, q, d, &mass);
                    const double g = got[size_t(r)] - (base.empty() ? 0.0 : base[size_t(r)]);
                    ASSERT_LE(std::fabs(g - ref), (K <= 768 ? 2e-6 : 1e-5) * mass + 1e-30)
                        << what << w << " row " << r;
                }
                std::vector<float> g2 = got;
                for (size_t i = 0; i < g2.size() && !base.empty(); ++i) g2[i] -= base[i];
                EXPECT_LT(max_dot_err(hm.view, xn, 1, g2, want), 2e-2) << what << w;
            };
            Dev<float> y0(static_cast<size_t>(Ms[0])), y1(static_cast<size_t>(Ms[1])),
                y2(static_cast<size_t>(Ms[2]));
            float* const ys[3] = {y0.get(), y1.get(), y2.get()};
            ASSERT_TRUE(llm8::cuda::gemv_decode(dm, ys, 3, a, GemvMode::store, nullptr));
            check(h[0], y0.download(), {}, "store 0");
            check(h[1], y1.download(), {}, "store 1");
            check(h[2], y2.download(), {}, "store 2");
            const auto base = randn(size_t(Ms[1]), rng);
            Dev<float> acc(base);
            float* accp = acc.get();
            ASSERT_TRUE(
                llm8::cuda::gemv_decode(&dm[1], &accp, 1, a, GemvMode::accumulate, nullptr));
            check(h[1], acc.download(), base, "accumulate");
            Dev<float> g(size_t(64));
            const llm8::cuda::DeviceMatrix gu[2] = {dm[0], dm[2]};
            float* const gys[2] = {g.get(), nullptr};
            ASSERT_TRUE(llm8::cuda::gemv_decode(gu, gys, 2, a, GemvMode::swiglu, nullptr));
            std::vector<float> gw = y0.download(), uw = y2.download();
            llm8::cpu::swiglu(gw.data(), uw.data(), 64);
            EXPECT_LT(nmse(g.download(), gw), 1e-10) << what << "swiglu";
        }
    }
    // Mixed types in one store group: one launch per matrix, the same bits as alone.
    for (int64_t K : {256, 4096}) {
        const HostMatrix h[3] = {make_matrix(GgmlType::Q4_K, K, 96, rng),
                                 make_matrix(GgmlType::Q4_K, K, 32, rng),
                                 make_matrix(GgmlType::Q6_K, K, 32, rng)};
        const DeviceUpload u0(h[0]), u1(h[1]), u2(h[2]);
        const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
        for (int n : {1, 3}) {
            const auto x = randn(size_t(n * K), rng);
            Dev<float> dx(x), ds(size_t(n * K / 16));
            Dev<int8_t> dq(size_t(n * K));
            llm8::cuda::decode_act(dx.get(), K, nullptr, 1e-5f, ActKind::q8, nullptr, dq.get(),
                                   ds.get(), nullptr, n);
            llm8::cuda::DecodeAct a;
            a.kind = ActKind::q8;
            a.q = dq.get();
            a.ds = ds.get();
            Dev<float> y[3] = {Dev<float>(size_t(n * 96)), Dev<float>(size_t(n * 32)),
                               Dev<float>(size_t(n * 32))};
            Dev<float> z[3] = {Dev<float>(size_t(n * 96)), Dev<float>(size_t(n * 32)),
                               Dev<float>(size_t(n * 32))};
            float* const ys[3] = {y[0].get(), y[1].get(), y[2].get()};
            ASSERT_TRUE(
                llm8::cuda::gemv_decode(dm, ys, 3, a, GemvMode::store, nullptr, nullptr, n));
            for (int i = 0; i < 3; ++i) {
                float* zp = z[i].get();
                ASSERT_TRUE(llm8::cuda::gemv_decode(&dm[i], &zp, 1, a, GemvMode::store, nullptr,
                                                    nullptr, n));
                const auto gy = y[i].download(), gz = z[i].download();
                for (size_t k = 0; k < gy.size(); ++k)
                    ASSERT_EQ(gy[k], gz[k]) << "mixed K " << K << " n " << n << " mat " << i;
            }
            // Modes that pair rows of different matrices refuse mixed types.
            float* const gys[2] = {y[0].get(), nullptr};
            const llm8::cuda::DeviceMatrix gu[2] = {dm[1], dm[2]};
            EXPECT_FALSE(
                llm8::cuda::gemv_decode(gu, gys, 2, a, GemvMode::swiglu, nullptr, nullptr, n));
        }
    }
}

TEST(CudaOps, DecodeGemvOfSeveralTokensEqualsOneTokenAtATime) {
    // A decode step of n sequences: gemv_decode with n tokens (the tensor-core kernel for
    // int8 activations when every matrix has whole 16-row tiles, else the dp4a / float kernel
    // with 16 tokens per weight pass) against n one-token calls on the same activations, in
    // the store, accumulate and SwiGLU modes.
    LLM8_REQUIRE_GPU();
    using llm8::cuda::ActKind;
    using llm8::cuda::GemvMode;
    std::mt19937 rng(std::random_device{}());
    for (GgmlType t :
         {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16, GgmlType::Q4_K, GgmlType::Q5_K,
          GgmlType::Q6_K, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
        // K 768: a last stage of the tensor-core kernel's ring half full
        for (int64_t K : {256, 768, 4096}) {
            for (int64_t M1 : {48, 17}) {  // 17: not whole tiles (no tensor cores)
                HostMatrix h[3] = {make_matrix(t, K, 64, rng), make_matrix(t, K, M1, rng),
                                   make_matrix(t, K, 64, rng)};
                const DeviceUpload u0(h[0]), u1(h[1]), u2(h[2]);
                const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
                const ActKind kind = llm8::cuda::decode_act_kind(dm[0]);
                for (int n : {2, 5, 16, 17, 33, 64}) {
                    const auto x = randn(size_t(n * K), rng), nw = randn(size_t(K), rng);
                    Dev<float> dx(x), dnw(nw), xf(size_t(n * K)), ds(size_t(n * K / 16));
                    Dev<int8_t> dq(size_t(n * K));
                    llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, kind, xf.get(),
                                           dq.get(), ds.get(), nullptr, n);
                    auto act = [&](int tok) {
                        llm8::cuda::DecodeAct a;
                        a.kind = kind;
                        a.f = xf.get() + tok * K;
                        a.q = dq.get() + tok * K;
                        a.ds = ds.get() + tok * (K / 16);
                        return a;
                    };
                    const std::string what = std::string(llm8::type_name(t)) + " K " +
                                             std::to_string(K) + " M1 " + std::to_string(M1) +
                                             " n " + std::to_string(n);
                    // store: three matrices
                    Dev<float> y0(size_t(n * 64)), y1(size_t(n * M1)), y2(size_t(n * 64));
                    Dev<float> z0(size_t(n * 64)), z1(size_t(n * M1)), z2(size_t(n * 64));
                    float* const ys[3] = {y0.get(), y1.get(), y2.get()};
                    ASSERT_TRUE(llm8::cuda::gemv_decode(dm, ys, 3, act(0), GemvMode::store,
                                                        nullptr, nullptr, n));
                    for (int tok = 0; tok < n; ++tok) {
                        float* const zs[3] = {z0.get() + tok * 64, z1.get() + tok * M1,
                                              z2.get() + tok * 64};
                        ASSERT_TRUE(llm8::cuda::gemv_decode(dm, zs, 3, act(tok), GemvMode::store,
                                                            nullptr));
                    }
                    EXPECT_LT(nmse(y0.download(), z0.download()), 1e-10) << "store 0 " << what;
                    EXPECT_LT(nmse(y1.download(), z1.download()), 1e-10) << "store 1 " << what;
                    EXPECT_LT(nmse(y2.download(), z2.download()), 1e-10) << "store 2 " << what;
                    // accumulate into a residual
                    const auto base = randn(size_t(n * M1), rng);
                    Dev<float> ra(base), rb(base);
                    float* rap = ra.get();
                    ASSERT_TRUE(llm8::cuda::gemv_decode(&dm[1], &rap, 1, act(0),
                                                        GemvMode::accumulate, nullptr, nullptr, n));
                    for (int tok = 0; tok < n; ++tok) {
                        float* rbp = rb.get() + tok * M1;
                        ASSERT_TRUE(llm8::cuda::gemv_decode(&dm[1], &rbp, 1, act(tok),
                                                            GemvMode::accumulate, nullptr));
                    }
                    EXPECT_LT(nmse(ra.download(), rb.download()), 1e-10) << "accumulate " << what;
                    // SwiGLU of (gate = matrix 0, up = matrix 2)
                    Dev<float> g(size_t(n * 64)), gz(size_t(n * 64));
                    const llm8::cuda::DeviceMatrix gu[2] = {dm[0], dm[2]};
                    float* const gys[2] = {g.get(), nullptr};
                    ASSERT_TRUE(llm8::cuda::gemv_decode(gu, gys, 2, act(0), GemvMode::swiglu,
                                                        nullptr, nullptr, n));
                    for (int tok = 0; tok < n; ++tok) {
                        float* const gzs[2] = {gz.get() + tok * 64, nullptr};
                        ASSERT_TRUE(llm8::cuda::gemv_decode(gu, gzs, 2, act(tok),
                                                            GemvMode::swiglu, nullptr));
                    }
                    EXPECT_LT(nmse(g.download(), gz.download()), 1e-10) << "swiglu " << what;
                }
            }
        }
    }
}

TEST(CudaOps, DecodeGemvRopeEpilogueEqualsRopeStore) {
    // GemvMode::qkv_rope (bias, RoPE and the K/V append in the Q/K/V GEMV's epilogue) against
    // the same GEMV storing Q, K, V followed by rope_store: the same bits, with biases, frequency
    // factors, a partial rotation (n_rot < head_dim) and the cache row at *pos0.
    LLM8_REQUIRE_GPU();
    using llm8::cuda::GemvMode;
    std::mt19937 rng(7);
    const int hd = 64, n_rot = 48, n_head = 3, n_kv = 1;
    const int64_t K = 256, ctx = 9, kv = int64_t(n_kv) * hd;
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::F16, GgmlType::Q4_K, GgmlType::Q6_K}) {
        const int64_t rows[3] = {int64_t(n_head) * hd, kv, kv};
        const DeviceUpload u0(make_matrix(t, K, rows[0], rng)), u1(make_matrix(t, K, rows[1], rng)),
            u2(make_matrix(t, K, rows[2], rng));
        const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
        const auto x = randn(static_cast<size_t>(K), rng), nw = randn(size_t(K), rng);
        const auto bq = randn(size_t(rows[0]), rng), bk = randn(size_t(kv), rng),
                   bv = randn(size_t(kv), rng);
        std::vector<float> fac(size_t(n_rot / 2));
        for (auto& f : fac) f = 1.0f + float(rng() % 7);
        Dev<float> dx(x), dnw(nw), xf(static_cast<size_t>(K)), ds(size_t(K / 16)), dbq(bq), dbk(bk),
            dbv(bv), dfac(fac);
        Dev<int8_t> dq(static_cast<size_t>(K));
        const auto kind = llm8::cuda::decode_act_kind(dm[0]);
        llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, kind, xf.get(), dq.get(), ds.get(),
                               nullptr);
        llm8::cuda::DecodeAct a;
        a.kind = kind;
        a.f = xf.get();
        a.q = dq.get();
        a.ds = ds.get();
        Dev<int32_t> pos(std::vector<int32_t>{1234}), pos0(std::vector<int32_t>{5});
        // Reference: store, then rope_store.
        Dev<float> q1(static_cast<size_t>(rows[0])), k1(static_cast<size_t>(kv)),
            v1(static_cast<size_t>(kv));
        Dev<uint16_t> kc1(size_t(ctx * kv)), vc1(size_t(ctx * kv)), kc2(size_t(ctx * kv)),
            vc2(size_t(ctx * kv));
        float* const ys1[3] = {q1.get(), k1.get(), v1.get()};
        ASSERT_TRUE(llm8::cuda::gemv_decode(dm, ys1, 3, a, GemvMode::store, nullptr));
        llm8::cuda::rope_store(q1.get(), k1.get(), v1.get(), dbq.get(), dbk.get(), dbv.get(),
                               kc1.get(), vc1.get(), 1, pos.get(), pos0.get(), n_head, n_kv, hd,
                               n_rot, llm8::RopeLayout::norm, 10000.0f, 0.5f, dfac.get(), nullptr);
        // Fused.
        Dev<float> q2(static_cast<size_t>(rows[0]));
        float* const ys2[3] = {q2.get(), nullptr, nullptr};
        llm8::cuda::RopeFuse rf;
        rf.pos = pos.get();
        rf.slot = pos0.get();  // cache row 5
        rf.kc = kc2.get();
        rf.vc = vc2.get();
        rf.bq = dbq.get();
        rf.bk = dbk.get();
        rf.bv = dbv.get();
        rf.factors = dfac.get();
        rf.head_dim = hd;
        rf.n_rot = n_rot;
        rf.base = 10000.0f;
        rf.freq_scale = 0.5f;
        ASSERT_TRUE(llm8::cuda::gemv_decode(dm, ys2, 3, a, GemvMode::qkv_rope, nullptr, &rf));
        const auto gq1 = q1.download(), gq2 = q2.download();
        for (size_t i = 0; i < gq1.size(); ++i)
            ASSERT_EQ(gq1[i], gq2[i]) << llm8::type_name(t) << " q " << i;
        const auto ck1 = kc1.download(), ck2 = kc2.download(), cv1 = vc1.download(),
                   cv2 = vc2.download();
        for (int64_t i = 0; i < kv; ++i) {
            ASSERT_EQ(ck1[size_t(5 * kv + i)], ck2[size_t(5 * kv + i)]) << "k " << i;
            ASSERT_EQ(cv1[size_t(5 * kv + i)], cv2[size_t(5 * kv + i)]) << "v " << i;
        }
        EXPECT_EQ(ck2[0], 0xffff);  // other cache rows untouched
        // Shapes whose row pairs would straddle heads are refused.
        rf.head_dim = 3;
        EXPECT_FALSE(llm8::cuda::gemv_decode(dm, ys2, 3, a, GemvMode::qkv_rope, nullptr, &rf));
    }
}

TEST(CudaOps, FloatRowsOfAwkwardLength) {
    // stories260K's FFN is 172 wide: float rows that are not a multiple of 32 (or of 8 halves).
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    cublasHandle_t handle;
    ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
        for (int64_t K : {172, 44, 7}) {
            const int64_t M = 33;
            auto h = make_matrix(t, K, M, rng);
            Dev<uint8_t> w(h.bytes);
            llm8::cuda::DeviceMatrix dm{t, K, M, h.view.row_bytes, w.get()};
            for (int64_t n : {1, 5, 20}) {
                const auto x = randn(size_t(n * K), rng);
                std::vector<float> want(static_cast<size_t>(n * M));
                llm8::cpu::matmul_ref(h.view, x.data(), n, want.data());
                Dev<float> dx(x), dy(size_t(n * M));
                Dev<uint16_t> ws(std::max<size_t>(1, llm8::cuda::matmul_workspace_elems(dm, n)));
                llm8::cuda::matmul(dm, dx.get(), n, dy.get(), ws.get(), handle, nullptr);
                EXPECT_LT(max_dot_err(h.view, x, n, dy.download(), want), n <= 8 ? 4e-5 : 2e-3)
                    << llm8::type_name(t) << " K=" << K << " n=" << n;
            }
            const std::vector<int32_t> ids = {32, 0, 7};
            Dev<int32_t> d_ids(ids);
            Dev<float> out(ids.size() * size_t(K));
            llm8::cuda::get_rows(dm, d_ids.get(), 3, out.get(), nullptr);
            const auto got = out.download();
            std::vector<float> row(static_cast<size_t>(K));
            for (size_t i = 0; i < ids.size(); ++i) {
                llm8::dequantize_row(t, h.view.row(ids[i]), row.data(), K);
                for (int64_t k = 0; k < K; ++k)
                    ASSERT_EQ(got[i * size_t(K) + size_t(k)], row[size_t(k)]);
            }
        }
    }
    cublasDestroy(handle);
}

TEST(CudaOps, RopeStoreMatchesBiasRopeAndHalfCache) {
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    for (auto layout : {llm8::RopeLayout::norm, llm8::RopeLayout::neox}) {
        const int H = 4, HK = 2, hd = 64, n_rot = 48;
        const int64_t n = 3, ctx = 16;
        const std::vector<int32_t> pos = {5, 6, 7};
        const std::vector<int32_t> slots = {9, 2, 14};  // pool rows, in no order
        auto q = randn(size_t(n * H * hd), rng), k = randn(size_t(n * HK * hd), rng),
             v = randn(size_t(n * HK * hd), rng);
        const auto bq = randn(size_t(H * hd), rng), bk = randn(size_t(HK * hd), rng),
                   bv = randn(size_t(HK * hd), rng);
        auto wq = q, wk = k, wv = v;
        llm8::cpu::add_bias(wq.data(), bq.data(), n, H * hd);
        llm8::cpu::add_bias(wk.data(), bk.data(), n, HK * hd);
        llm8::cpu::add_bias(wv.data(), bv.data(), n, HK * hd);
        llm8::cpu::rope(wq.data(), n, H, hd, n_rot, pos.data(), layout, 10000.0f, 1.0f, nullptr);
        llm8::cpu::rope(wk.data(), n, HK, hd, n_rot, pos.data(), layout, 10000.0f, 1.0f, nullptr);
        Dev<float> dq(q), dk(k), dv(v), dbq(bq), dbk(bk), dbv(bv);
        Dev<uint16_t> kc(size_t(ctx * HK * hd)), vc(size_t(ctx * HK * hd));
        Dev<int32_t> dpos(pos), dslots(slots);
        llm8::cuda::rope_store(dq.get(), dk.get(), dv.get(), dbq.get(), dbk.get(), dbv.get(),
                               kc.get(), vc.get(), n, dpos.get(), dslots.get(), H, HK, hd, n_rot,
                               layout, 10000.0f, 1.0f, nullptr, nullptr);
        EXPECT_LT(nmse(dq.download(), wq), 1e-10);
        const auto gk = kc.download(), gv = vc.download();
        const int64_t kv = HK * hd;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < kv; ++i) {
                const size_t g = size_t(slots[size_t(t)] * kv + i), w = size_t(t * kv + i);
                EXPECT_NEAR(llm8::fp16_to_fp32(gk[g]), wk[w], 2e-3 * (1 + std::fabs(wk[w])));
                EXPECT_EQ(gv[g], llm8::fp32_to_fp16(wv[w]));
            }
    }
}

TEST(CudaOps, NormRopeSwigluAddBias) {
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    // RMSNorm over rows of awkward widths.
    for (int n : {8, 113, 4096}) {
        const int64_t rows = 3;
        const auto x = randn(size_t(rows * n), rng), w = randn(size_t(n), rng);
        std::vector<float> want(x.size());
        for (int64_t r = 0; r < rows; ++r)
            llm8::cpu::rms_norm(x.data() + r * n, w.data(), want.data() + r * n, n, 1e-5f);
        Dev<float> dx(x), dw(w), dy(x.size());
        llm8::cuda::rms_norm(dx.get(), dw.get(), dy.get(), rows, n, 1e-5f, nullptr);
        EXPECT_LT(nmse(dy.download(), want), 1e-12) << n;
    }
    // RoPE, both layouts, partial rotation, factors, large positions.
    for (auto layout : {llm8::RopeLayout::norm, llm8::RopeLayout::neox}) {
        const int H = 3, hd = 64, n_rot = 48;
        const int64_t n = 5;
        const std::vector<int32_t> pos = {0, 1, 113, 4097, 30000};
        std::vector<float> factors(n_rot / 2);
        for (float& f : factors) f = 1.0f + float(rng() % 8);
        const auto x = randn(size_t(n * H * hd), rng);
        auto want = x;
        llm8::cpu::rope(want.data(), n, H, hd, n_rot, pos.data(), layout, 500000.0f, 0.25f,
                        factors.data());
        Dev<float> dx(x), df(factors);
        Dev<int32_t> dp(pos);
        llm8::cuda::rope(dx.get(), n, H, hd, n_rot, dp.get(), layout, 500000.0f, 0.25f, df.get(),
                         nullptr);
        // Angles reach 30000 * 0.25 = 7500 rad, where a float ulp is ~4.9e-4 rad; the CPU (double
        // pow, then float) and GPU (powf) frequencies differ by about an ulp, so the normalized
        // MSE is ~(5e-4)^2 / 2 at the largest position: bound 1e-7 (measured 1.06e-9).
        EXPECT_LT(nmse(dx.download(), want), 1e-7);
    }
    const auto g = randn(1000, rng), u = randn(1000, rng), b = randn(10, rng);
    auto want = g;
    llm8::cpu::swiglu(want.data(), u.data(), 1000);
    Dev<float> dg(g), du(u), db(b);
    llm8::cuda::swiglu(dg.get(), du.get(), 1000, nullptr);
    EXPECT_LT(nmse(dg.download(), want), 1e-12);
    dg.upload(g);
    llm8::cuda::add(dg.get(), du.get(), 1000, nullptr);
    auto got = dg.download();
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(got[size_t(i)], g[size_t(i)] + u[size_t(i)]);
    dg.upload(g);
    llm8::cuda::add_bias(dg.get(), db.get(), 100, 10, nullptr);
    got = dg.download();
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(got[size_t(i)], g[size_t(i)] + b[size_t(i % 10)]);
}

TEST(CudaOps, AttentionMatchesCpuOnAwkwardShapes) {
    LLM8_REQUIRE_GPU();
    int q8_checked = 0;  // decode shapes whose output was also written as int8
    std::mt19937 rng(std::random_device{}());
    struct Shape {
        int n_head, n_kv, hd;
        std::vector<int> q_len, kv_len;  // one entry per sequence of the batch
        int block;
    };
    const std::vector<Shape> shapes = {
        {8, 8, 64, {1}, {1}, 64},
        {32, 8, 128, {1}, {113}, 64},
        {32, 4, 128, {1}, {4097}, 64},
        {8, 1, 64, {3}, {113}, 16},
        {8, 2, 128, {75}, {75}, 64},
        {4, 1, 8, {9}, {47}, 8},
        {28, 4, 128, {2}, {4097}, 64},
        {16, 16, 256, {5}, {22}, 4},
        // prefill shapes for the tensor-core kernel (chunked: kv_len > q_len)
        {32, 8, 128, {100}, {4100}, 64},
        {8, 2, 64, {64}, {64}, 64},
        {28, 4, 128, {17}, {50}, 32},
        {16, 16, 64, {130}, {200}, 64},
        {4, 4, 128, {1}, {1}, 64},
        {28, 4, 128, {1}, {30001}, 64},
        {8, 2, 64, {4}, {1004}, 64},
        {64, 8, 128, {2}, {515}, 64},
        // batches of sequences: decode rows of different lengths, and prefill mixed with decode
        {32, 8, 128, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
         {1, 7, 64, 65, 100, 128, 129, 300, 513, 1000, 1, 2, 3, 4097, 33, 64}, 64},
        {8, 2, 64, {1, 40, 1, 17, 3}, {90, 40, 1, 200, 3}, 16},
        {4, 1, 8, {1, 3, 1}, {5, 9, 70}, 8},
        // a few queries per sequence, different per sequence (G * q <= 16: the decode kernel)
        {8, 2, 128, {1, 3, 2, 4, 1}, {10, 70, 33, 129, 64}, 64},
        {32, 8, 128, {2, 4, 1, 3}, {500, 17, 64, 1000}, 64}};
    for (const Shape& sh : shapes) {
        llm8_test::PagedCase c = paged_case(sh, rng, true);
        std::string what = std::to_string(sh.n_head) + "/" + std::to_string(sh.n_kv) + " hd " +
                           std::to_string(sh.hd) + " seqs " + std::to_string(sh.q_len.size()) +
                           " q0 " + std::to_string(sh.q_len[0]) + " kv0 " +
                           std::to_string(sh.kv_len[0]);
        Dev<float> dq(c.q), out(c.q.size());
        Dev<uint16_t> dk(c.kpool16), dv(c.vpool16);
        Dev<int32_t> dqs(c.q_start), dkvl(c.kvl), dt(c.tables);
        llm8::AttnParams p = c.params(dq.get(), out.get(), dk.get(), dv.get(), dqs.get(),
                                      dkvl.get(), dt.get(), llm8::KvType::f16);
        for (int max_kv : {c.max_kv, c.max_kv + 1000}) {  // graph-style upper bound too
            p.max_kv = max_kv;
            Dev<float> ws(llm8::cuda::attention_workspace_floats(c.n_tokens, c.n_head, c.hd,
                                                                 max_kv));
            p.ws = ws.get();
            p.ws_floats = ws.size();
            out.poison();
            llm8::cuda::attention_f16_splitkv(p, nullptr);
            EXPECT_LT(nmse(out.download(), c.want), 1e-10) << "splitkv " << what;
            // A workspace with room for one split only: the kernel takes fewer splits.
            Dev<float> ws1(size_t(c.n_tokens) * c.n_head * (c.hd + 2));
            p.ws = ws1.get();
            p.ws_floats = ws1.size();
            out.poison();
            llm8::cuda::attention_f16_splitkv(p, nullptr);
            // One split sums every key in one chain of float updates: a looser bound.
            EXPECT_LT(nmse(out.download(), c.want), 1e-9) << "splitkv, one split " << what;
            // The dispatcher (decode kernel for few queries per sequence with G*q <= 16).
            if (c.max_q < 16) {
                const size_t nq = c.q.size();
                Dev<int8_t> q8(nq);
                Dev<float> q8_ds(nq / 16 + 2);
                p.ws = ws.get();
                p.ws_floats = ws.size();
                p.q8 = q8.get();
                p.q8_ds = q8_ds.get();
                out.poison();
                // With the int8 output of the decode path: the quants of the float output,
                // bit for bit as cpu::quantize_act_q8 makes them.
                const bool wrote = llm8::cuda::attention(p, nullptr);
                p.q8 = nullptr;
                p.q8_ds = nullptr;
                const auto got = out.download();
                // The tensor-core decode kernel rounds Q and P to half, as the prefill one.
                EXPECT_LT(nmse(got, c.want), 2e-5) << "dispatch " << what;
                if (wrote) {
                    ++q8_checked;
                    std::vector<int8_t> cq(nq);
                    std::vector<float> cd(nq / 32);
                    std::vector<int32_t> cs(nq / 32);
                    llm8::cpu::quantize_act_q8(got.data(), int64_t(nq), cq.data(), cd.data(),
                                               cs.data());
                    const auto gq = q8.download();
                    const auto gds = q8_ds.download();
                    for (size_t i = 0; i < nq; ++i) ASSERT_EQ(gq[i], cq[i]) << "q8 element " << i;
                    for (size_t u = 0; u < nq / 32; ++u) {
                        ASSERT_EQ(gds[2 * u], cd[u]) << "q8 unit " << u;
                        ASSERT_EQ(gds[2 * u + 1], float(cs[u])) << "q8 unit " << u;
                    }
                }
            }
        }
        // The tensor-core kernel rounds Q and P to half: its bound is that of half inputs.
        out.poison();
        p.max_kv = c.max_kv;
        if (llm8::cuda::attention_f16_mma(p, nullptr)) {
            const double e = nmse(out.download(), c.want);
            std::printf("mma %s: nmse %.3g\n", what.c_str(), e);
            EXPECT_LT(e, 2e-5) << "mma " << what;
        }
    }
    EXPECT_GT(q8_checked, 0);
}

TEST(CudaOps, Int8CacheStoreIsBitExactAndAttentionMatchesTheCpu) {
    // The INT8 cache: its write (rope_store_i8) against cpu::quantize_kv_row_i8, then attention over INT8 pools (decode kernel and tile kernel) against
    // cpu::attention over the same pools (f16 mode: smoothed K times its scale, P times V's
    // scale), on awkward shapes with K channel outliers.
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    // rope_store_i8: without rotation (n_rot 0: bias only) the bytes and scales equal
    // cpu::quantize_kv_row_i8's bit for bit; with RoPE (both layouts) against cpu::rope then
    // the CPU quantization, where the CPU and GPU rotations may differ in the last float bit:
    // quants within one step.
    for (int hd : {64, 128}) {
        for (int n_rot : {0, hd, hd / 2}) {
            for (auto layout : {llm8::RopeLayout::norm, llm8::RopeLayout::neox}) {
                const int n_head = 5, n_kv = 3, kv_dim = n_kv * hd;
                const int64_t n = 7, rows = 20;
                const auto q = randn(size_t(n * n_head * hd), rng);
                auto k = randn(size_t(n * kv_dim), rng, 3.0f);
                const auto v = randn(size_t(n * kv_dim), rng);
                const auto mean = randn(size_t(kv_dim), rng, 2.0f);
                const auto bq = randn(size_t(n_head * hd), rng), bk = randn(size_t(kv_dim), rng),
                           bv = randn(size_t(kv_dim), rng);
                // Token 0's first head near its mean after the bias: a tiny scale.
                for (int c = 0; c < hd; ++c) k[size_t(c)] = mean[size_t(c)] - bk[size_t(c)];
                const std::vector<int32_t> slots = {5, 0, 19, 7, 8, 2, 13}, pos = {0, 1, 2, 90, 4, 5, 3000};
                Dev<float> dq(q), dk(k), dv(v), dm(mean), dbq(bq), dbk(bk), dbv(bv);
                Dev<int8_t> k8(size_t(rows * kv_dim)), v8(size_t(rows * kv_dim));
                Dev<float> ks(size_t(rows * n_kv)), vs(size_t(rows * n_kv));
                Dev<int32_t> ds(slots), dp(pos);
                llm8::cuda::rope_store_i8(dq.get(), dk.get(), dv.get(), dbq.get(), dbk.get(),
                                          dbv.get(), dm.get(), k8.get(), v8.get(), ks.get(),
                                          vs.get(), n, dp.get(), ds.get(), n_head, n_kv, hd, n_rot,
                                          layout, 10000.0f, 1.0f, nullptr, nullptr);
                // The CPU: bias, rope, quantize.
                auto wq = q, wk = k, wv = v;
                for (int64_t t = 0; t < n; ++t) {
                    for (int i = 0; i < n_head * hd; ++i) wq[size_t(t * n_head * hd + i)] += bq[size_t(i)];
                    for (int i = 0; i < kv_dim; ++i) {
                        wk[size_t(t * kv_dim + i)] += bk[size_t(i)];
                        wv[size_t(t * kv_dim + i)] += bv[size_t(i)];
                    }
                }
                if (n_rot > 0) {
                    llm8::cpu::rope(wq.data(), n, n_head, hd, n_rot, pos.data(), layout, 10000.0f,
                                    1.0f, nullptr);
                    llm8::cpu::rope(wk.data(), n, n_kv, hd, n_rot, pos.data(), layout, 10000.0f,
                                    1.0f, nullptr);
                }
                EXPECT_LT(nmse(dq.download(), wq), 1e-7);  // CPU and GPU angles: ~1 ulp
                const auto gk = k8.download(), gv = v8.download();
                const auto gks = ks.download(), gvs = vs.download();
                const std::string what = "hd " + std::to_string(hd) + " n_rot " + std::to_string(n_rot);
                for (int64_t t = 0; t < n; ++t) {
                    std::vector<int8_t> ck(static_cast<size_t>(kv_dim)), cv(ck.size());
                    std::vector<float> cks(static_cast<size_t>(n_kv)), cvs(cks.size());
                    llm8::cpu::quantize_kv_row_i8(wk.data() + t * kv_dim, wv.data() + t * kv_dim,
                                                  mean.data(), kv_dim, hd, ck.data(), cks.data(),
                                                  cv.data(), cvs.data());
                    const int64_t r = slots[size_t(t)];
                    for (int i = 0; i < kv_dim; ++i) {
                        const int dk8 = int(gk[size_t(r * kv_dim + i)]) - int(ck[size_t(i)]);
                        if (n_rot == 0)
                            ASSERT_EQ(dk8, 0) << what << " t " << t << " i " << i;
                        else
                            ASSERT_LE(std::abs(dk8), 1) << what << " t " << t << " i " << i;
                        ASSERT_EQ(gv[size_t(r * kv_dim + i)], cv[size_t(i)]) << what;
                    }
                    for (int h = 0; h < n_kv; ++h) {
                        // With RoPE the CPU and the GPU may differ in the angle pos * theta by
                        // a few ulps of pos (2^-21 pos covers 4 at pos 3000: 2.4e-4 rad), which
                        // moves a rotated element by up to |pair| times that; the scale (the
                        // head's max |K - mean| / 127) by at most the largest such move / 127.
                        float kmax = 0.0f;
                        for (int c = 0; c < hd; ++c)
                            kmax = std::max(kmax, std::fabs(wk[size_t(t * kv_dim + h * hd + c)]));
                        const float angle_tol =
                            std::sqrt(2.0f) * kmax * float(pos[size_t(t)]) * 0x1p-21f / 127.0f;
                        if (n_rot == 0)
                            ASSERT_EQ(gks[size_t(r * n_kv + h)], cks[size_t(h)]) << what;
                        else
                            ASSERT_NEAR(gks[size_t(r * n_kv + h)], cks[size_t(h)],
                                        1e-5f * cks[size_t(h)] + angle_tol)
                                << what << " t " << t << " pos " << pos[size_t(t)];
                        ASSERT_EQ(gvs[size_t(r * n_kv + h)], cvs[size_t(h)]) << what;
                    }
                }
            }
        }
    }
    struct Shape {
        int n_head, n_kv, hd;
        std::vector<int> q_len, kv_len;
        int block;
    };
    const std::vector<Shape> shapes = {
        {32, 8, 128, {1}, {4097}, 64},
        {8, 8, 64, {1}, {1}, 64},
        {28, 4, 128, {2}, {1003}, 64},
        {8, 2, 64, {4}, {77}, 16},
        {32, 8, 128, {1, 1, 1, 1, 1, 1, 1, 1}, {1, 7, 64, 65, 100, 129, 3000, 33}, 64},
        {32, 8, 128, {100}, {4100}, 64},
        {8, 2, 64, {1, 40, 1, 17, 3}, {90, 40, 1, 200, 3}, 16},
        {32, 2, 128, {2}, {40}, 32},  // G * q > 16: the tile kernel
        // a few queries per sequence, different per sequence: the decode kernel, then tiles
        {8, 2, 128, {1, 3, 2, 4, 1}, {10, 70, 33, 129, 64}, 64},
        {32, 8, 128, {2, 4, 1, 3}, {500, 17, 64, 1000}, 64},
        {8, 2, 128, {1, 5, 2, 4, 1}, {10, 70, 33, 129, 64}, 64},
    };
    for (const Shape& sh : shapes) {
        llm8_test::PagedCase c = paged_case(sh, rng, false, 4.0f);
        llm8_test::I8Pools pools = llm8_test::to_i8(c);
        std::vector<int8_t>&k8 = pools.k8, &v8 = pools.v8;
        std::vector<float>&ks = pools.ks, &vs = pools.vs;
        // The CPU over the same INT8 pools.
        std::vector<float> want(c.q.size());
        llm8::AttnParams hp =
            c.params(c.q.data(), want.data(), k8.data(), v8.data(), c.q_start.data(), c.kvl.data(),
                     c.tables.data(), llm8::KvType::i8, ks.data(), vs.data());
        llm8::cpu::attention(hp);
        Dev<float> dq(c.q), out(c.q.size()), dks(ks), dvs(vs);
        Dev<int8_t> dk(k8), dv(v8);
        Dev<int32_t> dqs(c.q_start), dkvl(c.kvl), dt(c.tables);
        llm8::AttnParams p = c.params(dq.get(), out.get(), dk.get(), dv.get(), dqs.get(),
                                      dkvl.get(), dt.get(), llm8::KvType::i8, dks.get(), dvs.get());
        Dev<float> ws(llm8::cuda::attention_workspace_floats(c.n_tokens, c.n_head, c.hd, c.max_kv));
        p.ws = ws.get();
        p.ws_floats = ws.size();
        const std::string what = std::to_string(sh.n_head) + "/" + std::to_string(sh.n_kv) +
                                 " hd " + std::to_string(sh.hd) + " q0 " +
                                 std::to_string(sh.q_len[0]) + " kv0 " + std::to_string(sh.kv_len[0]);
        int ran = 0;
        out.poison();
        if (llm8::cuda::attention_decode_mma(p, nullptr)) {
            ++ran;
            const double e = nmse(out.download(), want);
            std::printf("int8 cache, decode %s: nmse %.3g\n", what.c_str(), e);
            EXPECT_LT(e, 2e-5) << "decode " << what;
        }
        out.poison();
        if (llm8::cuda::attention_f16_mma(p, nullptr)) {
            ++ran;
            const double e = nmse(out.download(), want);
            std::printf("int8 cache, tiles %s: nmse %.3g\n", what.c_str(), e);
            EXPECT_LT(e, 2e-5) << "tiles " << what;
        }
        out.poison();
        llm8::cuda::attention(p, nullptr);  // the dispatcher finds a kernel for every shape
        EXPECT_LT(nmse(out.download(), want), 2e-5) << "dispatch " << what;
        EXPECT_GE(ran, 1);
    }
}

TEST(CudaOps, Int8CacheWriteInTheDecodeAttentionEqualsRopeStoreI8) {
    // The INT8 cache's decode step with its write folded in (plan: "+RoPE (K/V quantized by the
    // attention)"): the Q/K/V GEMV's qkv_rope epilogue leaves K and V as floats, the decode
    // attention quantizes them into the pool (AttnParams::new_k). Against the unfused step
    // (GEMV store, rope_store_i8, attention): the same pool bytes and scales everywhere, the
    // same Q, the same output, bit for bit.
    LLM8_REQUIRE_GPU();
    using llm8::cuda::GemvMode;
    std::mt19937 rng(std::random_device{}());
    struct Shape {
        int n_head, n_kv, hd;
        std::vector<int> q_len, kv_len;
        int block;
    };
    // One token of one sequence (the forward's fused case), through the GEMV.
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::F16}) {
        for (int hd : {64, 128}) {
            const int n_head = 8, n_kv = 2, n_rot = hd - 32, kv_dim = n_kv * hd;
            const int64_t K = 256;
            const Shape sh{n_head, n_kv, hd, {1}, {300}, 64};
            llm8_test::PagedCase c = paged_case(sh, rng, false, 4.0f);
            const llm8_test::I8Pools pools = llm8_test::to_i8(c);
            const int64_t rows[3] = {int64_t(n_head) * hd, kv_dim, kv_dim};
            const DeviceUpload u0(make_matrix(t, K, rows[0], rng)),
                u1(make_matrix(t, K, rows[1], rng)), u2(make_matrix(t, K, rows[2], rng));
            const llm8::cuda::DeviceMatrix dm[3] = {u0.dm, u1.dm, u2.dm};
            const auto x = randn(size_t(K), rng), nw = randn(size_t(K), rng);
            const auto bq = randn(size_t(rows[0]), rng), bk = randn(size_t(kv_dim), rng),
                       bv = randn(size_t(kv_dim), rng);
            Dev<float> dx(x), dnw(nw), xf(static_cast<size_t>(K)), xds(static_cast<size_t>(K / 16)),
                dbq(bq), dbk(bk), dbv(bv), dmean(pools.mean);
            Dev<int8_t> xq(static_cast<size_t>(K));
            const auto kind = llm8::cuda::decode_act_kind(dm[0]);
            llm8::cuda::decode_act(dx.get(), K, dnw.get(), 1e-5f, kind, xf.get(), xq.get(),
                                   xds.get(), nullptr);
            llm8::cuda::DecodeAct a;
            a.kind = kind;
            a.f = xf.get();
            a.q = xq.get();
            a.ds = xds.get();
            const int32_t slot = int32_t(c.row(0, 299));
            Dev<int32_t> pos(std::vector<int32_t>{299}), dslot(std::vector<int32_t>{slot});
            Dev<int32_t> dqs(c.q_start), dkvl(c.kvl), dt(c.tables);
            Dev<float> ws(llm8::cuda::attention_workspace_floats(1, n_head, hd, 300));
            struct Run {
                std::vector<float> q, out, ks, vs;
                std::vector<int8_t> k8, v8;
            };
            auto run = [&](bool fused) {
                Dev<float> q(static_cast<size_t>(rows[0])), k(static_cast<size_t>(kv_dim)),
                    v(static_cast<size_t>(kv_dim)), out(static_cast<size_t>(rows[0])), ks(pools.ks),
                    vs(pools.vs);
                Dev<int8_t> k8(pools.k8), v8(pools.v8);
                float* const ys[3] = {q.get(), k.get(), v.get()};
                llm8::AttnParams p =
                    c.params(q.get(), out.get(), k8.get(), v8.get(), dqs.get(), dkvl.get(),
                             dt.get(), llm8::KvType::i8, ks.get(), vs.get());
                p.ws = ws.get();
                p.ws_floats = ws.size();
                if (fused) {
                    llm8::cuda::RopeFuse rf;  // kc, vc null: K and V to ys[1], ys[2]
                    rf.pos = pos.get();
                    rf.slot = dslot.get();
                    rf.bq = dbq.get();
                    rf.bk = dbk.get();
                    rf.bv = dbv.get();
                    rf.head_dim = hd;
                    rf.n_rot = n_rot;
                    EXPECT_TRUE(
                        llm8::cuda::gemv_decode(dm, ys, 3, a, GemvMode::qkv_rope, nullptr, &rf));
                    p.new_k = k.get();
                    p.new_v = v.get();
                    p.k_mean = dmean.get();
                } else {
                    EXPECT_TRUE(llm8::cuda::gemv_decode(dm, ys, 3, a, GemvMode::store, nullptr));
                    llm8::cuda::rope_store_i8(
                        q.get(), k.get(), v.get(), dbq.get(), dbk.get(), dbv.get(), dmean.get(),
                        k8.get(), v8.get(), ks.get(), vs.get(), 1, pos.get(), dslot.get(), n_head,
                        n_kv, hd, n_rot, llm8::RopeLayout::norm, 10000.0f, 1.0f, nullptr, nullptr);
                }
                llm8::cuda::attention(p, nullptr);
                return Run{q.download(),  out.download(), ks.download(),
                           vs.download(), k8.download(),  v8.download()};
            };
            const Run want = run(false), got = run(true);
            const std::string what = std::string(llm8::type_name(t)) + " hd " + std::to_string(hd);
            EXPECT_EQ(got.q, want.q) << what;
            EXPECT_EQ(got.k8, want.k8) << what;
            EXPECT_EQ(got.v8, want.v8) << what;
            EXPECT_EQ(got.ks, want.ks) << what;
            EXPECT_EQ(got.vs, want.vs) << what;
            EXPECT_EQ(got.out, want.out) << what;
            EXPECT_NE(want.k8, pools.k8) << what;  // the row was written
        }
    }
    // The kernel's side alone over batches of sequences with several new tokens each (their
    // rows in the last key split, in blocks of 16 and 64 keys): against rope_store_i8 without
    // rotation at the same rows.
    const std::vector<Shape> shapes = {
        {32, 8, 128, {1, 1, 1, 1, 1}, {1, 64, 65, 129, 5000}, 64},
        {8, 2, 64, {1, 3, 2, 4, 1}, {10, 70, 33, 129, 64}, 16},
        {8, 2, 128, {4, 2}, {4, 1000}, 64},
    };
    for (const Shape& sh : shapes) {
        llm8_test::PagedCase c = paged_case(sh, rng, false, 4.0f);
        const llm8_test::I8Pools pools = llm8_test::to_i8(c);
        const int kv_dim = c.n_kv * c.hd;
        const auto nk = randn(size_t(c.n_tokens) * kv_dim, rng, 3.0f),
                   nv = randn(size_t(c.n_tokens) * kv_dim, rng);
        std::vector<int32_t> slots;
        for (size_t s = 0; s < sh.q_len.size(); ++s)
            for (int t = 0; t < sh.q_len[s]; ++t)
                slots.push_back(int32_t(c.row(int(s), sh.kv_len[s] - sh.q_len[s] + t)));
        Dev<float> dq(c.q), dnk(nk), dnv(nv), dmean(pools.mean);
        Dev<int32_t> dqs(c.q_start), dkvl(c.kvl), dt(c.tables), dslots(slots),
            dpos(std::vector<int32_t>(slots.size(), 0));
        Dev<float> ws(llm8::cuda::attention_workspace_floats(c.n_tokens, c.n_head, c.hd, c.max_kv));
        std::vector<std::vector<int8_t>> k8(2), v8(2);
        std::vector<std::vector<float>> ks(2), vs(2), outs(2);
        for (int fused = 0; fused < 2; ++fused) {
            Dev<int8_t> dk(pools.k8), dv(pools.v8);
            Dev<float> dks(pools.ks), dvs(pools.vs), out(c.q.size());
            llm8::AttnParams p =
                c.params(dq.get(), out.get(), dk.get(), dv.get(), dqs.get(), dkvl.get(), dt.get(),
                         llm8::KvType::i8, dks.get(), dvs.get());
            p.ws = ws.get();
            p.ws_floats = ws.size();
            if (fused) {
                p.new_k = dnk.get();
                p.new_v = dnv.get();
                p.k_mean = dmean.get();
            } else {
                Dev<float> qcopy(c.q);  // rope_store_i8 rewrites Q (bias only here)
                llm8::cuda::rope_store_i8(qcopy.get(), dnk.get(), dnv.get(), nullptr, nullptr,
                                          nullptr, dmean.get(), dk.get(), dv.get(), dks.get(),
                                          dvs.get(), c.n_tokens, dpos.get(), dslots.get(), c.n_head,
                                          c.n_kv, c.hd, 0, llm8::RopeLayout::norm, 10000.0f, 1.0f,
                                          nullptr, nullptr);
            }
            ASSERT_TRUE(llm8::cuda::attention_decode_mma(p, nullptr));
            k8[size_t(fused)] = dk.download();
            v8[size_t(fused)] = dv.download();
            ks[size_t(fused)] = dks.download();
            vs[size_t(fused)] = dvs.download();
            outs[size_t(fused)] = out.download();
        }
        const std::string what = std::to_string(sh.n_head) + "/" + std::to_string(sh.n_kv) +
                                 " hd " + std::to_string(sh.hd);
        EXPECT_EQ(k8[1], k8[0]) << what;
        EXPECT_EQ(v8[1], v8[0]) << what;
        EXPECT_EQ(ks[1], ks[0]) << what;
        EXPECT_EQ(vs[1], vs[0]) << what;
        EXPECT_EQ(outs[1], outs[0]) << what;
    }
}

TEST(CudaOps, EightBitAttentionMatchesTheCpuRecipe) {
    // SageAttention and INT-FlashAttention on the GPU (attention_8bit_mma) against cpu::attention
    // in the same mode over the same pools: the quantized Q, K, V and their scales bit for bit
    // (cpu::quantize_q_8bit / prepare_kv_8bit), the output within float rounding (exp2 and the
    // order of sums may move a P quant by one step). Both caches, awkward shapes, K channel
    // outliers (the smoothing's case), batches mixing long and short sequences.
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(std::random_device{}());
    struct Shape {
        int n_head, n_kv, hd;
        std::vector<int> q_len, kv_len;
        int block;
        bool causal;
    };
    std::vector<Shape> shapes = {
        {8, 2, 64, {1, 40, 17, 3, 64}, {90, 40, 200, 3, 64}, 16, true},
        {28, 4, 128, {77}, {77}, 32, true},
        {8, 1, 128, {65, 16}, {129, 1000}, 64, false},
        {32, 8, 128, {100}, {4100}, 64, true},
        {16, 16, 64, {130}, {300}, 64, true},
        {4, 2, 64, {200}, {263}, 128, true},
    };
    // LLM8_TEST_QUICK=1 (compute-sanitizer runs): the first three shapes (both head dims,
    // batches, non-causal, both caches and modes).
    if (std::getenv("LLM8_TEST_QUICK")) shapes.resize(3);
    using llm8::AttnMode;
    using llm8::KvType;
    for (const Shape& sh : shapes) {
        for (KvType cache : {KvType::f16, KvType::i8}) {
            llm8_test::PagedCase c = paged_case(sh, rng, true, 4.0f);
            const int hd = c.hd;
            const bool i8 = cache == KvType::i8;
            // The INT8 pools (as the cache writes them), or the half pools as floats.
            llm8_test::I8Pools pools = i8 ? llm8_test::to_i8(c) : llm8_test::I8Pools{};
            std::vector<int8_t>&k8 = pools.k8, &v8 = pools.v8;
            std::vector<float>&ks = pools.ks, &vs = pools.vs;
            Dev<float> dq(c.q), out(c.q.size()), dks(ks), dvs(vs);
            Dev<uint16_t> dk16(c.kpool16), dv16(c.vpool16);
            Dev<int8_t> dk8(k8), dv8(v8);
            Dev<int32_t> dqs(c.q_start), dkvl(c.kvl), dt(c.tables);
            for (AttnMode mode : {AttnMode::sage, AttnMode::int8}) {
                const std::string what = std::string(llm8::attn_mode_name(mode)) + " " +
                                         llm8::kv_type_name(cache) + " cache " +
                                         std::to_string(sh.n_head) + "/" +
                                         std::to_string(sh.n_kv) + " hd " + std::to_string(hd) +
                                         " q0 " + std::to_string(sh.q_len[0]) + " kv0 " +
                                         std::to_string(sh.kv_len[0]) +
                                         (sh.causal ? "" : " non-causal");
                // The CPU in the same mode over the same values.
                std::vector<float> want(c.q.size());
                llm8::AttnParams hp =
                    i8 ? c.params(c.q.data(), want.data(), k8.data(), v8.data(), c.q_start.data(),
                                  c.kvl.data(), c.tables.data(), KvType::i8, ks.data(), vs.data())
                       : c.params(c.q.data(), want.data(), c.kpool.data(), c.vpool.data(),
                                  c.q_start.data(), c.kvl.data(), c.tables.data(), KvType::f32,
                                  ks.data(), vs.data());
                hp.mode = mode;
                hp.causal = sh.causal;
                llm8::cpu::attention(hp);

                llm8::AttnParams p =
                    i8 ? c.params(dq.get(), out.get(), dk8.get(), dv8.get(), dqs.get(), dkvl.get(),
                                  dt.get(), KvType::i8, dks.get(), dvs.get())
                       : c.params(dq.get(), out.get(), dk16.get(), dv16.get(), dqs.get(),
                                  dkvl.get(), dt.get(), KvType::f16, dks.get(), dvs.get());
                p.mode = mode;
                p.causal = sh.causal;
                p.kv_tiles = llm8::cuda::attention_kv_tiles(c.kvl.data(), int(c.kvl.size()));
                const size_t bytes = llm8::cuda::attention_8bit_workspace_bytes(
                    c.n_tokens, c.n_head, c.n_kv, hd, int(c.kvl.size()), p.kv_tiles);
                Dev<uint8_t> ws8(bytes);
                p.ws8 = ws8.get();
                p.ws8_bytes = bytes;
                out.poison();
                ASSERT_TRUE(llm8::cuda::attention_8bit_mma(p, nullptr)) << what;
                const auto got = out.download();
                const double e = nmse(got, want), e_exact = nmse(got, c.want);
                std::printf("%s: nmse vs CPU recipe %.3g, vs exact attention %.3g\n",
                            what.c_str(), e, e_exact);
                EXPECT_LT(e, 1e-6) << what;
                // (c.want is causal attention: the non-causal case has only the recipe's bound)
                if (sh.causal) {
                    EXPECT_LT(e_exact, mode == AttnMode::sage ? 1e-3 : 1e-2) << what;
                }

                // The integer parts, bit for bit.
                const auto ws = ws8.download();
                const llm8::cuda::Attn8Scratch sc = llm8::cuda::attention_8bit_scratch(p);
                const uint8_t* base = ws8.get();
                auto at = [&](const void* dptr) {
                    return ws.data() + (static_cast<const uint8_t*>(dptr) - base);
                };
                const int8_t* gk8 = reinterpret_cast<const int8_t*>(at(sc.k8));
                const float* gks = reinterpret_cast<const float*>(at(sc.ks));
                const uint8_t* gv = at(sc.v);
                const float* gvs = reinterpret_cast<const float*>(at(sc.vs));
                const int8_t* gq8 = reinterpret_cast<const int8_t*>(at(sc.q8));
                const float* gqs = reinterpret_cast<const float*>(at(sc.qs));
                int tile0 = 0;
                for (int s = 0; s < int(c.kvl.size()); ++s) {
                    const int n = c.kvl[size_t(s)];
                    for (int hk = 0; hk < c.n_kv; ++hk) {
                        llm8::cpu::Kv8 kv;
                        llm8::cpu::prepare_kv_8bit(hp, s, hk, kv);
                        for (int j = 0; j < n; ++j) {
                            const int64_t ti = int64_t(tile0 + j / 64) * c.n_kv + hk;
                            const int r = j % 64;
                            ASSERT_EQ(gks[ti * 64 + r], kv.k_scale[size_t(j / kv.k_group)])
                                << what << " K scale, key " << j;
                            for (int d = 0; d < hd; ++d) {
                                ASSERT_EQ(gk8[(ti * 64 + r) * hd + d],
                                          kv.k[size_t(j) * size_t(hd) + size_t(d)])
                                    << what << " K8 key " << j << " dim " << d;
                                if (mode == AttnMode::sage) {
                                    const uint16_t hv =
                                        reinterpret_cast<const uint16_t*>(gv)[(ti * 64 + r) * hd + d];
                                    ASSERT_EQ(llm8::fp16_to_fp32(hv),
                                              kv.v16[size_t(j) * size_t(hd) + size_t(d)])
                                        << what << " V16 key " << j;
                                } else {
                                    const int8_t b = reinterpret_cast<const int8_t*>(
                                        gv)[ti * 64 * hd + d * 64 +
                                            llm8::cuda::attention_8bit_vt_pos(r)];
                                    ASSERT_EQ(b, kv.v8[size_t(j) * size_t(hd) + size_t(d)])
                                        << what << " V8 key " << j << " dim " << d;
                                }
                            }
                            if (mode == AttnMode::int8 && i8) {
                                ASSERT_EQ(gvs[ti * 64 + r], kv.v_token_scale[size_t(j)]) << what;
                            }
                        }
                        if (mode == AttnMode::int8 && !i8) {
                            for (int d = 0; d < hd; ++d)
                                ASSERT_EQ(gvs[(int64_t(s) * c.n_kv + hk) * hd + d],
                                          kv.v_scale[size_t(d)])
                                    << what << " V scale " << d;
                        }
                    }
                    for (int h = 0; h < c.n_head; ++h) {
                        std::vector<int8_t> q8;
                        std::vector<float> qs;
                        llm8::cpu::quantize_q_8bit(hp, s, h, q8, qs);
                        const int q_len = c.q_len[size_t(s)];
                        for (int i = 0; i < q_len; ++i) {
                            const int64_t row = c.q_start[size_t(s)] + i;
                            ASSERT_EQ(gqs[row * c.n_head + h],
                                      qs[size_t(mode == AttnMode::sage ? i / 64 : i)])
                                << what << " Q scale row " << i;
                            for (int d = 0; d < hd; ++d)
                                ASSERT_EQ(gq8[(row * c.n_head + h) * hd + d],
                                          q8[size_t(i) * size_t(hd) + size_t(d)])
                                    << what << " Q8 row " << i << " dim " << d;
                        }
                    }
                    tile0 += (n + 63) / 64;
                }
            }
        }
    }
}

TEST(CudaOps, StoreKvConvertsToHalfAtTheSlotsAndBlocksCopy) {
    LLM8_REQUIRE_GPU();
    std::mt19937 rng(3);
    const int kv = 24;
    const int64_t n = 3, ctx = 12;
    const auto k = randn(size_t(n * kv), rng), v = randn(size_t(n * kv), rng);
    Dev<float> dk(k), dv(v);
    Dev<uint16_t> kc(size_t(ctx * kv)), vc(size_t(ctx * kv));
    const std::vector<int32_t> slots = {6, 1, 9};
    Dev<int32_t> dslots(slots);
    llm8::cuda::store_kv(dk.get(), dv.get(), kc.get(), vc.get(), n, dslots.get(), kv, nullptr);
    const auto gk = kc.download(), gv = vc.download();
    for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < kv; ++i) {
            EXPECT_EQ(gk[size_t(slots[size_t(t)] * kv + i)], llm8::fp32_to_fp16(k[size_t(t * kv + i)]));
            EXPECT_EQ(gv[size_t(slots[size_t(t)] * kv + i)], llm8::fp32_to_fp16(v[size_t(t * kv + i)]));
        }
    EXPECT_EQ(gk[0], 0xffff);  // untouched rows keep the poison
    // Copy on write: block 1 (rows 4..7 with 4-row blocks) onto block 2.
    Dev<int32_t> pairs(std::vector<int32_t>{1, 2});
    llm8::cuda::copy_kv_blocks(kc.get(), pairs.get(), 1, 4 * kv * 2, nullptr);
    const auto gc = kc.download();
    for (int64_t i = 0; i < 4 * kv; ++i) EXPECT_EQ(gc[size_t(8 * kv + i)], gc[size_t(4 * kv + i)]);
}

TEST(CudaOps, UnsupportedTypeIsAnError) {
    LLM8_REQUIRE_GPU();
    llm8::cuda::DeviceMatrix dm{static_cast<GgmlType>(16), 256, 1, 66, nullptr};  // iq2_xxs
    EXPECT_THROW(llm8::cuda::gemv(dm, nullptr, 1, nullptr, nullptr), llm8::Error);
    llm8::cuda::DeviceMatrix odd{GgmlType::Q8_0, 20, 1, 34, nullptr};  // not a whole block
    EXPECT_THROW(llm8::cuda::gemv(odd, nullptr, 1, nullptr, nullptr), llm8::Error);
}

#else
TEST(CudaOps, Skipped) {
    GTEST_SKIP() << "llm8 was built without CUDA";
}
#endif
