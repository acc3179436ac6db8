/* GPU sampling: the C API of the sorting-free CUDA sampler (docs/sampling.md).
 *
 * One call samples one token for each row of a [batch, vocab] fp32 logits buffer that stays on
 * the device. Each row carries its own parameters (temperature, top-k, top-p, min-p, penalties,
 * logit bias, seed and draw index), and draws from exactly the distribution of the CPU chain in
 * llm8/sampling.h (same order, same tie rules; docs/sampling.md lists the rounding-level
 * differences). The token for a row depends only on that row's logits and parameters, never on
 * the other rows of the batch or on the batch size.
 *
 * Rules for callers (a forward pass, another engine):
 *  - Every pointer in llm8_sampling_args is device-accessible memory (cudaMalloc, or mapped
 *    pinned host memory). Nothing is copied to or from the host and nothing is allocated, so a
 *    call can be captured in a CUDA graph; it is ordered on `stream` like any kernel.
 *  - The call launches one or two kernels and returns without synchronizing. Results are valid
 *    once the stream reaches that point.
 *  - llm8_sample_cuda_prepare() sets kernel attributes on the current device, and
 *    llm8_sample_cuda_cluster_size(batch, vocab) checks (once per shape) that the chosen cluster
 *    fits. Call both before capturing a graph (or make one ordinary call of the same batch and
 *    vocab): the first call of a shape queries the device, which capture does not allow.
 *  - Workspace: a device buffer of llm8_sample_cuda_workspace_size(batch, vocab) bytes (about
 *    17 KB per row), zeroed once (cudaMemset) before its first use; the kernels leave it in that
 *    state. One workspace per stream: calls in flight at once must not share it. With a
 *    workspace, rows with 1 <= top_k <= 64 and greedy rows (no bias, no penalties) take a faster
 *    kernel and the cluster kernel samples the rest; with NULL every row takes the cluster
 *    kernel. The tokens are the same either way.
 *
 * Plain C, usable without the CUDA headers: `llm8_cuda_stream` is the same type as cudaStream_t.
 */
#ifndef LLM8_SAMPLING_CUDA_H
#define LLM8_SAMPLING_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st* llm8_cuda_stream; /* == cudaStream_t */

/* Row flags. */
#define LLM8_SAMPLE_ADVANCE_DRAW 1u /* after the call, draw_index += 1 (for graph replays) */

/* At most this many top-n logprobs per row. */
#define LLM8_SAMPLING_MAX_TOP_N 32

/* Per-row status (out_status). A row that is not OK gets token -1 and NaN logprobs. */
#define LLM8_SAMPLE_ROW_OK 0
#define LLM8_SAMPLE_ROW_NO_CANDIDATES 1 /* every logit NaN or -inf after bias and penalties */
#define LLM8_SAMPLE_ROW_BAD_PARAMS                          \
    2 /* NaN temperature, top_p < 0, min_p outside [0, 1],  \
         repeat_penalty <= 0, NaN penalties or bias, a bias \
         token id outside [0, vocab) */

/* Return codes of the calls. */
#define LLM8_SAMPLING_OK 0
#define LLM8_SAMPLING_EINVAL (-1) /* bad arguments (null pointers, sizes, top_n range) */
#define LLM8_SAMPLING_ECUDA (-2)  /* a CUDA call failed: see llm8_sample_cuda_error_string */

/* The parameters of one row, with the CPU chain's meaning (llm8::SamplerParams). */
typedef struct llm8_sampling_row_params {
    float temperature;       /* <= 0: greedy (argmax, ties to the lowest id); +inf: uniform */
    int32_t top_k;           /* <= 0 or >= vocab: off */
    float top_p;             /* >= 1: off; 0 keeps the most probable token */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    float frequency_penalty; /* 0: off */
    float presence_penalty;  /* 0: off */
    int32_t penalty_begin;   /* the row's penalty window: penalty_tokens[begin, begin + count) */
    int32_t penalty_count;
    int32_t bias_begin; /* the row's logit bias: bias_tokens/bias_values[begin, begin + count) */
    int32_t bias_count;
    uint32_t flags;      /* LLM8_SAMPLE_* flags */
    uint64_t seed;       /* Philox key; the CPU Sampler's SamplerParams::seed */
    uint64_t draw_index; /* Philox counter; the CPU Sampler's draws() before this draw */
} llm8_sampling_row_params;

typedef struct llm8_sampling_args {
    const float* logits;              /* [batch][ld] fp32, row r at logits + r * ld */
    int32_t batch;                    /* >= 0 (0: nothing is launched) */
    int32_t vocab;                    /* > 0 */
    int64_t ld;                       /* >= vocab */
    llm8_sampling_row_params* params; /* [batch]; written only with LLM8_SAMPLE_ADVANCE_DRAW */
    /* Penalties: each row's window of recent tokens (the last penalty_last_n accepted tokens,
     * prompt included, as in the CPU chain). With penalty_counts == NULL the window is the raw
     * token list and repeats are counted on the device (cost grows with the square of the
     * window: fine up to a few hundred tokens). With penalty_counts != NULL each entry is a
     * distinct token and penalty_counts holds how often it occurs in the window. Token ids
     * outside [0, vocab) are ignored, as on the CPU. */
    const int32_t* penalty_tokens;
    const int32_t* penalty_counts;
    /* Logit bias: (token, value) pairs, distinct tokens per row; -inf bans a token. */
    const int32_t* bias_tokens;
    const float* bias_values;
    int32_t* out_tokens;     /* [batch]: the sampled token, or -1 when the row is not OK */
    int32_t* out_status;     /* [batch] LLM8_SAMPLE_ROW_*, or NULL */
    float* out_logprobs;     /* [batch] or NULL: log-probability of the sampled token under
                                softmax(logits after bias and penalties), temperature 1 */
    int32_t top_n;           /* 0..LLM8_SAMPLING_MAX_TOP_N */
    int32_t* out_top_tokens; /* [batch][top_n]: the top_n most probable tokens (ties: lower
                                id), -1 past the number of candidates */
    float* out_top_logprobs; /* [batch][top_n]: their logprobs, as out_logprobs; -inf past */
    int32_t cluster_size;    /* 0: automatic; 1..16: thread blocks per row (benchmarks) */
} llm8_sampling_args;

/* Sets kernel attributes on the current device. Returns LLM8_SAMPLING_OK or an error. */
int llm8_sample_cuda_prepare(void);

/* Workspace bytes that llm8_sample_cuda needs for this shape (see the rules above). */
size_t llm8_sample_cuda_workspace_size(int32_t batch, int32_t vocab);

/* Samples one token per row; see the rules at the top of this header. */
int llm8_sample_cuda(const llm8_sampling_args* args, void* workspace, size_t workspace_bytes,
                     llm8_cuda_stream stream);

/* The cluster size (thread blocks per row) that an automatic call uses for this shape. */
int llm8_sample_cuda_cluster_size(int32_t batch, int32_t vocab);

/* Human-readable text for a return code (includes the last CUDA error for ECUDA). */
const char* llm8_sample_cuda_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* LLM8_SAMPLING_CUDA_H */
