#include "tokenizer/utf8.h"

#include <array>
#include <unordered_map>

namespace llm8 {

void utf8_append(std::string& out, uint32_t cpt) {
    if (cpt <= 0x7F) {
        out += static_cast<char>(cpt);
    } else if (cpt <= 0x7FF) {
        out += static_cast<char>(0xC0 | (cpt >> 6));
        out += static_cast<char>(0x80 | (cpt & 0x3F));
    } else if (cpt <= 0xFFFF) {
        out += static_cast<char>(0xE0 | (cpt >> 12));
        out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cpt & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cpt >> 18));
        out += static_cast<char>(0x80 | ((cpt >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cpt & 0x3F));
    }
}

namespace {

inline bool is_cont(uint8_t b) {
    return (b & 0xC0) == 0x80;
}

// One code point from text[pos], llama.cpp's unicode_cpt_from_utf8 rules (overlong forms are
// accepted); returns false for a malformed sequence.
bool decode_one(std::string_view s, size_t& pos, uint32_t& cpt) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    const uint8_t b0 = p[pos];
    if (!(b0 & 0x80)) {
        cpt = b0;
        pos += 1;
        return true;
    }
    if (!(b0 & 0x40)) return false;
    if (!(b0 & 0x20)) {
        if (pos + 1 >= n || !is_cont(p[pos + 1])) return false;
        cpt = ((b0 & 0x1Fu) << 6) | (p[pos + 1] & 0x3Fu);
        pos += 2;
        return true;
    }
    if (!(b0 & 0x10)) {
        if (pos + 2 >= n || !is_cont(p[pos + 1]) || !is_cont(p[pos + 2])) return false;
        cpt = ((b0 & 0x0Fu) << 12) | ((p[pos + 1] & 0x3Fu) << 6) | (p[pos + 2] & 0x3Fu);
        pos += 3;
        return true;
    }
    if (!(b0 & 0x08)) {
        if (pos + 3 >= n || !is_cont(p[pos + 1]) || !is_cont(p[pos + 2]) || !is_cont(p[pos + 3])) {
            return false;
        }
        cpt = ((b0 & 0x07u) << 18) | ((p[pos + 1] & 0x3Fu) << 12) | ((p[pos + 2] & 0x3Fu) << 6) |
              (p[pos + 3] & 0x3Fu);
        pos += 4;
        return true;
    }
    return false;
}

}  // namespace

std::vector<uint32_t> utf8_decode_lenient(std::string_view text) {
    std::vector<uint32_t> out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
        uint32_t cpt = 0;
        if (decode_one(text, pos, cpt)) {
            if ((cpt >= 0xD800 && cpt <= 0xDFFF) || cpt > 0x10FFFF) cpt = 0xFFFD;
            out.push_back(cpt);
        } else {
            out.push_back(0xFFFD);
            ++pos;
        }
    }
    return out;
}

std::string utf8_sanitize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t start = pos;
        uint32_t cpt = 0;
        if (decode_one(text, pos, cpt)) {
            if ((cpt >= 0xD800 && cpt <= 0xDFFF) || cpt > 0x10FFFF) {
                cpt = 0xFFFD;
            } else if (pos - start == 1 || (cpt >= 0x80 && pos - start == 2) ||
                       (cpt >= 0x800 && pos - start == 3) || (cpt >= 0x10000)) {
                // Shortest form already: copy the bytes as they are (the common case).
                out.append(text.data() + start, pos - start);
                continue;
            }
            utf8_append(out, cpt);
        } else {
            out += "\xEF\xBF\xBD";
            pos = start + 1;
        }
    }
    return out;
}

size_t utf8_incomplete_tail(std::string_view text) {
    // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
    const size_t n = text.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto b = static_cast<uint8_t>(text[n - back]);
        if (is_cont(b)) continue;
        size_t need = 0;
        if ((b & 0xE0) == 0xC0) {
            need = 2;
        } else if ((b & 0xF0) == 0xE0) {
            need = 3;
        } else if ((b & 0xF8) == 0xF0) {
            need = 4;
        }
        return need > back ? back : 0;
    }
    return 0;
}

namespace {

struct ByteAlphabet {
    std::array<std::string, 256> enc;
    std::unordered_map<std::string, int> dec;
    ByteAlphabet() {
        // Printable Latin-1 bytes stand for themselves; the others are shifted to U+0100...
        auto keeps = [](int b) {
            return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        };
        int shifted = 0;
        for (int b = 0; b < 256; ++b) {
            std::string s;
            utf8_append(s, keeps(b) ? static_cast<uint32_t>(b) : 256u + shifted++);
            dec[s] = b;
            enc[b] = std::move(s);
        }
    }
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) {
    return alphabet().enc[byte];
}

int unicode_to_byte(std::string_view utf8) {
    const auto& dec = alphabet().dec;
    auto it = dec.find(std::string(utf8));
    return it == dec.end() ? -1 : it->second;
}

bool utf8_is_valid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        const size_t n = b < 0x80         ? 1
                         : (b >> 5) == 6  ? 2
                         : (b >> 4) == 14 ? 3
                         : (b >> 3) == 30 ? 4
                                          : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

}  // namespace llm8
