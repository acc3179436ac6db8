#include "cuda/tuning.h"

#include <cstdlib>
#include <cstring>

namespace llm8 {
namespace cuda {

namespace {

struct Switch {
    const char* name;
    const char* meaning;
    bool Tuning::*flag;  // a boolean switch (value "0" turns it off, "1" on)
    int Tuning::*number;  // or a number
};

const Switch kSwitches[] = {
    {"LLM8_PDL", "programmatic dependent launch", &Tuning::pdl, nullptr},
    {"LLM8_SPLIT", "split Q4_0/Q8_0 repack at upload", &Tuning::split, nullptr},
    {"LLM8_DECODE_GEMV", "int8/dp4a decode GEMV", &Tuning::decode_gemv, nullptr},
    {"LLM8_GEMV_PERSIST", "decode GEMV kernel: -1 per type, 0 one-shot, 1 persistent", nullptr,
     &Tuning::gemv_persist},
    {"LLM8_FUSE_ROPE", "RoPE + K/V append in the Q/K/V GEMV epilogue", &Tuning::fuse_rope,
     nullptr},
    {"LLM8_GRAPH", "CUDA graphs for decode steps", &Tuning::graphs, nullptr},
    {"LLM8_PROFILE", "per-op CUDA event timing (graphs off)", &Tuning::profile, nullptr},
    {"LLM8_SAMPLING_FUSED", "sampler: fused top-k barrier", &Tuning::sampling_fused, nullptr},
    {"LLM8_SAMPLING_TOPK", "sampler: streaming top-k kernel", &Tuning::sampling_topk, nullptr},
    {"LLM8_SAMPLING_SPLIT", "sampler: blocks per row of the top-k kernel (0 auto)", nullptr,
     &Tuning::sampling_split},
    {"LLM8_SAMPLING_PDL", "sampler: PDL behind the top-k kernel", &Tuning::sampling_pdl, nullptr},
    {"LLM8_SAMPLING_FALLBACK_C", "sampler: forced cluster size of the fallback (0 auto)", nullptr,
     &Tuning::sampling_fallback_c},
    {"LLM8_SAMPLING_FINISH", "sampler: finish mode 0 default, 1 warp, 2 rank", nullptr,
     &Tuning::sampling_finish},
    {"LLM8_SAMPLING_ALONE", "sampler: one cluster-kernel block per SM (synccheck runs)",
     &Tuning::sampling_alone, nullptr},
};

Tuning parse() {
    Tuning t;
    for (const Switch& s : kSwitches) {
        const char* e = std::getenv(s.name);
        if (!e || !*e) continue;
        if (s.flag) {
            t.*s.flag = e[0] != '0';
        } else if (std::strcmp(s.name, "LLM8_SAMPLING_FINISH") == 0 && !(e[0] >= '0' && e[0] <= '9')) {
            t.*s.number = std::strcmp(e, "warp") == 0 ? 1 : std::strcmp(e, "rank") == 0 ? 2 : 0;
        } else {
            t.*s.number = std::atoi(e);
        }
    }
    return t;
}

}  // namespace

const Tuning& tuning() {
    static const Tuning t = parse();
    return t;
}

}  // namespace cuda
}  // namespace llm8
