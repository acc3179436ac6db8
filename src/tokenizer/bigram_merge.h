// The merge loop both llama.cpp tokenizers share (SentencePiece by score, byte-level BPE by
// rank): the symbols of a word form a linked list (prev/next, n bytes); the best queued pair is
// merged first; a pair whose sides changed since it was queued is stale and skipped; each merge
// offers the new neighbour pairs to try_add, which queues those the vocabulary knows.
#pragma once
#include <cstdint>
#include <vector>

namespace llm8 {

template <typename Symbol, typename Queue, typename TryAdd>
void merge_bigrams(std::vector<Symbol>& symbols, Queue& queue, TryAdd try_add) {
    for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        const auto b = queue.top();
        queue.pop();
        Symbol& l = symbols[b.left];
        Symbol& r = symbols[b.right];
        // Both alive and sizes unchanged means the same text as when queued.
        if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) symbols[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }
}

}  // namespace llm8
