// The default model linked into the library: stories260K (llama2.c, MIT) converted to GGUF v3
// by llm8-convert. See models/README.md for its provenance.
#pragma once
#include <cstddef>
#include <cstdint>

namespace llm8 {
// Empty (size 0) when the library was built without models/stories260K.gguf.
const uint8_t* embedded_model_data();
size_t embedded_model_size();
constexpr const char* kEmbeddedModelName = "stories260K (embedded)";
}  // namespace llm8
