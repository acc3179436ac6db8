// Stop strings over streamed text: generated text arrives piece by piece; a stop string may
// start in one piece and end in a later one. The matcher hands out only text that cannot be
// the start of a stop string, holds back the tail that might be, and cuts the text where a stop
// string appears (OpenAI's semantics: the stop string itself is not returned).
#pragma once
#include <string>
#include <vector>

namespace llm8_server {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);

    // Adds generated text; returns what can be sent now. After a stop string appeared,
    // stopped() is true and nothing more is returned.
    std::string push(const std::string& piece);
    // End of generation: the held-back tail (empty after a stop).
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace llm8_server
