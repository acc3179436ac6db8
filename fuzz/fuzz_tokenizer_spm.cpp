// libFuzzer target: see fuzz_targets.h (fuzz_tokenizer_spm) and docs/hardening.md.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    llm8_fuzz::fuzz_tokenizer_spm(data, size);
    return 0;
}
