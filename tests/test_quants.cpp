// Block formats of src/gguf/quants.cpp against fixtures written by gguf-py (the numpy
// implementation of the llama.cpp project, see tests/data/quants/README.md), plus round trips,
// fused dot products and the half / bfloat16 conversions.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/quants.h"
#include "test_util.h"

namespace {

using llm8::GgmlType;

struct TypeCase {
    GgmlType type;
    const char* file;  // fixture base name
};

void PrintTo(const TypeCase& c, std::ostream* os) {
    *os << c.file;
}

const TypeCase kTypes[] = {
    {GgmlType::F32, "f32"},   {GgmlType::F16, "f16"},       {GgmlType::BF16, "bf16"},
    {GgmlType::Q4_0, "q4_0"}, {GgmlType::Q4_1, "q4_1"},     {GgmlType::Q5_0, "q5_0"},
    {GgmlType::Q5_1, "q5_1"}, {GgmlType::Q8_0, "q8_0"},     {GgmlType::Q4_K, "q4_K"},
    {GgmlType::Q5_K, "q5_K"}, {GgmlType::Q6_K, "q6_K"},     {GgmlType::Q2_K, "q2_K"},
    {GgmlType::Q3_K, "q3_K"}, {GgmlType::IQ4_NL, "iq4_nl"}, {GgmlType::IQ4_XS, "iq4_xs"},
};

std::string fixture(const std::string& name) {
    return llm8_test::source_dir() + "/tests/data/quants/" + name;
}

std::vector<float> to_floats(const std::string& bytes) {
    std::vector<float> v(bytes.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * 4);
    return v;
}

uint32_t float_bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

int64_t block_size(GgmlType t) {
    return llm8::type_traits(t)->block_size;
}

// Fresh per run; LLM8_TEST_SEED=<n> repeats a run. Printed once.
uint32_t test_seed() {
    static const uint32_t seed = [] {
        const char* env = std::getenv("LLM8_TEST_SEED");
        const uint32_t s = env && *env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                                       : std::random_device{}();
        std::printf("test_quants: random seed %u (LLM8_TEST_SEED=%u repeats it)\n", s, s);
        return s;
    }();
    return seed;
}

std::vector<float> gaussian(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (float& f : v) f = nd(rng);
    return v;
}

// ---- dequantization against gguf-py ----------------------------------------------------------

class QuantType : public ::testing::TestWithParam<TypeCase> {};

TEST_P(QuantType, DequantizeMatchesGgufPyBitForBit) {
    const TypeCase& tc = GetParam();
    const std::string bin = fixture(std::string(tc.file) + ".bin");
    const std::string f32 = fixture(std::string(tc.file) + ".f32");
    ASSERT_TRUE(llm8_test::file_exists(bin)) << bin;
    ASSERT_TRUE(llm8_test::file_exists(f32)) << f32;
    const std::string blocks = llm8_test::read_file(bin);
    const std::vector<float> expect = to_floats(llm8_test::read_file(f32));
    const int64_t n = static_cast<int64_t>(expect.size());
    ASSERT_GT(n, 0);
    ASSERT_EQ(llm8::row_size(tc.type, n), blocks.size());

    std::vector<float> got(n, -12345.0f);
    llm8::dequantize_row(tc.type, blocks.data(), got.data(), n);
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(expect[i]) && std::isnan(got[i])) continue;
        if (float_bits(expect[i]) != float_bits(got[i]) && ++mismatches <= 5)
            ADD_FAILURE() << tc.file << " element " << i << ": expected " << expect[i] << " got "
                          << got[i];
    }
    EXPECT_EQ(mismatches, 0);

    // Dequantizing one block at a time from an offset row gives the same floats.
    const int64_t bs = block_size(tc.type);
    const size_t bytes = llm8::row_size(tc.type, bs);
    std::vector<float> one(bs);
    for (int64_t b = 0; b < n / bs; ++b) {
        llm8::dequantize_row(tc.type, blocks.data() + b * bytes, one.data(), bs);
        EXPECT_EQ(std::memcmp(one.data(), got.data() + b * bs, bs * 4), 0) << "block " << b;
    }
}

// ---- fused dot product -------------------------------------------------------------------------

// Quantized data for a row of n elements: random bytes with the half scales set to sane values
// (so any bit pattern of the quants is exercised), or for F32/F16/BF16 random values.
std::vector<uint8_t> random_row(GgmlType t, int64_t n, std::mt19937& rng) {
    std::vector<uint8_t> row(llm8::row_size(t, n));
    std::uniform_int_distribution<int> byte(0, 255);
    for (uint8_t& b : row) b = static_cast<uint8_t>(byte(rng));
    std::uniform_real_distribution<float> u(0.005f, 0.05f);
    auto set_half = [&](size_t off, float v) {
        const uint16_t h = llm8::fp32_to_fp16(v);
        std::memcpy(row.data() + off, &h, 2);
    };
    const size_t ts = llm8::type_traits(t)->type_size;
    const int64_t nb = n / block_size(t);
    if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
        std::vector<float> v = gaussian(n, rng);
        if (t == GgmlType::F32)
            std::memcpy(row.data(), v.data(), n * 4);
        else
            llm8::quantize_row(t, v.data(), row.data(), n);
        return row;
    }
    for (int64_t b = 0; b < nb; ++b) {
        const size_t off = b * ts;
        switch (t) {
            case GgmlType::Q4_1:
            case GgmlType::Q5_1:
                set_half(off, u(rng));
                set_half(off + 2, -0.3f);
                break;
            case GgmlType::Q4_K:
            case GgmlType::Q5_K:
                set_half(off, u(rng));
                set_half(off + 2, u(rng));
                break;
            case GgmlType::Q6_K:
                set_half(off + 208, u(rng));
                break;
            case GgmlType::Q2_K:
                set_half(off + 80, u(rng));
                set_half(off + 82, u(rng));
                break;
            case GgmlType::Q3_K:
                set_half(off + 108, u(rng));
                break;
            default:
                set_half(off, u(rng));
                break;
        }
    }
    return row;
}

TEST_P(QuantType, VecDotMatchesDequantizeThenDot) {
    const TypeCase& tc = GetParam();
    std::mt19937 rng(test_seed());
    const int64_t bs = std::max<int64_t>(block_size(tc.type), 32);
    for (int64_t blocks : {1, 3, 17}) {
        for (int64_t n : {blocks * bs, blocks * bs + (block_size(tc.type) == 1 ? 5 : 0)}) {
            const std::vector<uint8_t> w = random_row(tc.type, n, rng);
            const std::vector<float> x = gaussian(n, rng);
            std::vector<float> deq(n);
            llm8::dequantize_row(tc.type, w.data(), deq.data(), n);
            double ref = 0.0, mag = 0.0;
            for (int64_t i = 0; i < n; ++i) {
                ref += double(deq[i]) * x[i];
                mag += std::fabs(double(deq[i]) * x[i]);
            }
            const float got = llm8::vec_dot_row(tc.type, w.data(), x.data(), n);
            // float accumulation: error well under n * eps * sum|w_i x_i|
            EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-30)
                << tc.file << " n=" << n << " seed=" << test_seed();
            // Rows and activations need no alignment: the same bits from odd addresses.
            std::vector<uint8_t> w_odd(w.size() + 1);
            std::vector<float> x_odd(n + 1);
            std::memcpy(w_odd.data() + 1, w.data(), w.size());
            std::memcpy(x_odd.data() + 1, x.data(), n * 4);
            const float odd = llm8::vec_dot_row(tc.type, w_odd.data() + 1, x_odd.data() + 1, n);
            EXPECT_EQ(float_bits(odd), float_bits(got)) << tc.file << " n=" << n;
        }
    }
}

TEST_P(QuantType, WholeNumberOfBlocksRequired) {
    const TypeCase& tc = GetParam();
    const int64_t bs = block_size(tc.type);
    std::vector<uint8_t> buf(4096);
    std::vector<float> f(1024);
    if (bs == 1) {
        EXPECT_THROW(llm8::dequantize_row(tc.type, buf.data(), f.data(), -1), llm8::Error);
        return;
    }
    for (int64_t n : {bs - 1, bs + 1, bs / 2 + bs}) {
        try {
            llm8::dequantize_row(tc.type, buf.data(), f.data(), n);
            ADD_FAILURE() << "no throw for n=" << n;
        } catch (const llm8::Error& e) {
            EXPECT_EQ(e.kind(), llm8::ErrorKind::format);
        }
        EXPECT_THROW(llm8::quantize_row(tc.type, f.data(), buf.data(), n), llm8::Error);
        EXPECT_THROW(llm8::vec_dot_row(tc.type, buf.data(), f.data(), n), llm8::Error);
    }
    // n == 0 is a valid empty row
    EXPECT_NO_THROW(llm8::dequantize_row(tc.type, buf.data(), f.data(), 0));
    EXPECT_EQ(llm8::vec_dot_row(tc.type, buf.data(), f.data(), 0), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantType, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<TypeCase>& info) {
                             return std::string(info.param.file);
                         });

// ---- reference quantizers against gguf-py
// --------------------------------------------------------

class RefQuantizer : public ::testing::TestWithParam<TypeCase> {};

TEST_P(RefQuantizer, MatchesGgufPyBitForBit) {
    const TypeCase& tc = GetParam();
    const std::string src_path = fixture(std::string(tc.file) + ".src.f32");
    const std::string q_path = fixture(std::string(tc.file) + ".quant.bin");
    ASSERT_TRUE(llm8_test::file_exists(src_path)) << src_path;
    const std::vector<float> src = to_floats(llm8_test::read_file(src_path));
    const std::string expect = llm8_test::read_file(q_path);
    const int64_t n = static_cast<int64_t>(src.size());
    ASSERT_EQ(llm8::row_size(tc.type, n), expect.size());
    std::string got(expect.size(), '\xAA');
    llm8::quantize_row(tc.type, src.data(), got.data(), n);
    const size_t ts = llm8::type_traits(tc.type)->type_size;
    int mismatches = 0;
    for (size_t b = 0; b < expect.size() / ts; ++b) {
        if (std::memcmp(got.data() + b * ts, expect.data() + b * ts, ts) != 0 && ++mismatches <= 5)
            ADD_FAILURE() << tc.file << ": block " << b << " differs";
    }
    EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    GgufPy, RefQuantizer,
    ::testing::Values(TypeCase{GgmlType::F16, "f16"}, TypeCase{GgmlType::BF16, "bf16"},
                      TypeCase{GgmlType::Q4_0, "q4_0"}, TypeCase{GgmlType::Q4_1, "q4_1"},
                      TypeCase{GgmlType::Q5_0, "q5_0"}, TypeCase{GgmlType::Q5_1, "q5_1"},
                      TypeCase{GgmlType::Q8_0, "q8_0"}),
    [](const ::testing::TestParamInfo<TypeCase>& info) { return std::string(info.param.file); });

// ---- round trips -------------------------------------------------------------------------------

struct RoundTripCase {
    GgmlType type;
    const char* name;
    double gauss_bound;    // RMSE / RMS on N(0, s^2) data
    double uniform_bound;  // RMSE / RMS on U(-s, s) data
};

void PrintTo(const RoundTripCase& c, std::ostream* os) {
    *os << c.name;
}

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

double relative_rmse(GgmlType t, const std::vector<float>& x) {
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> q(llm8::row_size(t, n));
    std::vector<float> y(n);
    llm8::quantize_row(t, x.data(), q.data(), n);
    llm8::dequantize_row(t, q.data(), y.data(), n);
    double se = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        se += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        ss += double(x[i]) * x[i];
    }
    return std::sqrt(se / ss);
}

TEST_P(RoundTrip, ErrorWithinBound) {
    const RoundTripCase& rc = GetParam();
    std::mt19937 rng(test_seed());
    const int64_t n = 256 * 64;
    for (float scale : {1e-3f, 1.0f, 40.0f}) {
        const std::vector<float> g = gaussian(n, rng, scale);
        std::uniform_real_distribution<float> ud(-scale, scale);
        std::vector<float> u(n);
        for (float& f : u) f = ud(rng);
        const double eg = relative_rmse(rc.type, g), eu = relative_rmse(rc.type, u);
        EXPECT_LT(eg, rc.gauss_bound)
            << rc.name << " gaussian, scale " << scale << " seed=" << test_seed();
        EXPECT_LT(eu, rc.uniform_bound)
            << rc.name << " uniform, scale " << scale << " seed=" << test_seed();
        if (scale == 1.0f)
            std::printf("[ %-5s ] relative RMSE gaussian %.5f uniform %.5f\n", rc.name, eg, eu);
    }
    // Degenerate blocks survive: zeros stay exactly zero, a constant row stays near constant.
    const int64_t bs = std::max<int64_t>(block_size(rc.type), 1) * 2;
    std::vector<float> zeros(bs, 0.0f), back(bs, 1.0f);
    std::vector<uint8_t> q(llm8::row_size(rc.type, bs));
    llm8::quantize_row(rc.type, zeros.data(), q.data(), bs);
    llm8::dequantize_row(rc.type, q.data(), back.data(), bs);
    for (float f : back) EXPECT_EQ(f, 0.0f) << rc.name;
    std::vector<float> konst(bs, 0.625f);
    llm8::quantize_row(rc.type, konst.data(), q.data(), bs);
    llm8::dequantize_row(rc.type, q.data(), back.data(), bs);
    for (float f : back) EXPECT_NEAR(f, 0.625f, 0.625f * 0.02) << rc.name;
}

// Bounds are about 1.3x what the quantizers reach (the test prints it), so a regression of
// the scale search or a bit-packing slip shows. Measured, relative RMSE gaussian / uniform:
// f16 2.1e-4 / 1.9e-4, bf16 1.7e-3 / 1.5e-3, q8_0 .0055 / .0038, q4_0 .087 / .065,
// q4_1 .079 / .061, q5_0 .043 / .031, q5_1 .038 / .030, q4_K .074 / .057, q5_K .038 / .029,
// q6_K .0185 / .0142, q2_K .266 / .220, q3_K .142 / .118, iq4_nl .073 / .062,
// iq4_xs .074 / .062. (The four low-bit types search their scales, quant_search.cpp: ggml's
// max/qmax choice alone gives q2_K ~.45.)
INSTANTIATE_TEST_SUITE_P(AllTypes, RoundTrip,
                         ::testing::Values(RoundTripCase{GgmlType::F32, "f32", 1e-30, 1e-30},
                                           RoundTripCase{GgmlType::F16, "f16", 2.8e-4, 2.5e-4},
                                           RoundTripCase{GgmlType::BF16, "bf16", 2.2e-3, 2.0e-3},
                                           RoundTripCase{GgmlType::Q8_0, "q8_0", 0.0072, 0.0050},
                                           RoundTripCase{GgmlType::Q4_0, "q4_0", 0.115, 0.085},
                                           RoundTripCase{GgmlType::Q4_1, "q4_1", 0.103, 0.080},
                                           RoundTripCase{GgmlType::Q5_0, "q5_0", 0.056, 0.041},
                                           RoundTripCase{GgmlType::Q5_1, "q5_1", 0.050, 0.039},
                                           RoundTripCase{GgmlType::Q4_K, "q4_K", 0.097, 0.075},
                                           RoundTripCase{GgmlType::Q5_K, "q5_K", 0.049, 0.038},
                                           RoundTripCase{GgmlType::Q6_K, "q6_K", 0.024, 0.019},
                                           RoundTripCase{GgmlType::Q2_K, "q2_K", 0.35, 0.29},
                                           RoundTripCase{GgmlType::Q3_K, "q3_K", 0.19, 0.155},
                                           RoundTripCase{GgmlType::IQ4_NL, "iq4_nl", 0.095, 0.081},
                                           RoundTripCase{GgmlType::IQ4_XS, "iq4_xs", 0.096, 0.081}),
                         [](const ::testing::TestParamInfo<RoundTripCase>& info) {
                             return std::string(info.param.name);
                         });

// ---- unsupported types -------------------------------------------------------------------------

TEST(Quants, UnsupportedTypesThrow) {
    std::vector<uint8_t> buf(4096);
    std::vector<float> f(256);
    // q8_1, q8_K, iq2_xxs, iq3_s, iq1_m, tq2_0: ggml types llm8 does not compute with; 4 and
    // 1000: no type at all.
    for (uint32_t id : {9u, 15u, 16u, 21u, 29u, 35u, 4u, 1000u}) {
        const GgmlType t = static_cast<GgmlType>(id);
        try {
            llm8::dequantize_row(t, buf.data(), f.data(), 256);
            ADD_FAILURE() << "no throw for type " << id;
        } catch (const llm8::Error& e) {
            EXPECT_EQ(e.kind(), llm8::ErrorKind::unsupported) << id;
            const llm8::TypeTraits* tt = llm8::type_traits(id);
            const std::string want = tt ? tt->name : std::to_string(id);
            EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
        }
        EXPECT_THROW(llm8::quantize_row(t, f.data(), buf.data(), 256), llm8::Error);
        EXPECT_THROW(llm8::vec_dot_row(t, buf.data(), f.data(), 256), llm8::Error);
    }
}

// ---- half and bfloat16 -------------------------------------------------------------------------

TEST(Fp16, AllHalvesRoundTrip) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = llm8::fp16_to_fp32(static_cast<uint16_t>(h));
        const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (is_nan) {
            ASSERT_TRUE(std::isnan(f)) << std::hex << h;
            const uint16_t back = llm8::fp32_to_fp16(f);
            ASSERT_EQ(back & 0x7c00, 0x7c00) << std::hex << h;
            ASSERT_NE(back & 0x3ff, 0) << std::hex << h;
            ASSERT_EQ(back & 0x8000, h & 0x8000) << std::hex << h;
        } else {
            ASSERT_EQ(llm8::fp32_to_fp16(f), h) << std::hex << h;
        }
    }
}

TEST(Fp16, MatchesDequantizeRowForAllHalves) {
    // dequantize_row(F16) has its own inline conversion; it must agree with fp16_to_fp32.
    std::vector<uint16_t> all(65536);
    for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
    std::vector<float> f(65536);
    llm8::dequantize_row(GgmlType::F16, all.data(), f.data(), 65536);
    for (uint32_t h = 0; h < 65536; ++h)
        ASSERT_EQ(float_bits(f[h]), float_bits(llm8::fp16_to_fp32(static_cast<uint16_t>(h))))
            << std::hex << h;
}

TEST(Fp16, KnownValues) {
    EXPECT_EQ(llm8::fp16_to_fp32(0x3c00), 1.0f);
    EXPECT_EQ(llm8::fp16_to_fp32(0xc000), -2.0f);
    EXPECT_EQ(llm8::fp16_to_fp32(0x7bff), 65504.0f);
    EXPECT_EQ(llm8::fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(llm8::fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
    EXPECT_TRUE(std::isinf(llm8::fp16_to_fp32(0x7c00)));
    EXPECT_EQ(float_bits(llm8::fp16_to_fp32(0x8000)), 0x80000000u);
}

TEST(Fp16, RoundsToNearestEven) {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
    EXPECT_EQ(llm8::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up.
    EXPECT_EQ(llm8::fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
    // just above the tie rounds up
    EXPECT_EQ(llm8::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
    EXPECT_EQ(llm8::fp32_to_fp16(2049.0f), 0x6800);  // 2048: even
    EXPECT_EQ(llm8::fp32_to_fp16(2051.0f), 0x6802);  // 2052: even
    EXPECT_EQ(llm8::fp32_to_fp16(-2049.0f), 0xe800);
    // subnormal ties: 0.5 and 1.5 units of 2^-24
    EXPECT_EQ(llm8::fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
    EXPECT_EQ(llm8::fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);
    EXPECT_EQ(llm8::fp32_to_fp16(std::ldexp(1.0f, -25) * 1.01f), 0x0001);
    // the largest subnormal rounds up into the smallest normal
    EXPECT_EQ(llm8::fp32_to_fp16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);
    EXPECT_EQ(llm8::fp32_to_fp16(-0.0f), 0x8000);
}

TEST(Fp16, OverflowsToInfinity) {
    EXPECT_EQ(llm8::fp32_to_fp16(65504.0f), 0x7bff);
    EXPECT_EQ(llm8::fp32_to_fp16(65519.0f), 0x7bff);  // below the halfway point to 65536
    EXPECT_EQ(llm8::fp32_to_fp16(65520.0f), 0x7c00);  // the tie rounds to even: inf
    EXPECT_EQ(llm8::fp32_to_fp16(1e6f), 0x7c00);
    EXPECT_EQ(llm8::fp32_to_fp16(-1e6f), 0xfc00);
    EXPECT_EQ(llm8::fp32_to_fp16(INFINITY), 0x7c00);
    EXPECT_EQ(llm8::fp32_to_fp16(-INFINITY), 0xfc00);
    EXPECT_EQ(llm8::fp32_to_fp16(3.4e38f), 0x7c00);
    const uint16_t nan = llm8::fp32_to_fp16(NAN);
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x3ff, 0);
}

TEST(Bf16, AllValuesRoundTrip) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = llm8::bf16_to_fp32(static_cast<uint16_t>(h));
        EXPECT_EQ(float_bits(f), h << 16);
        const bool is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
        if (is_nan) {
            ASSERT_TRUE(std::isnan(llm8::bf16_to_fp32(llm8::fp32_to_bf16(f)))) << std::hex << h;
        } else {
            ASSERT_EQ(llm8::fp32_to_bf16(f), h) << std::hex << h;
        }
    }
}

TEST(Bf16, RoundingAndOverflow) {
    EXPECT_EQ(llm8::fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie -> even
    EXPECT_EQ(llm8::fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even
    EXPECT_EQ(llm8::fp32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
    EXPECT_EQ(llm8::fp32_to_bf16(3.4e38f), 0x7f80);  // above the largest bf16: inf
    EXPECT_EQ(llm8::fp32_to_bf16(-INFINITY), 0xff80);
    // a signalling NaN whose payload sits in the low bits stays NaN
    uint32_t snan = 0x7f800001u;
    float f;
    std::memcpy(&f, &snan, 4);
    EXPECT_TRUE(std::isnan(llm8::bf16_to_fp32(llm8::fp32_to_bf16(f))));
}

}  // namespace
