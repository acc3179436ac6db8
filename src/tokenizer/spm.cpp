// SentencePiece-style tokenization (tokenizer.ggml.model = "llama"), as llama.cpp's
// llm_tokenizer_spm: the text is cut into UTF-8 characters, then adjacent pairs whose
// concatenation is a vocabulary token are merged, highest token score first (ties: the
// leftmost pair), until no pair is a token. Symbols that are not tokens fall back to byte
// tokens <0xNN>.
//
// llama.cpp also keeps a map from merged text back to the two symbols it came from and
// "resegments" through it when a final symbol is not a token. A merged symbol is always a
// token (a pair is only queued when its text is one, and a queued pair is only applied while
// both halves are unchanged), so that path never runs; it is left out here.
//
// Speed: llama.cpp merges over the whole text at once (perplexity passes megabytes). When no
// token has U+2581 right after another character (true of SentencePiece vocabularies, whose
// pieces start with their spaces), no pair can ever form across the point before a U+2581
// that follows another character, so the text is cut there into words that are merged one by
// one (and repeated words are looked up). Pairs in different words never interact and the
// order of merges within a word is unchanged, so the ids are the same.
#include <cstdint>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bigram_merge.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_impl.h"

namespace llm8 {

namespace {

struct Symbol {
    int32_t prev;
    int32_t next;
    const char* text;
    uint32_t n;
};

struct Bigram {
    int32_t left;
    int32_t right;
    float score;
    uint32_t size;
};

struct BigramLess {
    // priority_queue pops the "largest": highest score, then smallest left index.
    bool operator()(const Bigram& l, const Bigram& r) const {
        return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
};

class SpmSession {
public:
    explicit SpmSession(const Vocab::Impl& v) : v_(v) {}

    void tokenize(const std::string& text, std::vector<token_id>& out) {
        symbols_.clear();
        symbols_.reserve(text.size());
        size_t offs = 0;
        int32_t index = 0;
        while (offs < text.size()) {
            Symbol s;
            const size_t len =
                std::min(utf8_len(static_cast<uint8_t>(text[offs])), text.size() - offs);
            s.text = text.data() + offs;
            s.n = static_cast<uint32_t>(len);
            offs += len;
            s.prev = index - 1;
            s.next = offs == text.size() ? -1 : index + 1;
            ++index;
            symbols_.push_back(s);
        }
        if (symbols_.empty()) return;

        merge_bigrams(symbols_, queue_, [this](int32_t l, int32_t r) { try_add(l, r); });

        for (int32_t i = 0; i != -1; i = symbols_[i].next) {
            const Symbol& s = symbols_[i];
            const token_id id = v_.text_to_token(std::string_view(s.text, s.n));
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (uint32_t j = 0; j < s.n; ++j) {
                const token_id b = v_.byte_to_token(static_cast<uint8_t>(s.text[j]));
                if (b >= 0) out.push_back(b);
            }
        }
    }

private:
    void try_add(int32_t left, int32_t right) {
        if (left == -1 || right == -1) return;
        const std::string_view text(symbols_[left].text, symbols_[left].n + symbols_[right].n);
        const token_id id = v_.text_to_token(text);
        if (id < 0) return;
        queue_.push(Bigram{left, right, v_.tokens[id].score, static_cast<uint32_t>(text.size())});
    }

    const Vocab::Impl& v_;
    std::vector<Symbol> symbols_;
    std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue_;
};

}  // namespace

namespace {

const std::string_view k_space = "\xE2\x96\x81";

bool is_space_at(std::string_view s, size_t pos) {
    return s.compare(pos, 3, k_space) == 0;
}

}  // namespace

bool spm_words_are_independent(const Vocab::Impl& v) {
    for (const TokenData& t : v.tokens) {
        const std::string_view s(t.text);
        bool prev_is_space = true;  // a leading U+2581 is fine
        for (size_t pos = 0; pos < s.size();) {
            const size_t len = std::min(utf8_len(static_cast<uint8_t>(s[pos])), s.size() - pos);
            const bool space = len == 3 && is_space_at(s, pos);
            if (space && !prev_is_space) return false;
            prev_is_space = space;
            pos += len;
        }
    }
    return true;
}

void spm_tokenize(const Vocab::Impl& v, const std::string& text, std::vector<token_id>& out) {
    // Spaces become U+2581 (SentencePiece's escaped space) before merging.
    std::string escaped;
    escaped.reserve(text.size() + text.size() / 4);
    for (char c : text) {
        if (c == ' ') {
            escaped += "\xE2\x96\x81";
        } else {
            escaped += c;
        }
    }
    SpmSession session(v);
    if (!v.spm_word_split) {
        session.tokenize(escaped, out);
        return;
    }
    // Cut before each U+2581 symbol that follows a symbol other than U+2581, with llama.cpp's
    // symbol boundaries (so invalid UTF-8 splits the same way).
    const std::string_view all(escaped);
    std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
    std::string word;
    auto emit = [&](size_t begin, size_t end) {
        if (end <= begin) return;
        const std::string_view w = all.substr(begin, end - begin);
        if (w.size() <= 64) {
            auto it = cache.find(w);
            if (it != cache.end()) {
                for (uint32_t i = 0; i < it->second.second; ++i) {
                    out.push_back(out[it->second.first + i]);
                }
                return;
            }
        }
        const size_t before = out.size();
        word.assign(w);
        session.tokenize(word, out);
        if (w.size() <= 64) {
            cache.emplace(w, std::make_pair(static_cast<uint32_t>(before),
                                            static_cast<uint32_t>(out.size() - before)));
        }
    };
    size_t word_start = 0;
    bool prev_is_space = true;
    for (size_t pos = 0; pos < all.size();) {
        const size_t len = std::min(utf8_len(static_cast<uint8_t>(all[pos])), all.size() - pos);
        const bool space = len == 3 && is_space_at(all, pos);
        if (space && !prev_is_space) {
            emit(word_start, pos);
            word_start = pos;
        }
        prev_is_space = space;
        pos += len;
    }
    emit(word_start, all.size());
}

}  // namespace llm8
