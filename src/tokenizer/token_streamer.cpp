#include "tokenizer/token_streamer.h"

#include "tokenizer/utf8.h"

namespace llm8 {

std::string TokenStreamer::push(token_id id) {
    pending_ += vocab_.token_to_piece(id, special_);
    const size_t hold = utf8_incomplete_tail(pending_);
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string TokenStreamer::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace llm8
