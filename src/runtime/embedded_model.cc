// Links models/stories260K.gguf into the binary with the assembler's .incbin, aligned to 64
// bytes so that GGUF tensor data (32-byte aligned within the file) stays aligned in memory.
#include "runtime/embedded_model.h"

#ifdef LLM8_EMBEDDED_MODEL_PATH
__asm__(
    ".section .rodata\n"
    ".balign 64\n"
    ".global llm8_embedded_model_begin\n"
    "llm8_embedded_model_begin:\n"
    ".incbin \"" LLM8_EMBEDDED_MODEL_PATH
    "\"\n"
    ".global llm8_embedded_model_end\n"
    "llm8_embedded_model_end:\n"
    ".byte 0\n"
    ".previous\n");
extern "C" const uint8_t llm8_embedded_model_begin[];
extern "C" const uint8_t llm8_embedded_model_end[];

namespace llm8 {
const uint8_t* embedded_model_data() {
    return llm8_embedded_model_begin;
}
size_t embedded_model_size() {
    return static_cast<size_t>(llm8_embedded_model_end - llm8_embedded_model_begin);
}
}  // namespace llm8
#else
namespace llm8 {
const uint8_t* embedded_model_data() {
    return nullptr;
}
size_t embedded_model_size() {
    return 0;
}
}  // namespace llm8
#endif
