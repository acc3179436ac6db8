// Regex pre-tokenization through PCRE2 (8-bit, UTF + UCP, JIT).
//
// llama.cpp runs its patterns through hand-written splitters (GPT-2, Llama 3) or std::regex
// over a "collapsed" text in which every non-ASCII code point stands in for its Unicode
// category and every non-ASCII whitespace becomes \v. So whitespace outside ASCII matches \s
// and nothing else, not even a literal range such as DeepSeek's [　-。]. Before matching, each
// 3-byte whitespace is therefore replaced by U+2000, which no pattern names. PCRE2 also counts
// U+180E (a format character since Unicode 6.3) as \s, which llama.cpp does not; it becomes
// U+200B. The stand-ins have the same UTF-8 lengths, so offsets carry over to the real text.
// Each pattern refines the pieces of the previous one, and unmatched gaps are pieces too.
//
// Matching runs on each piece as its own subject, so `$` and lookaheads stop at the piece's end,
// as std::regex_iterator over a sub-range does. A pattern that hits a PCRE2 resource limit
// leaves the rest of that piece unsplit rather than failing the whole call.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

#include <string_view>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace llm8 {

struct PreTokenizer::Impl {
    std::vector<pcre2_code*> codes;
    ~Impl() {
        for (pcre2_code* c : codes) pcre2_code_free(c);
    }
};

PreTokenizer::PreTokenizer(std::vector<std::string> patterns) : impl_(std::make_unique<Impl>()) {
    for (const std::string& p : patterns) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        pcre2_code* code =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.c_str()), p.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            fail(ErrorKind::runtime, "pre-tokenizer regex does not compile at offset " +
                                         std::to_string(err_off) + ": " +
                                         reinterpret_cast<const char*>(msg) + " in " + p);
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if absent
        impl_->codes.push_back(code);
    }
}

PreTokenizer::~PreTokenizer() = default;

namespace {

// Same-length stand-ins for whitespace outside ASCII (see the file comment).
std::string whitespace_stand_ins(const std::string& text) {
    std::string m = text;
    auto* p = reinterpret_cast<unsigned char*>(m.data());
    const size_t n = m.size();
    for (size_t i = 0; i + 2 < n; ++i) {
        if (p[i] < 0xE1) continue;
        if (p[i] == 0xE1 && p[i + 1] == 0x9A && p[i + 2] == 0x80) {
            p[i] = 0xE2, p[i + 1] = 0x80, p[i + 2] = 0x80;  // U+1680
        } else if (p[i] == 0xE1 && p[i + 1] == 0xA0 && p[i + 2] == 0x8E) {
            p[i] = 0xE2, p[i + 1] = 0x80, p[i + 2] = 0x8B;  // U+180E -> U+200B
        } else if (p[i] == 0xE2 && p[i + 1] == 0x80 &&
                   ((p[i + 2] >= 0x80 && p[i + 2] <= 0x8A) || p[i + 2] == 0xA8 ||
                    p[i + 2] == 0xA9 || p[i + 2] == 0xAF)) {
            p[i + 2] = 0x80;  // U+2000..200A, 2028, 2029, 202F
        } else if (p[i] == 0xE2 && p[i + 1] == 0x81 && p[i + 2] == 0x9F) {
            p[i + 1] = 0x80, p[i + 2] = 0x80;  // U+205F
        } else if (p[i] == 0xE3 && p[i + 1] == 0x80 && p[i + 2] == 0x80) {
            p[i] = 0xE2;  // U+3000
        }
    }
    return m;
}

struct Piece {
    size_t start;
    size_t len;
};

}  // namespace

std::vector<std::string> PreTokenizer::split(const std::string& text) const {
    std::vector<std::string> words;
    if (text.empty()) return words;
    const std::string subject = whitespace_stand_ins(text);
    const auto* base = reinterpret_cast<PCRE2_SPTR>(subject.data());

    pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
    pcre2_match_context* mctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (!md || !mctx || !jit_stack) {
        if (jit_stack) pcre2_jit_stack_free(jit_stack);
        if (mctx) pcre2_match_context_free(mctx);
        if (md) pcre2_match_data_free(md);
        fail(ErrorKind::runtime, "out of memory in the pre-tokenizer");
    }
    pcre2_jit_stack_assign(mctx, nullptr, jit_stack);

    std::vector<Piece> pieces{{0, subject.size()}};
    std::vector<Piece> next;
    for (pcre2_code* code : impl_->codes) {
        next.clear();
        next.reserve(pieces.size() * 2);
        for (const Piece& pc : pieces) {
            const PCRE2_SPTR s = base + pc.start;
            size_t pos = 0;
            size_t gap = 0;  // start of the text not yet emitted
            while (pos < pc.len) {
                const int rc = pcre2_match(code, s, pc.len, pos, PCRE2_NO_UTF_CHECK, md, mctx);
                if (rc < 0) break;  // no match, or a resource limit: the rest stays a gap
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                const size_t m0 = ov[0];
                const size_t m1 = ov[1];
                if (m1 == m0) {
                    // Empty match: step one character further without a piece.
                    pos = m0 + utf8_len(subject[pc.start + m0]);
                    continue;
                }
                if (m0 > gap) next.push_back({pc.start + gap, m0 - gap});
                next.push_back({pc.start + m0, m1 - m0});
                gap = pos = m1;
            }
            if (gap < pc.len) next.push_back({pc.start + gap, pc.len - gap});
        }
        pieces.swap(next);
    }

    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);

    words.reserve(pieces.size());
    for (const Piece& pc : pieces) words.emplace_back(text, pc.start, pc.len);
    return words;
}

}  // namespace llm8
