// Streaming detokenization: turns generated ids into text as they come, holding back the bytes
// of a UTF-8 character that is split across tokens (byte-fallback and byte-level BPE tokens
// carry single bytes) until it is complete.
#pragma once
#include <string>

#include "tokenizer/vocab.h"

namespace llm8 {

class TokenStreamer {
public:
    // special: print control tokens (such as "<|im_end|>") instead of nothing.
    explicit TokenStreamer(const Vocab& vocab, bool special = false)
        : vocab_(vocab), special_(special) {}

    // The text that became complete with this token; "" while a character is incomplete.
    std::string push(token_id id);
    // Whatever is still held back (an incomplete character at the end of the stream), as is.
    std::string flush();
    // Forget held-back bytes (a new conversation turn).
    void reset() { pending_.clear(); }
    bool has_pending() const { return !pending_.empty(); }

private:
    const Vocab& vocab_;
    bool special_;
    std::string pending_;
};

}  // namespace llm8
