// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe:
// the text is split into words by the pre-tokenizer of tokenizer.ggml.pre, each word's bytes
// are written in GPT-2's printable byte alphabet, and adjacent symbols are merged by merge
// rank (lowest first; ties: leftmost). A final symbol that is not a token is emitted byte by
// byte where a byte is a token on its own, and dropped otherwise (as llama.cpp does).
#include <queue>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "tokenizer/bigram_merge.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_impl.h"

namespace llm8 {

namespace {

// The patterns llama.cpp uses per pre-tokenizer (written here in PCRE syntax).
const char* const k_gpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const k_llama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const k_qwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const k_gpt4o =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const k_tekken =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM: cased letters of many scripts (as listed by its tokenizer), ASCII and
// full-width punctuation, CJK, digits.
const char* const k_deepseek_letters =
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
    "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+";
const char* const k_deepseek_punct =
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+";
const char* const k_cjk = "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
// `\s+$` is the trailing whitespace run; the lookbehind only keeps PCRE2 from rescanning a long
// inner run from every position (quadratic), without changing what matches.
const char* const k_trailing_space = "(?<!\\s)\\s+$";

struct PreSpec {
    std::vector<const char*> names;
    std::vector<const char*> patterns;
    bool clean_spaces;
    bool ignore_merges;
    bool add_bos;
};

const std::vector<PreSpec>& pre_specs() {
    static const std::vector<PreSpec> specs = {
        {{"default"},
         {"[\\p{P}\\$\\+<=>\\^~\\|]+", k_gpt2, "\\p{N}+", "[0-9][0-9][0-9]"},
         true,
         false,
         false},
        {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
         {k_llama3},
         true,
         true,
         true},
        {{"dbrx", "smaug-bpe"}, {k_llama3}, true, false, false},
        {{"deepseek-llm"},
         {"[\\r\\n]", k_deepseek_letters, k_deepseek_punct, k_trailing_space, k_cjk, "\\p{N}+"},
         false,
         false,
         false},
        {{"deepseek-coder"},
         {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", k_cjk, "\\p{N}"},
         false,
         false,
         false},
        {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", k_gpt2, "[0-9][0-9][0-9]"}, true, false, false},
        {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b"},
         {"\\p{N}", k_gpt2},
         true,
         false,
         false},
        {{"command-r", "smollm"}, {"\\p{N}", k_gpt2}, false, false, false},
        {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
          "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "a.x-4.0", "mellum"},
         {k_gpt2},
         true,
         false,
         false},
        {{"qwen2", "deepseek-r1-qwen"}, {k_qwen2}, false, false, false},
        {{"stablelm2", "megrez"}, {k_qwen2}, true, false, false},
        {{"gpt-4o", "llama4"}, {k_gpt4o}, false, false, false},
        {{"tekken"}, {k_tekken}, false, true, true},
        {{"poro-chat"},
         {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"},
         false,
         false,
         false},
        {{"bloom", "gpt3-finnish"},
         {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"},
         true,
         false,
         false},
    };
    return specs;
}

struct Symbol {
    int32_t prev;
    int32_t next;
    uint32_t offset;  // into the encoded word
    uint32_t n;
};

struct Bigram {
    int32_t left;
    int32_t right;
    int32_t rank;
    uint32_t size;
};

struct BigramWorse {
    // priority_queue pops the "largest": lowest rank, then smallest left index.
    bool operator()(const Bigram& l, const Bigram& r) const {
        return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
    }
};

class BpeSession {
public:
    explicit BpeSession(const Vocab::Impl& v) : v_(v) {}

    // Appends the ids of one pre-tokenized word (raw bytes).
    void word(const std::string& raw, std::vector<token_id>& out) {
        encoded_.clear();
        for (char c : raw) encoded_ += byte_to_unicode(static_cast<uint8_t>(c));
        const std::string_view w(encoded_);

        if (v_.ignore_merges) {
            const token_id id = v_.text_to_token(w);
            if (id >= 0) {
                out.push_back(id);
                return;
            }
        }

        symbols_.clear();
        uint32_t offs = 0;
        int32_t index = 0;
        while (offs < w.size()) {
            const uint32_t len = static_cast<uint32_t>(
                std::min<size_t>(utf8_len(static_cast<uint8_t>(w[offs])), w.size() - offs));
            Symbol s{index - 1, offs + len == w.size() ? -1 : index + 1, offs, len};
            offs += len;
            ++index;
            symbols_.push_back(s);
        }
        merge_bigrams(symbols_, queue_, [this](int32_t l, int32_t r) { try_add(l, r); });

        for (int32_t i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) {
            const Symbol& s = symbols_[i];
            const std::string_view text = w.substr(s.offset, s.n);
            const token_id id = v_.text_to_token(text);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (char c : text) {
                const token_id b = v_.text_to_token(std::string_view(&c, 1));
                if (b >= 0) out.push_back(b);
            }
        }
    }

private:
    void try_add(int32_t left, int32_t right) {
        if (left == -1 || right == -1) return;
        const Symbol& l = symbols_[left];
        const Symbol& r = symbols_[right];
        const std::string_view w(encoded_);
        key_.assign(w.data() + l.offset, l.n);
        key_ += ' ';
        key_.append(w.data() + r.offset, r.n);
        auto it = v_.bpe_ranks.find(key_);
        if (it == v_.bpe_ranks.end()) return;
        queue_.push(Bigram{left, right, it->second, l.n + r.n});
    }

    const Vocab::Impl& v_;
    std::string encoded_;
    std::string key_;
    std::vector<Symbol> symbols_;
    std::priority_queue<Bigram, std::vector<Bigram>, BigramWorse> queue_;
};

}  // namespace

void bpe_init(Vocab::Impl& v) {
    const std::string name = v.pre.empty() ? "default" : v.pre;
    for (const PreSpec& spec : pre_specs()) {
        for (const char* n : spec.names) {
            if (name != n) continue;
            std::vector<std::string> patterns(spec.patterns.begin(), spec.patterns.end());
            v.pretokenizer = std::make_unique<PreTokenizer>(std::move(patterns));
            v.clean_spaces = spec.clean_spaces;
            v.ignore_merges = spec.ignore_merges;
            if (spec.add_bos) v.add_bos = true;
            return;
        }
    }
    fail(ErrorKind::unsupported, "unknown BPE pre-tokenizer tokenizer.ggml.pre = '" + v.pre + "'");
}

void bpe_tokenize(const Vocab::Impl& v, const std::string& text, std::vector<token_id>& out) {
    // Invalid UTF-8 becomes U+FFFD before splitting, as in llama.cpp.
    const std::vector<std::string> words = v.pretokenizer->split(utf8_sanitize(text));
    BpeSession session(v);
    // Words repeat a lot in real text; their ids do not depend on context.
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>> cache;
    std::vector<token_id> tmp;
    for (const std::string& w : words) {
        if (w.size() <= 32) {
            auto it = cache.find(w);
            if (it != cache.end()) {
                const size_t start = it->second.first;
                const size_t len = it->second.second;
                for (size_t i = 0; i < len; ++i) out.push_back(out[start + i]);
                continue;
            }
            const size_t before = out.size();
            session.word(w, out);
            cache.emplace(w, std::make_pair(static_cast<uint32_t>(before),
                                            static_cast<uint32_t>(out.size() - before)));
        } else {
            session.word(w, out);
        }
    }
}

}  // namespace llm8
