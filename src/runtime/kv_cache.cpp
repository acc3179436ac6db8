#include "runtime/kv_cache.h"

#include <algorithm>

#include "common/error.h"

namespace llm8 {

void KvBlockManager::init(int n_blocks, int block_size) {
    if (block_size <= 0 || (block_size & (block_size - 1)) != 0)
        fail(ErrorKind::invalid_arg, "KV cache: block size must be a power of two");
    if (n_blocks <= 0) fail(ErrorKind::invalid_arg, "KV cache: needs at least one block");
    bs_ = block_size;
    shift_ = 0;
    while ((1 << shift_) < block_size) ++shift_;
    ref_.assign(size_t(n_blocks), 0);
    free_.clear();
    for (int b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
    seqs_.clear();
}

int KvBlockManager::length(int seq) const {
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? 0 : it->second.len;
}

const std::vector<int32_t>& KvBlockManager::blocks(int seq) const {
    static const std::vector<int32_t> none;
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? none : it->second.blocks;
}

int KvBlockManager::blocks_needed(int seq, int n) const {
    const int len = length(seq);
    const auto& bl = blocks(seq);
    const int have = int(bl.size());
    const int want = (len + n + bs_ - 1) >> shift_;
    int need = std::max(0, want - have);
    // Appending into a shared, partly filled last block copies it first.
    if (n > 0 && (len & (bs_ - 1)) != 0 && have > 0 && ref_[size_t(bl.back())] > 1) ++need;
    return need;
}

int32_t KvBlockManager::take() {
    const int32_t b = free_.back();
    free_.pop_back();
    ref_[size_t(b)] = 1;
    return b;
}

void KvBlockManager::drop(int32_t b) {
    if (--ref_[size_t(b)] == 0) free_.push_back(b);
}

void KvBlockManager::reserve(int seq, int n, std::vector<std::pair<int32_t, int32_t>>* copies) {
    if (n < 0) fail(ErrorKind::invalid_arg, "KV cache: negative token count");
    const int need = blocks_needed(seq, n);
    if (need > n_free())
        fail(ErrorKind::invalid_arg,
             "KV cache full: sequence " + std::to_string(seq) + " needs " + std::to_string(need) +
                 " more blocks of " + std::to_string(bs_) + " tokens, " +
                 std::to_string(n_free()) + " of " + std::to_string(n_blocks()) +
                 " are free (raise -c, or free sequences)");
    Seq& s = seqs_[seq];
    if (n > 0 && (s.len & (bs_ - 1)) != 0 && !s.blocks.empty() &&
        ref_[size_t(s.blocks.back())] > 1) {
        const int32_t src = s.blocks.back();
        const int32_t dst = take();
        if (copies) copies->push_back({src, dst});
        drop(src);
        s.blocks.back() = dst;
    }
    const size_t want = size_t((s.len + n + bs_ - 1) >> shift_);
    while (s.blocks.size() < want) s.blocks.push_back(take());
}

void KvBlockManager::commit(int seq, int n) {
    Seq& s = seqs_.at(seq);
    if (size_t((s.len + n + bs_ - 1) >> shift_) > s.blocks.size())
        fail(ErrorKind::runtime, "KV cache: commit past the reserved blocks");
    s.len += n;
}

int64_t KvBlockManager::slot(int seq, int p) const {
    const Seq& s = seqs_.at(seq);
    return int64_t(s.blocks[size_t(p >> shift_)]) << shift_ | int64_t(p & (bs_ - 1));
}

void KvBlockManager::fork(int src, int dst) {
    if (src == dst) fail(ErrorKind::invalid_arg, "KV cache: cannot fork a sequence onto itself");
    if (has(dst))
        fail(ErrorKind::invalid_arg,
             "KV cache: sequence " + std::to_string(dst) + " exists; remove it before forking");
    auto it = seqs_.find(src);
    Seq copy;
    if (it != seqs_.end()) copy = it->second;
    for (int32_t b : copy.blocks) ++ref_[size_t(b)];
    seqs_[dst] = std::move(copy);
}

void KvBlockManager::remove(int seq) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    // Freed in reverse so that a sequence's first blocks are handed out first again.
    for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) drop(*b);
    seqs_.erase(it);
}

void KvBlockManager::truncate(int seq, int n) {
    auto it = seqs_.find(seq);
    const int len = it == seqs_.end() ? 0 : it->second.len;
    if (n < 0 || n > len)
        fail(ErrorKind::invalid_arg, "KV cache: cannot keep " + std::to_string(n) +
                                         " tokens of sequence " + std::to_string(seq) +
                                         ", which holds " + std::to_string(len));
    if (it == seqs_.end()) return;
    Seq& s = it->second;
    const size_t keep = size_t((n + bs_ - 1) >> shift_);
    while (s.blocks.size() > keep) {
        drop(s.blocks.back());
        s.blocks.pop_back();
    }
    s.len = n;
}

void KvBlockManager::clear() {
    init(n_blocks(), bs_);
}

KvMemory KvBlockManager::memory(size_t bytes_per_block) const {
    KvMemory m;
    m.block_size = bs_;
    m.n_blocks = n_blocks();
    m.blocks_used = n_blocks() - n_free();
    for (int r : ref_) m.blocks_shared += r > 1 ? 1 : 0;
    m.n_seqs = int(seqs_.size());
    for (const auto& kv : seqs_) m.tokens += kv.second.len;
    m.bytes_total = bytes_per_block * size_t(n_blocks());
    m.bytes_used = bytes_per_block * size_t(m.blocks_used);
    return m;
}

}  // namespace llm8
