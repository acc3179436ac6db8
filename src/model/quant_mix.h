// Which type each weight matrix gets when a model is quantized: llama-quantize's tensor-type
// mixes (Q2_K, Q3_K_M, Q4_K_M, Q5_K_M), the fallback for rows that do not fill the type's
// blocks, and the names `--outtype` / `--type` accept. Shared by llm8-convert (convert.cpp)
// and llm8-mkmodel so that both write the same files as llama-quantize would.
//
// The rules follow llama.cpp's src/llama-quant.cpp (llama_tensor_get_type_impl and
// tensor_type_fallback, commit 007dbbf3fd17), restricted to the architectures llm8 runs
// (no Falcon, no experts); docs/quantization.md lists them.
#pragma once
#include <cstdint>
#include <string>

#include "gguf/quants.h"

namespace llm8 {

enum class QuantMix { none, q2_k, q3_k_m, q4_k_m, q5_k_m };

// A conversion target: the type most matrices get and, for a mix, the rules for the others.
struct QuantTarget {
    GgmlType type = GgmlType::F32;
    QuantMix mix = QuantMix::none;
};

// "q8_0", "iq4_xs", ... (any supported ggml type: every matrix gets it) or a llama-quantize
// mix name: "Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K" (case-insensitive). "q2_K" names the Q2_K mix,
// as in llama-quantize; `pure` (llama-quantize's --pure) turns a mix into its base type for
// every matrix, so "q2_K" with pure is plain q2_K. Returns false when the name is unknown.
bool parse_quant_target(const std::string& name, bool pure, QuantTarget* out);
// The names parse_quant_target accepts, for help texts.
const char* quant_target_names();
// llama.cpp's general.file_type (LLAMA_FTYPE_*) for a target.
uint32_t quant_target_ftype(const QuantTarget& t);
const char* quant_mix_name(QuantMix m);

// What the mix rules need to know about the model.
struct MixModelInfo {
    int n_layer = 0;    // <arch>.block_count
    int n_gqa = 1;      // head_count / head_count_kv
    bool tied = false;  // no output.weight: token_embd is also the output matrix
};

// The type a weight matrix named `name` with rows of ne0 elements gets, before the fallback.
GgmlType mix_tensor_type(const QuantTarget& t, const MixModelInfo& m, const std::string& name,
                         int64_t ne0);

// llama.cpp's fallback for rows whose length is not a multiple of the type's block:
// q2_K/q3_K -> q4_0, q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, iq4_xs -> iq4_nl; when that does
// not fit either (or t has no fallback: the 32-element types), returns `src` unchanged except
// that an f32 source becomes f16 behind a K-quant or iq4_xs target (llama.cpp's last resort;
// llama.cpp refuses the file instead for 32-element targets). `fell_back`: ne0 does not fit t.
GgmlType fallback_type(GgmlType t, int64_t ne0, GgmlType src, bool* fell_back);

}  // namespace llm8
