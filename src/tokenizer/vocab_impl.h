// Internal state of a Vocab, shared by the tokenizer files (vocab.cpp, spm.cpp, bpe.cpp).
// Not part of the API: other modules use tokenizer/vocab.h only.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/vocab.h"

namespace llm8 {

class PreTokenizer;

// Token attributes as llama.cpp keeps them: bit flags, because its loader ORs extra ones on
// top of the GGUF token type (control for EOG-looking tokens, rstrip for Phi-3, ...).
enum TokenAttr : uint32_t {
    attr_undefined = 0,
    attr_unknown = 1u << 0,
    attr_unused = 1u << 1,
    attr_normal = 1u << 2,
    attr_control = 1u << 3,
    attr_user_defined = 1u << 4,
    attr_byte = 1u << 5,
    attr_lstrip = 1u << 7,
    attr_rstrip = 1u << 8,
};

struct Vocab::Impl {
    VocabKind kind = VocabKind::spm;
    std::string model;  // tokenizer.ggml.model
    std::string pre;    // tokenizer.ggml.pre (BPE only)

    std::vector<TokenData> tokens;  // [n_tokens]
    std::vector<uint32_t> attrs;    // [n_tokens] TokenAttr bits
    // Keys view into tokens[i].text, which never moves once the map is built.
    std::unordered_map<std::string_view, token_id> token_to_id;

    token_id bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1;
    token_id fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    std::unordered_set<token_id> eog;

    bool add_bos = false;
    bool add_eos = false;
    bool add_space_prefix = false;
    bool clean_spaces = false;
    bool ignore_merges = false;
    bool spm_word_split = false;  // see spm.cpp

    // Control, user-defined and unknown tokens, longest text first: the order in which
    // text is partitioned around them (llama.cpp's cache_special_tokens).
    std::vector<token_id> special_tokens;
    // token_to_piece(id, special=true) for every id; the non-special view is derived.
    std::vector<std::string> pieces;

    // BPE: rank of the merge "left right" (the string as stored, split at the first space
    // after the first byte).
    std::unordered_map<std::string, int32_t> bpe_ranks;
    std::unique_ptr<PreTokenizer> pretokenizer;

    token_id text_to_token(std::string_view text) const {
        auto it = token_to_id.find(text);
        return it == token_to_id.end() ? -1 : it->second;
    }
    int32_t bpe_rank(std::string_view left, std::string_view right) const;
    // SentencePiece byte fallback: "<0xNN>", else the byte itself as a token, else -1.
    token_id byte_to_token(uint8_t byte) const;
    uint8_t token_to_byte(token_id id) const;

    Impl();
    ~Impl();
};

// Appends the ids of one raw-text fragment (no special tokens inside; spaces not yet escaped).
void spm_tokenize(const Vocab::Impl& v, const std::string& text, std::vector<token_id>& out);
// Whether SentencePiece merging may run word by word (see spm.cpp); computed at load.
bool spm_words_are_independent(const Vocab::Impl& v);
void bpe_tokenize(const Vocab::Impl& v, const std::string& text, std::vector<token_id>& out);

// Builds the pre-tokenizer for v.pre (BPE vocabs); sets clean_spaces / ignore_merges / add_bos
// defaults as llama.cpp does. Throws llm8::Error(unsupported) for an unknown name.
void bpe_init(Vocab::Impl& v);

}  // namespace llm8
