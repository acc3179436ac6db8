#include "common/error.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab_impl.h"

namespace llm8 {

PreTokenizer::PreTokenizer(std::vector<std::string>) {}
PreTokenizer::~PreTokenizer() = default;
struct PreTokenizer::Impl {};

void bpe_init(Vocab::Impl&) {}
void bpe_tokenize(const Vocab::Impl&, const std::string&, std::vector<token_id>&) {
    fail(ErrorKind::unsupported, "BPE not yet");
}

}  // namespace llm8
