// Error-minimizing quantizers of the low-bit block formats (Q2_K, Q3_K, IQ4_NL, IQ4_XS), one
// block at a time; quantize_row (quants.cpp) calls them. They search scales instead of taking
// max / qmax, because at 2-4 bits that choice alone costs a quarter to a half of the error
// (see the comment at the top of quant_search.cpp). No importance matrix: every element's
// weight in the error comes from the data alone.
#pragma once
#include <cstdint>

namespace llm8 {
namespace quant_search {

// The 16 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl), ascending.
extern const int8_t kIq4Levels[16];

void quantize_q2_k(const float* x, uint8_t* block);    // 256 elements -> 84 bytes
void quantize_q3_k(const float* x, uint8_t* block);    // 256 elements -> 110 bytes
void quantize_iq4_nl(const float* x, uint8_t* block);  // 32 elements -> 18 bytes
void quantize_iq4_xs(const float* x, uint8_t* block);  // 256 elements -> 136 bytes

}  // namespace quant_search
}  // namespace llm8
