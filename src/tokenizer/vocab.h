// A model's vocabulary, read from GGUF metadata (tokenizer.ggml.*), and text <-> token ids
// exactly as llama.cpp computes them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace llm8 {

class GgufFile;

using token_id = int32_t;

// tokenizer.ggml.token_type values (as llama.cpp writes them).
enum class TokenType : int32_t {
    undefined = 0,
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6,
};

struct TokenData {
    std::string text;  // as stored in the GGUF (SentencePiece pieces use U+2581 for spaces)
    float score = 0.0f;
    TokenType type = TokenType::normal;
};

enum class VocabKind { spm, bpe };

class Vocab {
public:
    // Reads tokenizer.ggml.{model,tokens,scores,token_type,merges,pre,*_token_id,add_*}.
    // Throws llm8::Error(format/unsupported) on missing or inconsistent metadata.
    static std::shared_ptr<const Vocab> from_gguf(const GgufFile& f);
    ~Vocab();

    VocabKind kind() const;
    int32_t n_tokens() const;
    const TokenData& token(token_id id) const;     // id must be in range
    token_id find(const std::string& text) const;  // -1 when absent

    token_id bos() const;  // -1 when the vocab has none
    token_id eos() const;
    token_id unk() const;
    bool add_bos() const;
    bool add_eos() const;
    bool is_eog(token_id id) const;  // end of generation (eos, eot, ...)
    bool is_control(token_id id) const;

    // add_special: prepend BOS / append EOS as the vocab asks. parse_special: text such as
    // "<s>" becomes the special token instead of ordinary text.
    std::vector<token_id> tokenize(const std::string& text, bool add_special,
                                   bool parse_special = false) const;
    // The bytes a token stands for (byte tokens give one raw byte, U+2581 becomes a space).
    // Control tokens give "" unless special is true.
    std::string token_to_piece(token_id id, bool special = false) const;
    std::string detokenize(const std::vector<token_id>& ids, bool remove_special = false,
                           bool unparse_special = false) const;

    struct Impl;

private:
    Vocab();
    std::unique_ptr<Impl> impl_;
};

}  // namespace llm8
