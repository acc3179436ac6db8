// libFuzzer target: see fuzz_targets.h (fuzz_server_request) and docs/hardening.md.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    llm8_fuzz::fuzz_server_request(data, size);
    return 0;
}
