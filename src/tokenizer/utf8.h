// UTF-8 helpers with llama.cpp's exact leniency, and GPT-2's byte <-> unicode mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llm8 {

// Length of the UTF-8 sequence a lead byte announces, from its high nibble alone
// (continuation bytes count as 1), as llama.cpp's unicode_len_utf8.
inline size_t utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

// Appends the UTF-8 encoding of a code point (<= 0x10FFFF).
void utf8_append(std::string& out, uint32_t cpt);

// Decodes text into code points the way llama.cpp does: a malformed sequence becomes one
// U+FFFD and decoding resumes at the next byte. Unlike llama.cpp, surrogates and values past
// U+10FFFF (which it cannot encode again and throws on) also become U+FFFD.
std::vector<uint32_t> utf8_decode_lenient(std::string_view text);

// The text re-encoded from utf8_decode_lenient: always valid UTF-8.
std::string utf8_sanitize(std::string_view text);

// True when text is a sequence of whole UTF-8 characters by their byte structure (lead byte
// announces 1-4 bytes, continuation bytes follow, nothing cut off at the end).
bool utf8_is_valid(std::string_view text);

// Number of bytes at the end of `text` that form an incomplete (but so far valid) UTF-8
// sequence: 0 when text ends on a character boundary or with bytes that can never complete.
size_t utf8_incomplete_tail(std::string_view text);

// GPT-2 byte-level BPE alphabet: every byte maps to one printable code point (as UTF-8).
const std::string& byte_to_unicode(uint8_t byte);
// Inverse; -1 when the code point (as UTF-8) is not in the alphabet.
int unicode_to_byte(std::string_view utf8);

}  // namespace llm8
