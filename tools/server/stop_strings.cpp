#include "server/stop_strings.h"

#include <algorithm>

namespace llm8_server {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string StopMatcher::push(const std::string& piece) {
    if (stopped_) return "";
    held_ += piece;
    if (stops_.empty()) {
        std::string out;
        out.swap(held_);
        return out;
    }
    // The earliest stop string in the held text (held_ is shorter than the longest stop string
    // plus one piece, so this stays cheap).
    size_t first = std::string::npos;
    for (const std::string& s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        stopped_ = true;
        std::string out = held_.substr(0, first);
        held_.clear();
        return out;
    }
    // Hold back the longest tail that is the beginning of some stop string.
    size_t hold = 0;
    for (const std::string& s : stops_) {
        const size_t max_k = std::min(s.size() - 1, held_.size());
        for (size_t k = max_k; k > hold; --k)
            if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                hold = k;
                break;
            }
    }
    std::string out = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    if (!stopped_) out.swap(held_);
    held_.clear();
    return out;
}

}  // namespace llm8_server
