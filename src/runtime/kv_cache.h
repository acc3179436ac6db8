// The paged KV cache's bookkeeping (backend-neutral): a fixed pool of blocks of block_size
// tokens, a block table per sequence, reference counts so that forked sequences share their
// prefix blocks, and copy on write of a shared block that is only partly filled. The storage
// itself (float on the CPU, half on the GPU) belongs to the backend; this class only says
// which rows to use and which blocks to copy.
//
// Block size: 64 tokens (kKvBlockSize). The prefill attention kernel works on 64-key tiles, so
// a tile never straddles two blocks; decode reads a block's 64 rows contiguously; and one
// 64-token block of a llama-3-8B layer is 64 KiB of K+V in F16, small enough that prefix sharing
// and the tail waste (at most 63 tokens per sequence) cost little.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "llm8/engine.h"

namespace llm8 {

constexpr int kKvBlockSize = 64;

class KvBlockManager {
public:
    void init(int n_blocks, int block_size);
    int block_size() const { return bs_; }
    int block_shift() const { return shift_; }
    int n_blocks() const { return int(ref_.size()); }
    int n_free() const { return int(free_.size()); }

    bool has(int seq) const { return seqs_.count(seq) != 0; }
    int length(int seq) const;  // tokens stored (0 for an unknown sequence)
    const std::vector<int32_t>& blocks(int seq) const;

    // Blocks needed to append n tokens to seq (a new sequence when unknown), counting the copy
    // of a shared, partly filled last block.
    int blocks_needed(int seq, int n) const;
    // Makes room for n more tokens of seq. A shared, partly filled last block is replaced by a
    // fresh copy first: (src, dst) goes to *copies for the backend to copy (all layers, K and V).
    // Throws llm8::Error when the pool is out of blocks (nothing changed then).
    void reserve(int seq, int n, std::vector<std::pair<int32_t, int32_t>>* copies);
    void commit(int seq, int n);         // the n reserved tokens were written
    int64_t slot(int seq, int p) const;  // pool row of token p of seq

    // dst shares every block of src (dst must not exist); the next append to either copies a
    // partly filled shared block.
    void fork(int src, int dst);
    void remove(int seq);  // frees the blocks no other sequence holds
    // Keeps the first n tokens of seq (n <= length) and drops the blocks past them; a kept,
    // partly filled block that is shared is copied on the next append, as after fork.
    void truncate(int seq, int n);
    void clear();

    KvMemory memory(size_t bytes_per_block) const;

private:
    struct Seq {
        std::vector<int32_t> blocks;
        int len = 0;
    };
    int32_t take();
    void drop(int32_t b);

    int bs_ = kKvBlockSize, shift_ = 6;
    std::vector<int> ref_;
    std::vector<int32_t> free_;  // a stack: the lowest ids are handed out first
    std::map<int, Seq> seqs_;
};

// The CPU's K/V storage: float pools [n_layer][n_blocks * block_size][kv_dim].
struct CpuKvPools {
    std::vector<float> k, v;              // f32 cache
    std::vector<int8_t> k8, v8;           // int8 cache
    std::vector<float> k_scale, v_scale;  // its scales, [n_layer][rows][n_head_kv]
};

}  // namespace llm8
