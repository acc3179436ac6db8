// Writes the broken models the CLI tests feed to the tools (tests/cli/cli.cmake), all derived
// from the embedded stories260K:
//   nan.gguf         blk.2.attn_q.weight is all NaN (corrupt weights)
//   rope_base_inf.gguf, rope_scale_neg.gguf, eps_bad.gguf, heads_bad.gguf: one bad hparam each
//   q8_0.gguf        a sound model, already quantized (for the requantize refusal)
//   llm8-test-make-models OUTDIR
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "llm8/error.h"
#include "model/convert.h"
#include "runtime/embedded_model.h"

namespace {

using llm8::GgufValue;

// A copy of `in` with metadata `key` set to `v` (when key is not empty) and tensor `nan_tensor`
// filled with NaN (when not empty; F32 only).
llm8::GgufWriter copy(const llm8::GgufFile& in, const std::string& key, const GgufValue& v,
                      const std::string& nan_tensor = "") {
    llm8::GgufWriter w;
    for (const auto& kv : in.metadata()) w.set(kv.first, kv.second);
    if (!key.empty()) w.set(key, v);
    for (const auto& t : in.tensors()) {
        if (t.name == nan_tensor) {
            if (t.type != llm8::GgmlType::F32) llm8::fail(llm8::ErrorKind::invalid_arg, "not f32");
            std::vector<float> nan(t.nbytes / 4, NAN);
            w.add_tensor(t.name, t.type, t.ne, nan.data(), t.nbytes);
        } else {
            w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
        }
    }
    return w;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    try {
        const std::string dir = argv[1];
        std::filesystem::create_directories(dir);
        auto f = llm8::GgufFile::from_memory(llm8::embedded_model_data(),
                                             llm8::embedded_model_size(), "stories260K");
        const GgufValue none;
        copy(*f, "", none, "blk.2.attn_q.weight").write(dir + "/nan.gguf");
        copy(*f, "llama.rope.freq_base", GgufValue::make_f32(INFINITY))
            .write(dir + "/rope_base_inf.gguf");
        copy(*f, "llama.rope.scale_linear", GgufValue::make_f32(-2.0f))
            .write(dir + "/rope_scale_neg.gguf");
        copy(*f, "llama.attention.layer_norm_rms_epsilon", GgufValue::make_f32(0.5f))
            .write(dir + "/eps_bad.gguf");
        copy(*f, "llama.attention.head_count_kv", GgufValue::make_u32(3))
            .write(dir + "/heads_bad.gguf");
        const llm8::GgmlType q8 = llm8::GgmlType::Q8_0;
        llm8::convert_gguf(*f, &q8).write(dir + "/q8_0.gguf");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "llm8-test-make-models: error: %s\n", e.what());
        return 1;
    }
}
