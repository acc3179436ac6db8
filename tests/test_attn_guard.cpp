// The accuracy guard (--attn auto, the runtime monitor, the report) on the CPU, with the trained
// test models (skipped when ../shared/data is absent) and the embedded stories260K.
#include <algorithm>
#include <cstring>
#include <vector>

#include "llm8/engine.h"
#include "test_util.h"

namespace {

std::shared_ptr<const llm8::Model> load(const std::string& path, const std::string& attn,
                                        float cos_min = 0.999f, float l1_max = 0.03f,
                                        int monitor = 64) {
    llm8::ModelParams mp;
    mp.path = path;
    mp.n_gpu_layers = 0;
    mp.attn = attn;
    mp.attn_cos_min = cos_min;
    mp.attn_l1_max = l1_max;
    mp.attn_monitor = monitor;
    return llm8::Model::load(mp);
}

std::string trained() {
    return llm8_test::shared_data() + "/models/tiny-llama-hd64-q8_0.gguf";
}

// Logits after a prompt and two decode steps.
std::vector<float> run(const std::shared_ptr<const llm8::Model>& m, llm8::Session* keep = nullptr) {
    llm8::Session local(m, {256, 256, 0});
    llm8::Session& s = keep ? *keep : local;
    s.decode(m->tokenize("The harbour board met in the spring of 1891 to vote on the lamp.", true));
    int32_t t = 100;
    s.decode(&t, 1);
    t = 200;
    s.decode(&t, 1);
    const float* l = s.logits();
    return std::vector<float>(l, l + m->n_vocab());
}

}  // namespace

TEST(AttnGuard, AutoWithEveryLayerPassingIsTheInt8Plan) {
    LLM8_REQUIRE_FILE(trained());
    auto a = load(trained(), "auto", 0.5f, 1.0f, 0);
    auto i8 = load(trained(), "int8", 0.999f, 0.03f, 0);
    ASSERT_EQ(a->attn_calibration().size(), size_t(a->n_layer()));
    for (const auto& c : a->attn_calibration()) {
        EXPECT_EQ(c.mode, "int8");
        EXPECT_GT(c.int8_cos, 0.99);
        EXPECT_GT(c.sage_cos, 0.99);
        EXPECT_GT(c.int8_l1, 0.0);
    }
    EXPECT_EQ(a->layer_attn(), i8->layer_attn());
    llm8::Context ca(a, {64, 1, 64, 0}), ci(i8, {64, 1, 64, 0});
    for (size_t il = 0; il < ca.plan().size(); ++il)
        EXPECT_EQ(ca.plan()[il].attn, ci.plan()[il].attn);
    EXPECT_EQ(run(a), run(i8));  // same modes, same numbers
}

TEST(AttnGuard, ThresholdsNoModePassesKeepFp16) {
    LLM8_REQUIRE_FILE(trained());
    auto a = load(trained(), "auto", 0.99999999f, 1e-7f, 0);
    auto f = load(trained(), "f16");
    for (const auto& c : a->attn_calibration()) EXPECT_EQ(c.mode, "f16");
    EXPECT_EQ(a->layer_attn(), f->layer_attn());
    EXPECT_EQ(run(a), run(f));
}

TEST(AttnGuard, EachLayerTakesTheFirstModeThatPasses) {
    // Thresholds between the layers' measured errors: the layers split, each by its own error.
    LLM8_REQUIRE_FILE(trained());
    auto probe = load(trained(), "auto", 0.5f, 1.0f, 0);
    std::vector<double> l1;
    for (const auto& c : probe->attn_calibration()) l1.push_back(c.int8_l1);
    std::vector<double> sorted = l1;
    std::sort(sorted.begin(), sorted.end());
    const float thr = float((sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2);
    auto a = load(trained(), "auto", 0.5f, thr, 0);
    int n_int8 = 0;
    for (size_t il = 0; il < l1.size(); ++il) {
        const auto& c = a->attn_calibration()[il];
        EXPECT_DOUBLE_EQ(c.int8_l1, l1[il]);  // the calibration is deterministic
        const std::string want = c.int8_l1 <= thr ? "int8" : c.sage_l1 <= thr ? "sage" : "f16";
        EXPECT_EQ(c.mode, want) << "layer " << il;
        EXPECT_EQ(a->layer_attn()[il], want);
        n_int8 += want == "int8";
    }
    EXPECT_GT(n_int8, 0);
    EXPECT_LT(n_int8, int(l1.size()));
}

TEST(AttnGuard, MonitorSwitchesALayerPastTheThreshold) {
    LLM8_REQUIRE_FILE(trained());
    auto a = load(trained(), "auto", 0.5f, 1.0f, 0);  // every layer int8
    auto f = load(trained(), "f16");
    llm8::Session s(a, {256, 256, 0});
    s.context().set_attn_guard(0.99999999f, 1e-7f, 1);  // now nothing passes
    const auto got = run(a, &s);
    const auto stats = s.context().attn_stats();
    ASSERT_EQ(stats.size(), size_t(a->n_layer()));
    for (const auto& st : stats) {
        EXPECT_TRUE(st.fell_back);
        EXPECT_EQ(st.mode, "f16");
        EXPECT_EQ(st.calls, 1);  // the prompt's call; the decode steps ran FP16
        EXPECT_EQ(st.checks, 1);
        EXPECT_GT(st.max_l1, 1e-7);
    }
    for (const auto& p : s.context().plan()) EXPECT_EQ(p.attn, "f16 (guard fallback)");
    // The failed call's output was replaced by FP16's, and FP16 ran after: the f16 model's logits.
    EXPECT_EQ(got, run(f));
    const std::string rep = s.context().attn_report();
    EXPECT_NE(rep.find("attention guard: --attn auto"), std::string::npos);
    EXPECT_NE(rep.find("yes: f16 now"), std::string::npos);
}

TEST(AttnGuard, MonitorCountsChecksAndKeepsPassingLayers) {
    auto m = load("", "int8", 0.9f, 0.5f, 2);  // stories260K, loose thresholds, every 2nd call
    llm8::Session s(m, {64, 64, 0});
    s.decode(m->tokenize("Once upon a time", true));
    for (int i = 0; i < 5; ++i) {
        const int32_t t = 10 + i;
        s.decode(&t, 1);
    }
    for (const auto& st : s.context().attn_stats()) {
        EXPECT_EQ(st.mode, "int8");
        EXPECT_EQ(st.calls, 6);
        EXPECT_EQ(st.checks, 3);  // calls 1, 3, 5
        EXPECT_FALSE(st.fell_back);
        EXPECT_GT(st.min_cos, 0.9);
        EXPECT_LE(st.mean_l1, st.max_l1);
    }
    // Monitor off: calls counted, nothing checked.
    auto off = load("", "sage", 0.999f, 0.03f, 0);
    llm8::Session s2(off, {64, 64, 0});
    s2.decode(off->tokenize("Once upon a time", true));
    for (const auto& st : s2.context().attn_stats()) {
        EXPECT_EQ(st.calls, 1);
        EXPECT_EQ(st.checks, 0);
    }
    const std::string rep = llm8::attn_guard_report(*off, s2.context().attn_stats());
    EXPECT_NE(rep.find("--attn sage"), std::string::npos);
    EXPECT_EQ(std::count(rep.begin(), rep.end(), '\n'),
              2 + off->n_layer());  // header, columns, layers
}

TEST(AttnGuard, BadGuardSettingsAreClearErrors) {
    llm8::ModelParams mp;
    mp.attn = "auto";
    mp.attn_cos_min = 1.5f;
    EXPECT_THROW(llm8::Model::load(mp), llm8::Error);
    mp.attn_cos_min = 0.999f;
    mp.attn_l1_max = -1.0f;
    EXPECT_THROW(llm8::Model::load(mp), llm8::Error);
    mp.attn_l1_max = 0.03f;
    mp.attn_monitor = -1;
    EXPECT_THROW(llm8::Model::load(mp), llm8::Error);
    mp.attn_monitor = 64;
    mp.attn_calib_text = "a";
    try {
        llm8::Model::load(mp);
        ADD_FAILURE() << "a one-token calibration text was accepted";
    } catch (const llm8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("calibration text is too short"), std::string::npos);
    }
    auto m = llm8::Model::load({"", 0});
    llm8::Context c(m, {64, 1, 64, 0});
    EXPECT_THROW(c.set_attn_guard(0.0f, 0.03f, 1), llm8::Error);
    EXPECT_THROW(c.set_attn_guard(0.99f, 0.03f, -1), llm8::Error);
}
