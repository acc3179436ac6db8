// Vocab: loading tokenizer.ggml.* from a GGUF, partitioning text around special tokens, and
// detokenization, all following llama.cpp's llama-vocab.cpp so that ids match token for token.
// The subword algorithms themselves live in spm.cpp and bpe.cpp.
#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_impl.h"

namespace llm8 {

Vocab::Impl::Impl() = default;
Vocab::Impl::~Impl() = default;

int32_t Vocab::Impl::bpe_rank(std::string_view left, std::string_view right) const {
    std::string key;
    key.reserve(left.size() + right.size() + 1);
    key.append(left);
    key += ' ';
    key.append(right);
    auto it = bpe_ranks.find(key);
    return it == bpe_ranks.end() ? -1 : it->second;
}

token_id Vocab::Impl::byte_to_token(uint8_t byte) const {
    static const char* hex = "0123456789ABCDEF";
    if (kind == VocabKind::spm) {
        const char buf[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
        token_id id = text_to_token(std::string_view(buf, 6));
        if (id >= 0) return id;
        const char one = static_cast<char>(byte);
        id = text_to_token(std::string_view(&one, 1));
        // llama.cpp throws here (std::map::at); the unknown token is the kinder answer.
        return id >= 0 ? id : unk;
    }
    return text_to_token(byte_to_unicode(byte));
}

uint8_t Vocab::Impl::token_to_byte(token_id id) const {
    const std::string& t = tokens[id].text;
    if (t.size() >= 5 && t.compare(0, 3, "<0x") == 0) {
        return static_cast<uint8_t>(std::strtol(t.substr(3, 2).c_str(), nullptr, 16));
    }
    if (kind == VocabKind::bpe) {
        const int b = unicode_to_byte(t);
        if (b >= 0) return static_cast<uint8_t>(b);
    }
    return t.empty() ? 0 : static_cast<uint8_t>(t[0]);
}

namespace {

uint32_t attr_from_type(int64_t type) {
    switch (type) {
        case 1:
            return attr_normal;
        case 2:
            return attr_unknown;
        case 3:
            return attr_control;
        case 4:
            return attr_user_defined;
        case 5:
            return attr_unused;
        case 6:
            return attr_byte;
        default:
            return attr_undefined;
    }
}

TokenType type_from_int(int64_t type) {
    if (type < 0 || type > 6) return TokenType::undefined;
    return static_cast<TokenType>(type);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    if (s.find(from) == std::string::npos) return;
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    for (;;) {
        const size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out.append(to);
        pos = hit + from.size();
    }
    out.append(s, pos, std::string::npos);
    s.swap(out);
}

// The piece a token decodes to with special = true (llama.cpp's token_to_piece cache).
std::string make_piece(const Vocab::Impl& v, token_id id) {
    const uint32_t a = v.attrs[id];
    const std::string& text = v.tokens[id].text;
    if (a & (attr_unknown | attr_control | attr_user_defined)) return text;
    if (v.kind == VocabKind::spm) {
        if (a & attr_normal) {
            std::string s = text;
            replace_all(s, "\xE2\x96\x81", " ");
            return s;
        }
        if (a & attr_byte) return std::string(1, static_cast<char>(v.token_to_byte(id)));
        return "";
    }
    if (a & attr_normal) {
        // Byte-level BPE text maps back to raw bytes code point by code point.
        std::string out;
        for (uint32_t cpt : utf8_decode_lenient(text)) {
            std::string u;
            utf8_append(u, cpt);
            const int b = unicode_to_byte(u);
            if (b >= 0) {
                out += static_cast<char>(b);
            } else {
                static const char* hex = "0123456789abcdef";
                out += "[UNK_BYTE_0x";
                for (char c : u) {
                    out += hex[static_cast<uint8_t>(c) >> 4];
                    out += hex[static_cast<uint8_t>(c) & 15];
                }
                out += text + "]";
            }
        }
        return out;
    }
    if (a & attr_byte) return std::string(1, static_cast<char>(v.token_to_byte(id)));
    return "";
}

// Special-token ids read from tokenizer.ggml.<name>. An out-of-range id for one of the ids
// the engine acts on is a format error; for the others llama.cpp only warns, and so do we
// (by keeping the default), because real files carry such ids.
struct SpecialKey {
    const char* key;
    token_id Vocab::Impl::*field;
    bool strict;
};

const SpecialKey k_special_keys[] = {
    {"tokenizer.ggml.bos_token_id", &Vocab::Impl::bos, true},
    {"tokenizer.ggml.eos_token_id", &Vocab::Impl::eos, true},
    {"tokenizer.ggml.eot_token_id", &Vocab::Impl::eot, true},
    {"tokenizer.ggml.eom_token_id", &Vocab::Impl::eom, true},
    {"tokenizer.ggml.unknown_token_id", &Vocab::Impl::unk, true},
    {"tokenizer.ggml.seperator_token_id", &Vocab::Impl::sep, false},
    {"tokenizer.ggml.padding_token_id", &Vocab::Impl::pad, false},
    {"tokenizer.ggml.mask_token_id", &Vocab::Impl::mask, false},
    {"tokenizer.ggml.fim_pre_token_id", &Vocab::Impl::fim_pre, false},
    {"tokenizer.ggml.fim_suf_token_id", &Vocab::Impl::fim_suf, false},
    {"tokenizer.ggml.fim_mid_token_id", &Vocab::Impl::fim_mid, false},
    {"tokenizer.ggml.fim_pad_token_id", &Vocab::Impl::fim_pad, false},
    {"tokenizer.ggml.fim_rep_token_id", &Vocab::Impl::fim_rep, false},
    {"tokenizer.ggml.fim_sep_token_id", &Vocab::Impl::fim_sep, false},
    {"tokenizer.ggml.prefix_token_id", &Vocab::Impl::fim_pre, false},
    {"tokenizer.ggml.suffix_token_id", &Vocab::Impl::fim_suf, false},
    {"tokenizer.ggml.middle_token_id", &Vocab::Impl::fim_mid, false},
};

// llama.cpp recognises EOT/EOG/FIM tokens by their text and forces them to control type.
void detect_special_by_text(Vocab::Impl& v) {
    auto make_control = [&](token_id id) { v.attrs[id] |= attr_control; };
    auto detect = [&](token_id& field, std::initializer_list<std::string_view> names) {
        if (field >= 0) return;
        for (std::string_view name : names) {
            const token_id id = v.text_to_token(name);
            if (id >= 0) {
                field = id;
                make_control(id);
                return;
            }
        }
    };
    detect(v.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                   "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                   "<\xEF\xBD\x9C"
                   "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                   "<end_of_utterance>"});
    detect(v.eom, {"<|eom_id|>"});
    detect(v.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81"
                       "begin\xEF\xBD\x9C>",
                       "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
    detect(v.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                       "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
    detect(v.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81"
                       "end\xEF\xBD\x9C>",
                       "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
    detect(v.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
    detect(v.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
    detect(v.fim_sep, {"<|file_sep|>"});

    for (token_id id : {v.fim_pad, v.fim_rep, v.fim_sep}) {
        if (id >= 0) v.eog.insert(id);
    }
    for (std::string_view name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                  "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                  "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>"}) {
        const token_id id = v.text_to_token(name);
        if (id >= 0) {
            v.eog.insert(id);
            make_control(id);
        }
    }
    for (token_id id : {v.eos, v.eot, v.eom}) {
        if (id >= 0) v.eog.insert(id);
    }
    // gpt-oss style vocabularies: <|end|> ends a message, not the generation.
    const token_id end_id = v.text_to_token("<|end|>");
    if (end_id >= 0 && v.text_to_token("<|return|>") >= 0 && v.text_to_token("<|call|>") >= 0) {
        v.eog.erase(end_id);
        v.attrs[end_id] = attr_user_defined;
    }
}

void set_strip_attrs(Vocab::Impl& v, const GgufFile& f) {
    std::string name = f.get_str("general.name", "");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos) return;
    // Phi-3's added tokens swallow the whitespace after them.
    for (token_id id : v.special_tokens) v.attrs[id] |= attr_rstrip;
    auto set = [&](std::string_view text, bool on) {
        const token_id id = v.text_to_token(text);
        if (id < 0) return;
        if (on) {
            v.attrs[id] |= attr_rstrip;
        } else {
            v.attrs[id] &= ~attr_rstrip;
        }
    };
    set("</s>", true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, false);
}

}  // namespace

Vocab::Vocab() : impl_(std::make_unique<Impl>()) {}
Vocab::~Vocab() = default;

std::shared_ptr<const Vocab> Vocab::from_gguf(const GgufFile& f) {
    std::shared_ptr<Vocab> vocab(new Vocab());
    Impl& v = *vocab->impl_;

    const GgufValue* model_kv = f.find("tokenizer.ggml.model");
    if (!model_kv || model_kv->type != GgufType::STRING) {
        fail(ErrorKind::format, f.path() + ": missing tokenizer.ggml.model (no vocabulary)");
    }
    v.model = model_kv->str;
    v.pre = f.get_str("tokenizer.ggml.pre", "");
    if (v.model == "llama") {
        v.kind = VocabKind::spm;
        v.bos = 1;
        v.eos = 2;
        v.unk = 0;
        v.add_space_prefix = true;
        v.add_bos = true;
    } else if (v.model == "gpt2") {
        v.kind = VocabKind::bpe;
        v.bos = 11;
        v.eos = 11;
        v.clean_spaces = true;
    } else {
        fail(ErrorKind::unsupported,
             f.path() + ": tokenizer model '" + v.model + "' is not supported (llama, gpt2)");
    }

    // ---- tokens, scores, types
    const GgufValue* tokens_kv = f.find("tokenizer.ggml.tokens");
    if (!tokens_kv || !tokens_kv->is_array() || tokens_kv->elem_type != GgufType::STRING) {
        fail(ErrorKind::format, f.path() + ": tokenizer.ggml.tokens is missing or not strings");
    }
    const std::vector<std::string>& words = tokens_kv->strings;
    const size_t n = words.size();
    if (n == 0) fail(ErrorKind::format, f.path() + ": tokenizer.ggml.tokens is empty");
    if (n > static_cast<size_t>(INT32_MAX)) {
        fail(ErrorKind::format, f.path() + ": tokenizer.ggml.tokens is too large");
    }

    const GgufValue* scores_kv = f.find("tokenizer.ggml.scores");
    if (scores_kv) {
        if (!scores_kv->is_array() || (scores_kv->elem_type != GgufType::FLOAT32 &&
                                       scores_kv->elem_type != GgufType::INT32)) {
            fail(ErrorKind::format, f.path() + ": tokenizer.ggml.scores must be f32 or i32");
        }
        if (scores_kv->array_size() != n) {
            fail(ErrorKind::format, f.path() + ": tokenizer.ggml.scores has " +
                                        std::to_string(scores_kv->array_size()) + " entries for " +
                                        std::to_string(n) + " tokens");
        }
    }
    const GgufValue* types_kv = f.find("tokenizer.ggml.token_type");
    if (types_kv) {
        if (!types_kv->is_array() || types_kv->ints.size() != types_kv->array_size()) {
            fail(ErrorKind::format, f.path() + ": tokenizer.ggml.token_type must be integers");
        }
        if (types_kv->array_size() != n) {
            fail(ErrorKind::format, f.path() + ": tokenizer.ggml.token_type has " +
                                        std::to_string(types_kv->array_size()) + " entries for " +
                                        std::to_string(n) + " tokens");
        }
    }

    v.tokens.resize(n);
    v.attrs.resize(n);
    for (size_t i = 0; i < n; ++i) {
        TokenData& t = v.tokens[i];
        t.text = words[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : words[i];
        if (scores_kv) {
            t.score = scores_kv->elem_type == GgufType::FLOAT32
                          ? static_cast<float>(scores_kv->floats[i])
                          : static_cast<float>(scores_kv->ints[i]);
        }
        if (types_kv) {
            t.type = type_from_int(types_kv->ints[i]);
            v.attrs[i] = attr_from_type(types_kv->ints[i]);
        } else {
            t.type = TokenType::normal;
            v.attrs[i] = attr_normal;
        }
    }
    // Duplicated texts: the first id is the one text maps to (newer llama.cpp refuses such
    // files, older ones kept the last).
    v.token_to_id.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        v.token_to_id.emplace(std::string_view(v.tokens[i].text), static_cast<token_id>(i));
    }

    // ---- BPE merges and pre-tokenizer
    if (v.kind == VocabKind::bpe) {
        const GgufValue* merges_kv = f.find("tokenizer.ggml.merges");
        if (!merges_kv || !merges_kv->is_array() || merges_kv->elem_type != GgufType::STRING) {
            fail(ErrorKind::format, f.path() + ": BPE vocabulary without tokenizer.ggml.merges");
        }
        v.bpe_ranks.reserve(merges_kv->strings.size() * 2);
        for (size_t i = 0; i < merges_kv->strings.size(); ++i) {
            const std::string& m = merges_kv->strings[i];
            const size_t pos = m.find(' ', 1);
            std::string key = pos == std::string::npos ? std::string(" ") : m;
            v.bpe_ranks.emplace(std::move(key), static_cast<int32_t>(i));
        }
        bpe_init(v);
    }

    v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);

    // ---- special ids
    for (const SpecialKey& sk : k_special_keys) {
        token_id& field = v.*(sk.field);
        if (field >= static_cast<token_id>(n)) field = -1;  // a default beyond a small vocab
        const GgufValue* kv = f.find(sk.key);
        if (!kv) continue;
        const int64_t id = f.get_int(sk.key);
        if (id < 0 || id >= static_cast<int64_t>(n)) {
            if (sk.strict) {
                fail(ErrorKind::format, f.path() + ": " + sk.key + " = " + std::to_string(id) +
                                            " is outside the vocabulary of " + std::to_string(n) +
                                            " tokens");
            }
            continue;
        }
        field = static_cast<token_id>(id);
    }
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", v.add_bos);
    v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", v.add_eos);
    if (v.add_bos && v.bos < 0) {
        fail(ErrorKind::format,
             f.path() + ": tokenizer.ggml.add_bos_token is true but there is no BOS token");
    }
    if (v.add_eos && v.eos < 0) {
        fail(ErrorKind::format,
             f.path() + ": tokenizer.ggml.add_eos_token is true but there is no EOS token");
    }

    detect_special_by_text(v);

    for (size_t i = 0; i < n; ++i) {
        if (v.attrs[i] & (attr_control | attr_user_defined | attr_unknown)) {
            v.special_tokens.push_back(static_cast<token_id>(i));
        }
    }
    std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(), [&](token_id a, token_id b) {
        return v.tokens[a].text.size() > v.tokens[b].text.size();
    });
    set_strip_attrs(v, f);

    if (v.kind == VocabKind::spm) v.spm_word_split = spm_words_are_independent(v);

    v.pieces.resize(n);
    for (size_t i = 0; i < n; ++i) v.pieces[i] = make_piece(v, static_cast<token_id>(i));
    return vocab;
}

VocabKind Vocab::kind() const {
    return impl_->kind;
}
int32_t Vocab::n_tokens() const {
    return static_cast<int32_t>(impl_->tokens.size());
}
const TokenData& Vocab::token(token_id id) const {
    return impl_->tokens.at(id);
}
token_id Vocab::find(const std::string& text) const {
    return impl_->text_to_token(text);
}
token_id Vocab::bos() const {
    return impl_->bos;
}
token_id Vocab::eos() const {
    return impl_->eos;
}
token_id Vocab::unk() const {
    return impl_->unk;
}
bool Vocab::add_bos() const {
    return impl_->add_bos;
}
bool Vocab::add_eos() const {
    return impl_->add_eos;
}
bool Vocab::is_eog(token_id id) const {
    return id >= 0 && impl_->eog.count(id) > 0;
}
bool Vocab::is_control(token_id id) const {
    return id >= 0 && id < n_tokens() && (impl_->attrs[id] & attr_control);
}

namespace {

// A piece of the input: raw text [offset, offset+length) or a special token.
struct Fragment {
    token_id token;  // -1 for raw text
    size_t offset;
    size_t length;
};

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// Splits raw-text fragments around every occurrence of each special token, longest tokens
// first (llama.cpp's tokenizer_st_partition). Control and unknown tokens take part only with
// parse_special; user-defined tokens always do.
std::vector<Fragment> partition(const Vocab::Impl& v, const std::string& text, bool parse_special) {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});
    std::vector<Fragment> next;
    for (token_id sid : v.special_tokens) {
        const uint32_t a = v.attrs[sid];
        if (!parse_special && (a & (attr_control | attr_unknown))) continue;
        const std::string& st = v.tokens[sid].text;
        if (st.empty()) continue;
        bool any = false;
        for (const Fragment& fr : frags) {
            if (fr.token < 0 && fr.length >= st.size() &&
                std::string_view(text).substr(fr.offset, fr.length).find(st) !=
                    std::string_view::npos) {
                any = true;
                break;
            }
        }
        if (!any) continue;
        next.clear();
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            size_t base = fr.offset;
            size_t len = fr.length;
            for (;;) {
                const size_t match = std::string_view(text.data(), base + len).find(st, base);
                if (match == std::string_view::npos) {
                    if (len > 0) next.push_back({-1, base, len});
                    break;
                }
                if (match > base) {
                    size_t left_len = match - base;
                    if (a & attr_lstrip) {
                        while (left_len > 0 && is_space(text[base + left_len - 1])) --left_len;
                    }
                    if (left_len > 0) next.push_back({-1, base, left_len});
                }
                next.push_back({sid, 0, 0});
                const size_t end = match + st.size();
                if (end >= base + len) break;
                size_t right_off = end;
                size_t right_len = base + len - end;
                if (a & attr_rstrip) {
                    while (right_len > 0 && is_space(text[right_off])) {
                        ++right_off;
                        --right_len;
                    }
                }
                base = right_off;
                len = right_len;
            }
        }
        frags.swap(next);
    }
    return frags;
}

}  // namespace

std::vector<token_id> Vocab::tokenize(const std::string& text, bool add_special,
                                      bool parse_special) const {
    const Impl& v = *impl_;
    std::vector<token_id> out;
    const std::vector<Fragment> frags = partition(v, text, parse_special);

    if (v.kind == VocabKind::spm) {
        bool prev_special = true;  // the first fragment gets the space prefix
        if (add_special && v.add_bos) out.push_back(v.bos);
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                out.push_back(fr.token);
                prev_special = true;
                continue;
            }
            std::string piece;
            if (v.add_space_prefix && prev_special) piece = " ";
            piece.append(text, fr.offset, fr.length);
            spm_tokenize(v, piece, out);
            prev_special = false;
        }
        if (add_special && v.add_eos) out.push_back(v.eos);
        return out;
    }

    if (add_special && v.add_bos) out.push_back(v.bos);
    for (const Fragment& fr : frags) {
        if (fr.token >= 0) {
            out.push_back(fr.token);
            continue;
        }
        bpe_tokenize(v, text.substr(fr.offset, fr.length), out);
    }
    if (add_special && v.add_eos) out.push_back(v.eos);
    return out;
}

std::string Vocab::token_to_piece(token_id id, bool special) const {
    const Impl& v = *impl_;
    if (id < 0 || id >= n_tokens()) return "";
    if (!special && (v.attrs[id] & (attr_unknown | attr_control))) return "";
    return v.pieces[id];
}

namespace {

// llama.cpp's clean_spaces passes over the detokenized bytes (BPE vocabs such as GPT-2):
// " ?" " !" " ." " ," lose the space, " ' " becomes "'", and " 's" " 'm" " 're" " 've" lose
// the space.
std::string clean_up_spaces(std::string s) {
    if (s.size() < 2) return s;
    std::string out;
    out.reserve(s.size());
    out += s[0];
    for (size_t i = 1; i < s.size(); ++i) {
        const char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) out.pop_back();
        out += x;
    }
    s.swap(out);
    out.clear();
    if (!s.empty()) out += s[0];
    for (size_t i = 1; i < s.size(); ++i) {
        const char x = s[i];
        if (x == '\'' && i + 1 < s.size() && s[i - 1] == ' ' && s[i + 1] == ' ') {
            out.pop_back();
            s[++i] = '\0';
        }
        out += x;
    }
    s.swap(out);
    out.clear();
    if (!s.empty()) out += s[0];
    for (size_t i = 1; i < s.size(); ++i) {
        const char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < s.size()) {
            const char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') {
                out.pop_back();
            } else if (i + 2 < s.size() && x1 != 't' && x1 != 'd') {
                const char x2 = s[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) out.pop_back();
            }
        }
        out += x;
    }
    return out;
}

}  // namespace

std::string Vocab::detokenize(const std::vector<token_id>& ids, bool remove_special,
                              bool unparse_special) const {
    const Impl& v = *impl_;
    size_t first = 0;
    size_t last = ids.size();
    // The space SentencePiece put in front of the text is dropped from the first piece. As in
    // llama.cpp, a leading BOS consumes that right (it is the first piece, and empty), and so
    // does a BOS removed by remove_special: then the text after it keeps its space.
    bool remove_space = v.add_space_prefix;
    if (remove_special && v.add_bos && last > first && ids[first] == v.bos) {
        remove_space = false;
        ++first;
    }
    if (remove_special && v.add_eos && last > first && ids[last - 1] == v.eos) --last;

    std::string out;
    for (size_t i = first; i < last; ++i) {
        const std::string piece = token_to_piece(ids[i], unparse_special);
        if (remove_space && !piece.empty() && piece[0] == ' ') {
            out.append(piece, 1, std::string::npos);
        } else {
            out += piece;
        }
        remove_space = false;
    }
    if (v.clean_spaces) out = clean_up_spaces(std::move(out));
    return out;
}

}  // namespace llm8
