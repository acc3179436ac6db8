// Replays the fuzzers' seed corpora (fuzz/corpus/<target>/) and every input that once crashed
// a fuzzer (tests/data/fuzz/<target>/, the regression tests) through the fuzz target bodies in
// fuzz/fuzz_targets.h. Runs in every build; under scripts/sanitize.sh, ASan and UBSan watch.
#include <filesystem>

#include "../fuzz/fuzz_targets.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

struct Target {
    const char* name;
    void (*fn)(const uint8_t*, size_t);
};

const Target k_targets[] = {
    {"gguf", llm8_fuzz::fuzz_gguf},
    {"tokenizer_spm", llm8_fuzz::fuzz_tokenizer_spm},
    {"tokenizer_bpe", llm8_fuzz::fuzz_tokenizer_bpe},
    {"utf8", llm8_fuzz::fuzz_utf8},
    {"chat_template", llm8_fuzz::fuzz_chat_template},
    {"sampler", llm8_fuzz::fuzz_sampler},
    {"server_request", llm8_fuzz::fuzz_server_request},
};

// Runs every file under dir; returns how many.
int replay(const Target& t, const fs::path& dir) {
    if (!fs::is_directory(dir)) return 0;
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
        const std::string bytes = llm8_test::read_file(e.path().string());
        // An exact-size heap copy, so that ASan sees a read one byte past the end.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes.size() + (bytes.empty() ? 1 : 0)]);
        std::memcpy(buf.get(), bytes.data(), bytes.size());
        SCOPED_TRACE(e.path().string());
        t.fn(buf.get(), bytes.size());
        ++n;
    }
    return n;
}

class FuzzInputs : public ::testing::TestWithParam<Target> {};

}  // namespace

TEST_P(FuzzInputs, SeedCorpus) {
    const fs::path dir = fs::path(llm8_test::source_dir()) / "fuzz" / "corpus" / GetParam().name;
    EXPECT_GT(replay(GetParam(), dir), 0) << "no seeds in " << dir;
}

TEST_P(FuzzInputs, Regressions) {
    const fs::path dir =
        fs::path(llm8_test::source_dir()) / "tests" / "data" / "fuzz" / GetParam().name;
    replay(GetParam(), dir);  // may be empty: not every target has found something
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzInputs, ::testing::ValuesIn(k_targets),
                         [](const ::testing::TestParamInfo<Target>& info) {
                             return std::string(info.param.name);
                         });
