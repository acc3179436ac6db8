// The whole forward pass on the GPU against the CPU engine: logits of small random models of
// every architecture and weight type (bounded by the half-precision KV cache and GEMM inputs),
// greedy text of stories260K, and perplexity of a trained model to 4 significant digits.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "gguf/gguf.h"
#include "llm8/engine.h"
#include "model/convert.h"
#include "model/quant_mix.h"
#include "llm8/sampling.h"
#include "model_builder.h"
#include "runtime/perplexity.h"

namespace {
// A GPU model with FP16 attention: the tests that hold the GPU to the CPU's numbers (the
// default on the GPU is --attn auto).
llm8::ModelParams gpu_f16(const std::string& path) {
    llm8::ModelParams mp{path, 99};
    mp.attn = "f16";
    return mp;
}
}  // namespace

using llm8::GgmlType;

using llm8_test::rel_err;

namespace {

// LLM8_TEST_QUICK=1 (compute-sanitizer runs, scripts/gpu-sanitize.sh): the slowest cases do
// less of the same work (fewer files, chunks or steps; every kernel they launch still runs),
// so that racecheck, which slows every launch, finishes them.
bool quick() {
    return std::getenv("LLM8_TEST_QUICK") != nullptr;
}

// Teacher-forced decode, one token per step, of the same tokens on a CPU and a GPU model:
// the mean negative log-likelihood of the next token on each side and the steps whose argmax
// agree.
struct DecodeNll {
    double cpu = 0, gpu = 0;  // mean NLL per step
    int same_argmax = 0;
};
DecodeNll teacher_forced_nll(const std::shared_ptr<const llm8::Model>& cpu,
                             const std::shared_ptr<const llm8::Model>& gpu,
                             const std::vector<int32_t>& tokens, int steps, int n_ctx) {
    const int V = cpu->n_vocab();
    llm8::Session sc(cpu, {n_ctx, n_ctx, 0}), sg(gpu, {n_ctx, n_ctx, 0});
    double nc = 0, ng = 0;
    DecodeNll r;
    for (int i = 0; i < steps; ++i) {
        sc.decode(&tokens[size_t(i)], 1);
        sg.decode(&tokens[size_t(i)], 1);
        nc -= llm8::token_logprob(sc.logits(), V, tokens[size_t(i) + 1]);
        ng -= llm8::token_logprob(sg.logits(), V, tokens[size_t(i) + 1]);
        r.same_argmax += llm8::argmax(sc.logits(), V) == llm8::argmax(sg.logits(), V);
    }
    r.cpu = nc / steps;
    r.gpu = ng / steps;
    return r;
}

}  // namespace

TEST(CudaModel, LogitsMatchCpuForEveryArchAndType) {
    LLM8_REQUIRE_GPU();
    struct C {
        const char* arch;
        GgmlType t;
        bool bias, qk_norm, tied;
        int hd;
    };
    const C cases[] = {{"llama", GgmlType::F32, false, false, false, 0},
                       {"llama", GgmlType::Q8_0, false, false, true, 0},
                       {"qwen2", GgmlType::F16, true, false, false, 0},
                       {"qwen3", GgmlType::BF16, false, true, false, 64},
                       {"llama", GgmlType::Q4_0, false, false, false, 0},
                       {"mistral", GgmlType::Q5_1, false, false, false, 0},
                       {"llama", GgmlType::Q4_K, false, false, false, 0},
                       {"qwen2", GgmlType::Q6_K, true, false, false, 0},
                       {"llama", GgmlType::Q2_K, false, false, false, 0},
                       {"mistral", GgmlType::Q3_K, false, false, false, 0},
                       {"llama", GgmlType::IQ4_NL, false, false, true, 0},
                       {"qwen2", GgmlType::IQ4_XS, true, false, false, 0}};
    for (const C& c : cases) {
        llm8_test::TinySpec s;
        s.arch = c.arch;
        s.wtype = c.t;
        s.biases = c.bias;
        s.qk_norm = c.qk_norm;
        s.tied = c.tied;
        s.head_dim = c.hd;
        s.n_embd = 256;
        s.n_ff = 512;
        s.n_head = 8;
        s.n_head_kv = 2;
        const std::string path = llm8_test::temp_path(std::string("cuda-") + c.arch + ".gguf");
        llm8_test::build_tiny_model(s).write(path);
        auto cpu = llm8::Model::load({path, 0});
        auto gpu = llm8::Model::load(gpu_f16(path));
        std::remove(path.c_str());
        ASSERT_TRUE(gpu->on_gpu());
        const int V = cpu->n_vocab();
        std::vector<int32_t> toks;
        for (int i = 0; i < 40; ++i) toks.push_back(int32_t((i * 37 + 5) % V));
        // Prefill of 40 (cuBLAS path), then 5 decode steps (GEMV + graph).
        llm8::Session sc(cpu, {64, 512, 0}), sg(gpu, {64, 512, 0});
        sc.decode(toks, true);
        sg.decode(toks, true);
        for (int t = 0; t < 40; ++t)
            EXPECT_LT(rel_err(sg.logits(t), sc.logits(t), V), 1e-2)
                << c.arch << " " << llm8::type_name(c.t) << " pos " << t;
        for (int i = 0; i < 5; ++i) {
            const int32_t tok = int32_t((i * 11 + 3) % V);
            sc.decode(&tok, 1);
            sg.decode(&tok, 1);
            // Q4_0/Q8_0 decode reads int8 activations (one step of 1/254 of each 32-element
            // unit's largest value); the trained-model NLL test below bounds what that costs.
            // So do the K-quants and i-quants (K split layout).
            const bool q8 = c.t == GgmlType::Q4_0 || c.t == GgmlType::Q8_0 ||
                            c.t == GgmlType::Q4_K || c.t == GgmlType::Q6_K ||
                            c.t == GgmlType::Q2_K || c.t == GgmlType::Q3_K ||
                            c.t == GgmlType::IQ4_NL || c.t == GgmlType::IQ4_XS;
            EXPECT_LT(rel_err(sg.logits(), sc.logits(), V), q8 ? 3e-2 : 1e-2)
                << c.arch << " " << llm8::type_name(c.t) << " decode " << i;
        }
    }
}

TEST(CudaModel, GreedyTextOfStories260KEqualsCpu) {
    LLM8_REQUIRE_GPU();
    auto cpu = llm8::Model::load({"", 0});
    auto gpu = llm8::Model::load({"", -1});
    ASSERT_TRUE(gpu->on_gpu());
    auto run = [](const std::shared_ptr<const llm8::Model>& m) {
        llm8::Session s(m, {512, 512, 0});
        auto toks = m->tokenize("Once upon a time", true);
        s.decode(toks);
        std::string text;
        for (int i = 0; i < 120; ++i) {
            const int32_t t = llm8::argmax(s.logits(), m->n_vocab());
            text += m->token_to_piece(t);
            s.decode(&t, 1);
        }
        return text;
    };
    const std::string a = run(cpu), b = run(gpu);
    EXPECT_EQ(a, b);
    EXPECT_EQ(b.rfind(", there was a little girl named Lily.", 0), 0u) << b;
}

TEST(CudaModel, PerplexityMatchesCpuTo4Digits) {
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto cpu = llm8::Model::load({model, 0});
    auto gpu = llm8::Model::load(gpu_f16(model));
    const auto tokens = cpu->tokenize(llm8_test::read_file(text).substr(0, 200000), true);
    const auto rc = llm8::perplexity(cpu, tokens, 512, 8, 512, 0);
    const auto rg = llm8::perplexity(gpu, tokens, 512, 8, 512, 0);
    std::printf("PPL cpu %.6f gpu %.6f\n", rc.ppl, rg.ppl);
    EXPECT_NEAR(rg.ppl, rc.ppl, 5e-5 * rc.ppl);
}

TEST(CudaModel, KlDivergenceOfGpuAgainstACpuBase) {
    // The CPU run is the base, the GPU run is compared with it (llm8-perplexity
    // --kl-divergence across backends): FP16 KV and tiles cost almost nothing.
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto cpu = llm8::Model::load({model, 0});
    auto gpu = llm8::Model::load(gpu_f16(model));
    const auto tokens = cpu->tokenize(llm8_test::read_file(text).substr(0, 60000), true);
    const std::string base = ::testing::TempDir() + "llm8_cuda_kl_base.kld";
    const auto rc = llm8::save_kl_base(cpu, tokens, 512, 4, 512, 0, base);
    const auto st = llm8::kl_divergence(gpu, base, 0, 512, 0);
    std::printf(
        "GPU against the CPU base: mean KLD %.3g, max %.3g, same top %.4f, PPL %.4f / %.4f\n",
        st.kld, st.kld_sorted.back(), st.same_top, st.ppl.ppl, rc.ppl);
    EXPECT_LT(st.kld, 1e-4);
    EXPECT_GT(st.same_top, 0.99);
    EXPECT_NEAR(st.ppl_base, rc.ppl, 1e-5 * rc.ppl);
    std::remove(base.c_str());
}

TEST(CudaModel, Int8CacheOnTheGpuMatchesTheCpuInt8Cache) {
    // -ctk int8 -ctv int8 on the GPU (rope_store_i8, the tile kernel for prefill chunks, the
    // decode kernel for single tokens) against the same cache on the CPU, and against the GPU's
    // F16 cache: perplexity over 4 chunks (prefill) and the NLL of 128 teacher-forced decode
    // steps. Each model measures its own K means at load (the GPU's through its F16 cache).
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto params = [&](int ngl, const char* cache) {
        llm8::ModelParams mp;
        mp.path = model;
        mp.n_gpu_layers = ngl;
        mp.attn = "f16";  // the cache alone
        mp.cache_type_k = mp.cache_type_v = cache;
        return mp;
    };
    auto cpu8 = llm8::Model::load(params(0, "int8"));
    auto gpu8 = llm8::Model::load(params(99, "q8_0"));
    auto gpu16 = llm8::Model::load(params(99, "f16"));
    ASSERT_TRUE(gpu8->on_gpu());
    ASSERT_TRUE(gpu8->kv_int8());
    const auto tokens = cpu8->tokenize(llm8_test::read_file(text).substr(0, 100000), true);
    const auto rc = llm8::perplexity(cpu8, tokens, 512, 4, 512, 0);
    const auto rg = llm8::perplexity(gpu8, tokens, 512, 4, 512, 0);
    const auto rf = llm8::perplexity(gpu16, tokens, 512, 4, 512, 0);
    std::printf("PPL int8 cache: cpu %.5f gpu %.5f; gpu f16 cache %.5f\n", rc.ppl, rg.ppl, rf.ppl);
    EXPECT_NEAR(rg.ppl, rc.ppl, 2e-3 * rc.ppl);
    EXPECT_NEAR(rg.ppl, rf.ppl, 2e-3 * rf.ppl);  // the bound for the cache alone
    const DecodeNll d = teacher_forced_nll(cpu8, gpu8, tokens, 128, 512);
    std::printf("decode NLL, int8 cache: cpu %.5f gpu %.5f\n", d.cpu, d.gpu);
    EXPECT_NEAR(d.gpu, d.cpu, 0.01);
}

TEST(CudaModel, EightBitAttentionOnTheGpuMatchesTheCpuAndTheGuardWorks) {
    // --attn sage / int8 on the GPU against the same modes on the CPU (perplexity over 4 chunks
    // of 512: every layer's attention runs the 8-bit prefill kernels), and within the guard's
    // accuracy of FP16; --attn auto calibrates on the GPU; thresholds no layer can pass keep
    // every layer FP16 at calibration, and the monitor switches a layer at run time.
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto params = [&](int ngl, const char* attn, const char* cache = "f16") {
        llm8::ModelParams mp;
        mp.path = model;
        mp.n_gpu_layers = ngl;
        mp.attn = attn;
        mp.cache_type_k = mp.cache_type_v = cache;
        return mp;
    };
    auto gpu16 = llm8::Model::load(params(99, "f16"));
    const auto tokens = gpu16->tokenize(llm8_test::read_file(text).substr(0, 100000), true);
    // Quick: one chunk of 512 instead of 4, and the bounds against FP16 twice as wide (fewer
    // tokens in the mean); the CPU-GPU bound stays (the same tokens on both).
    const int chunks = quick() ? 1 : 4;
    const double wide = quick() ? 2.0 : 1.0;
    const double f16 = llm8::perplexity(gpu16, tokens, 512, chunks, 512, 0).ppl;
    for (const char* cache : {"f16", "int8"}) {
        for (const char* mode : {"sage", "int8"}) {
            auto cpu = llm8::Model::load(params(0, mode, cache));
            auto gpu = llm8::Model::load(params(99, mode, cache));
            for (const auto& m : gpu->layer_attn()) EXPECT_EQ(m, mode);
            const double pc = llm8::perplexity(cpu, tokens, 512, chunks, 512, 0).ppl;
            const double pg = llm8::perplexity(gpu, tokens, 512, chunks, 512, 0).ppl;
            std::printf("PPL --attn %s, %s cache: cpu %.5f gpu %.5f (gpu f16 %.5f)\n", mode,
                        cache, pc, pg, f16);
            EXPECT_NEAR(pg, pc, 2e-3 * pc) << mode << " " << cache;
            // Within the guard's 0.3% of FP16, but int8 over the INT8 cache (two quantized
            // products on quantized operands): 0.33% on the CPU too (175.761 vs 175.193).
            const bool both = std::string(mode) == "int8" && std::string(cache) == "int8";
            EXPECT_NEAR(pg, f16, (both ? 5e-3 : 3e-3) * wide * f16) << mode << " " << cache;
        }
    }
    // auto: calibrated on the GPU, each layer's errors measured; the GPU's default.
    EXPECT_EQ(llm8::Model::load({model, 99})->attn(), "auto");
    EXPECT_EQ(llm8::Model::load({model, 0})->attn(), "f16");
    auto au = llm8::Model::load(params(99, "auto"));
    ASSERT_EQ(au->attn_calibration().size(), size_t(au->n_layer()));
    for (size_t il = 0; il < au->attn_calibration().size(); ++il) {
        const auto& c = au->attn_calibration()[il];
        EXPECT_TRUE(c.note.empty()) << c.note;
        EXPECT_GT(c.sage_cos, 0.99);
        EXPECT_GT(c.int8_cos, 0.9);
        // A layer that passes in sage takes sage (the faster mode on the GPU): the plan of
        // --attn sage when every layer passes.
        if (c.sage_cos >= 0.999 && c.sage_l1 <= 0.03) {
            EXPECT_EQ(au->layer_attn()[il], "sage");
        }
    }
    const std::string report = llm8::attn_guard_report(*au, {});
    std::printf("%s", report.c_str());
    const double pa = llm8::perplexity(au, tokens, 512, chunks, 512, 0).ppl;
    std::printf("PPL --attn auto on the GPU: %.5f (f16 %.5f)\n", pa, f16);
    EXPECT_NEAR(pa, f16, 3e-3 * wide * f16);
    // Thresholds nothing passes: every layer f16 at calibration.
    llm8::ModelParams strict = params(99, "auto");
    strict.attn_cos_min = 1.0f;
    strict.attn_l1_max = 0.0f;
    auto st = llm8::Model::load(strict);
    for (const auto& m : st->layer_attn()) EXPECT_EQ(m, "f16");
    // The monitor: a sage model whose context checks every call against thresholds nothing
    // passes: after one prefill every layer has fallen back, with the FP16 output kept.
    auto sg = llm8::Model::load(params(99, "sage"));
    llm8::Context ctx(sg, {512, 1, 512, 0});
    ctx.set_attn_guard(1.0f, 0.0f, 1);
    llm8::Batch b;
    for (int i = 0; i < 64; ++i) b.add(tokens[size_t(i)], i, 0, i == 63);
    ctx.decode(b);
    const auto stats = ctx.attn_stats();
    ASSERT_EQ(stats.size(), size_t(sg->n_layer()));
    for (const auto& s : stats) {
        EXPECT_EQ(s.calls, 1);
        EXPECT_EQ(s.checks, 1);
        EXPECT_TRUE(s.fell_back);
        EXPECT_EQ(s.mode, "f16");
    }
    // Its logits are the FP16 model's (each layer's output replaced by the FP16 one).
    llm8::Context ref(gpu16, {512, 1, 512, 0});
    ref.decode(b);
    std::vector<float> want(ref.logits(63), ref.logits(63) + sg->n_vocab());
    std::vector<float> got(ctx.logits(63), ctx.logits(63) + sg->n_vocab());
    EXPECT_LT(llm8_test::nmse(got, want), 1e-10);
    // The next prefill runs FP16: no more 8-bit calls.
    llm8::Batch b2;
    for (int i = 64; i < 128; ++i) b2.add(tokens[size_t(i)], i, 0, i == 127);
    ctx.decode(b2);
    for (const auto& s : ctx.attn_stats()) EXPECT_EQ(s.calls, 1);
    for (const auto& lp : ctx.plan()) EXPECT_EQ(lp.attn, "f16 (guard fallback)");
}

TEST(CudaModel, DecodeKernelsKeepTheNllOfATrainedModel) {
    // Teacher-forced decode, one token per step (the GPU decode kernels: int8 activations for
    // these Q8_0 weights), against the CPU's float decode on the same 256 tokens of
    // WikiText-2: the mean negative log-likelihoods agree to 0.01 nats.
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto cpu = llm8::Model::load({model, 0});
    auto gpu = llm8::Model::load(gpu_f16(model));
    const auto tokens = cpu->tokenize(llm8_test::read_file(text).substr(0, 20000), true);
    ASSERT_GT(tokens.size(), 257u);
    const int steps = 256;
    const DecodeNll d = teacher_forced_nll(cpu, gpu, tokens, steps, 512);
    std::printf(
        "decode NLL over %d tokens: cpu %.5f gpu %.5f (PPL %.3f / %.3f), argmax equal %d/%d\n",
        steps, d.cpu, d.gpu, std::exp(d.cpu), std::exp(d.gpu), d.same_argmax, steps);
    EXPECT_NEAR(d.gpu, d.cpu, 0.01);
    EXPECT_GE(d.same_argmax, steps * 95 / 100);
}

TEST(CudaModel, KQuantDecodeKeepsTheNllOfATrainedModel) {
    // The trained tiny-llama-hd128 (its file is q8_0; the one the GPU machine carries)
    // requantized to Q4_K_M (q4_K with q6_K for some V / down / output; rows that do not fill
    // 256-element blocks fall back to 32-element types), q6_K, Q3_K_M and iq4_xs: teacher-forced decode on the GPU (the K split dp4a GEMV, mixed-type Q/K/V groups)
    // against the CPU's float decode of the same file, 128 tokens of WikiText-2: mean NLL within
    // 0.01 nats, argmax equal at >= 95% of the steps.
    LLM8_REQUIRE_GPU();
    const std::string model = llm8_test::shared_data() + "/models/tiny-llama-hd128-q8_0.gguf";
    const std::string text = llm8_test::shared_data() + "/text/wiki.test.raw";
    LLM8_REQUIRE_FILE(model);
    LLM8_REQUIRE_FILE(text);
    auto src = llm8::GgufFile::open(model);
    // Quick: without the plain q6_K file (Q4_K_M's mix has q6_K tensors too), so every type's
    // kernels still run.
    std::vector<const char*> names = {"Q4_K_M", "q6_K", "Q3_K_M", "iq4_xs"};
    if (quick()) names = {"Q4_K_M", "Q3_K_M", "iq4_xs"};
    for (const char* name : names) {
        llm8::QuantTarget target;
        ASSERT_TRUE(llm8::parse_quant_target(name, false, &target)) << name;
        llm8::ConvertOptions opt;
        opt.allow_requantize = true;
        const std::string path = llm8_test::temp_path(std::string("kq-") + name + ".gguf");
        llm8::convert_gguf(*src, &target, opt).write(path);
        auto cpu = llm8::Model::load({path, 0});
        auto gpu = llm8::Model::load(gpu_f16(path));
        std::remove(path.c_str());
        const auto tokens = cpu->tokenize(llm8_test::read_file(text).substr(0, 20000), true);
        ASSERT_GT(tokens.size(), 129u);
        const int steps = 128;
        const DecodeNll d = teacher_forced_nll(cpu, gpu, tokens, steps, 256);
        std::printf("%s decode NLL over %d tokens: cpu %.5f gpu %.5f, argmax equal %d/%d\n", name,
                    steps, d.cpu, d.gpu, d.same_argmax, steps);
        EXPECT_NEAR(d.gpu, d.cpu, 0.01) << name;
        EXPECT_GE(d.same_argmax, steps * 95 / 100) << name;
    }
}

TEST(CudaModel, DecodeEndsInTheGpuSamplerLikeTheCpuChain) {
    // The GPU session samples on the device (only ids come back). In lockstep with a CPU session
    // fed the same tokens, with the same seed and draw counter, the draws agree wherever the two
    // forward passes' logits are close enough not to move the uniform across a CDF step.
    LLM8_REQUIRE_GPU();
    auto cpu = llm8::Model::load({"", 0});
    auto gpu = llm8::Model::load({"", -1});
    ASSERT_TRUE(gpu->on_gpu());
    for (float temp : {0.0f, 0.8f}) {
        llm8::SamplerParams sp;
        sp.temperature = temp;
        sp.top_k = 40;
        sp.top_p = 0.95f;
        sp.min_p = 0.05f;
        sp.repeat_penalty = 1.1f;
        sp.seed = 1234;
        llm8::Sampler sc(sp, cpu->n_vocab()), sg(sp, gpu->n_vocab());
        llm8::Session c(cpu, {256, 64, 0}), g(gpu, {256, 64, 0});
        std::vector<int32_t> toks = cpu->tokenize("Once upon a time", true);
        for (int32_t t : toks) {
            sc.accept(t);
            sg.accept(t);
        }
        int32_t tg = g.decode_sample(toks, sg);
        c.decode(toks);
        int32_t tc = sc.sample(c.logits());
        int agree = 0;
        const int steps = quick() ? 40 : 150;
        for (int i = 0; i < steps; ++i) {
            ASSERT_GE(tg, 0);
            ASSERT_LT(tg, gpu->n_vocab());
            agree += tg == tc;
            // Both continue with the GPU's token, so the histories stay equal.
            sc.accept(tg);
            sg.accept(tg);
            c.decode(&tg, 1);
            tc = sc.sample(c.logits());
            tg = g.decode_sample(&tg, 1, sg);
        }
        std::printf("temperature %.1f: GPU and CPU draws agree at %d of %d steps\n", temp, agree,
                    steps);
        EXPECT_GE(agree, temp == 0.0f ? steps : steps * 95 / 100);
        EXPECT_EQ(sg.draws(), sc.draws());
    }
}

TEST(CudaModel, OutOfGpuMemoryIsAClearError) {
    // A batch whose buffers cannot fit (2^28 tokens of logits alone is ~550 GB): a clean
    // llm8::Error naming the allocation and the free memory, and the GPU stays usable.
    LLM8_REQUIRE_GPU();
    auto gpu = llm8::Model::load({"", -1});
    ASSERT_TRUE(gpu->on_gpu());
    try {
        llm8::Session s(gpu, {64, 1 << 28, 0});
        FAIL() << "a 2^28-token batch was allocated";
    } catch (const llm8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("out of GPU memory"), std::string::npos) << e.what();
    }
    llm8::Session ok(gpu, {64, 64, 0});
    const int32_t tok = 1;
    ok.decode(&tok, 1);
    EXPECT_TRUE(std::isfinite(ok.logits()[0]));
}

TEST(CudaModel, GpuRequestWithoutGpuIsAClearError) {
    std::string why;
    if (llm8::cuda::available(&why)) GTEST_SKIP() << "a GPU is present";
    try {
        llm8::Model::load({"", 99});
        FAIL() << "loaded";
    } catch (const llm8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("-ngl 0"), std::string::npos) << e.what();
    }
}

TEST(CudaModel, MoeAndMlaModelsAreRefusedWithTheWayOut) {
    // The GPU has no MoE or latent-attention kernels yet: such a model is refused at load,
    // before anything is uploaded, naming -ngl 0; with -ngl 0 it runs on the CPU.
    LLM8_REQUIRE_GPU();
    llm8_test::TinySpec moe;
    moe.arch = "qwen3moe";
    moe.qk_norm = true;
    moe.n_expert = 4;
    moe.n_expert_used = 2;
    moe.n_ff_exp = 32;
    llm8_test::TinySpec mla;
    mla.arch = "deepseek2";
    mla.n_head_kv = mla.n_head;
    mla.kv_lora_rank = 32;
    mla.qk_rope = 16;
    mla.qk_nope = 16;
    mla.v_head = 16;
    mla.n_expert = 4;
    mla.n_expert_used = 2;
    mla.n_ff_exp = 32;
    mla.n_dense_lead = 1;
    for (const auto& s : {moe, mla}) {
        const std::string path = llm8_test::temp_path("gpu-refuse-" + s.arch + ".gguf");
        llm8_test::build_tiny_model(s).write(path);
        std::string msg;
        try {
            llm8::Model::load({path, -1});
        } catch (const llm8::Error& e) {
            msg = e.what();
        }
        EXPECT_NE(msg.find("MoE/MLA models run on the CPU for now; use -ngl 0"), std::string::npos)
            << s.arch << ": " << msg;
        auto cpu = llm8::Model::load({path, 0});
        std::remove(path.c_str());
        EXPECT_FALSE(cpu->on_gpu());
        llm8::Session sess(cpu, {32, 32, 1});
        const std::vector<int32_t> toks = {1, 270, 5};
        sess.decode(toks);
        EXPECT_TRUE(std::isfinite(sess.logits()[0]));
    }
}
