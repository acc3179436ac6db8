# Command-line tests of the tools (included from tests/CMakeLists.txt).
set(RUN ${CMAKE_CURRENT_SOURCE_DIR}/cli/run_expect.cmake)
set(DATA ${LLM8_SHARED_DATA})
function(llm8_cli_test name)
    cmake_parse_arguments(T "" "EXPECT;EXIT;REGEX;NOT_REGEX;REQUIRE;STDOUT_BEGINS;INPUT;FIXTURE" "CMD"
                          ${ARGN})
    set(defs "-DEXPECT=${T_EXPECT}")
    foreach(k EXIT REGEX NOT_REGEX REQUIRE STDOUT_BEGINS INPUT)
        if(DEFINED T_${k})
            list(APPEND defs "-D${k}=${T_${k}}")
        endif()
    endforeach()
    set(cmd "${T_CMD}")
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" ${defs} -P ${RUN})
    # cmake -P cannot exit with a chosen code before CMake 3.29 (Debian 12 has 3.25): the script
    # prints this line instead.
    set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "SKIP: test data not found"
                                            TIMEOUT 900)
    if(DEFINED T_FIXTURE)  # needs the files that test FIXTURE writes
        set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED ${T_FIXTURE})
    endif()
endfunction()

# The issue's done-when: llama2.c's greedy text for stories260K, right after the prompt.
llm8_cli_test(cli_golden_stories260K EXPECT ok
    CMD $<TARGET_FILE:llm8-cli> -p "Once upon a time" -n 64 --temp 0
    STDOUT_BEGINS "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."
    REGEX "prompt eval .* tokens per second.*generation .* tokens per second")
llm8_cli_test(cli_sampling_runs EXPECT ok
    CMD $<TARGET_FILE:llm8-cli> -p "Once" -n 20 -s 42 --temp 0.9 --top-k 20 --top-p 0.9 --min-p 0.05
        --repeat-penalty 1.1 -l 1-inf -t 1 -c 64)
# Chat mode: two user turns from stdin, the template named on the command line.
llm8_cli_test(cli_conversation EXPECT ok INPUT ${CMAKE_CURRENT_SOURCE_DIR}/cli/chat_input.txt
    CMD $<TARGET_FILE:llm8-cli> -cnv -sys "Be brief." --chat-template llama3 -n 8 --temp 0
    REGEX "> .*> .*chat template llama3.*generation")
llm8_cli_test(cli_bad_chat_template EXPECT error REGEX "chatml"
    CMD $<TARGET_FILE:llm8-cli> -cnv --chat-template nonsense)
llm8_cli_test(cli_bad_flag EXPECT error CMD $<TARGET_FILE:llm8-cli> --no-such-flag)
llm8_cli_test(cli_bad_value EXPECT error CMD $<TARGET_FILE:llm8-cli> -n abc)
llm8_cli_test(cli_bad_logit_bias EXPECT error REGEX "logit-bias"
    CMD $<TARGET_FILE:llm8-cli> -l nonsense)
llm8_cli_test(cli_bad_min_p EXPECT error REGEX "min-p" CMD $<TARGET_FILE:llm8-cli> --min-p 2)
llm8_cli_test(cli_missing_model EXPECT error REGEX "cannot open model file '/nonexistent.gguf'"
    CMD $<TARGET_FILE:llm8-cli> -m /nonexistent.gguf -p hi)
llm8_cli_test(cli_not_a_model EXPECT error REGEX "not a GGUF file"
    CMD $<TARGET_FILE:llm8-cli> -m ${PROJECT_SOURCE_DIR}/CMakeLists.txt -p hi)
llm8_cli_test(cli_prompt_too_long EXPECT error REGEX "does not fit the context"
    CMD $<TARGET_FILE:llm8-cli> -c 8 -p "Once upon a time there was a little girl named Lily")
llm8_cli_test(cli_missing_prompt_file EXPECT error REGEX "cannot open prompt file"
    CMD $<TARGET_FILE:llm8-cli> -f /nonexistent.txt)

# ---- issue 18: the tools as a llama.cpp user expects them -------------------------------------
# Broken models for the tests below, written at test time from the embedded stories260K.
add_executable(llm8-test-make-models ${CMAKE_CURRENT_SOURCE_DIR}/cli/make_test_models.cpp)
target_link_libraries(llm8-test-make-models PRIVATE llm8)
set(BAD ${CMAKE_CURRENT_BINARY_DIR}/cli-models)
add_test(NAME cli_make_test_models COMMAND $<TARGET_FILE:llm8-test-make-models> ${BAD})
set_tests_properties(cli_make_test_models PROPERTIES FIXTURES_SETUP cli_models)

# Bad numbers name the flag as typed and the range in plain numbers (not CLI11's
# "Value -5 not in range 0.000000 to 1.79769e+308").
llm8_cli_test(cli_ctx_negative EXPECT error EXIT 2 REGEX "error: -c -5: must be an integer from 0 to [0-9]+"
    CMD $<TARGET_FILE:llm8-cli> -c -5)
llm8_cli_test(cli_threads_negative EXPECT error EXIT 2 REGEX "error: -t -1: must be an integer from 0 to [0-9]+"
    CMD $<TARGET_FILE:llm8-cli> -t -1)
llm8_cli_test(cli_batch_zero EXPECT error EXIT 2 REGEX "error: -b 0: must be an integer from 1 to [0-9]+"
    CMD $<TARGET_FILE:llm8-cli> -b 0)
llm8_cli_test(cli_ngl_not_a_number EXPECT error EXIT 2 REGEX "error: -ngl abc: must be an integer"
    CMD $<TARGET_FILE:llm8-cli> -ngl abc)
llm8_cli_test(cli_temp_long_form EXPECT error EXIT 2 REGEX "error: --temp nan: must be a number from"
    CMD $<TARGET_FILE:llm8-cli> --temp=nan)
llm8_cli_test(perplexity_ctx_too_small EXPECT error EXIT 2 REGEX "error: -c 2: must be an integer from 4 to"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${PROJECT_SOURCE_DIR}/README.md -c 2)
llm8_cli_test(bench_threads_list_bad EXPECT error EXIT 1 REGEX "-t 1,x: expected a comma-separated list"
    CMD $<TARGET_FILE:llm8-bench> -t 1,x)
# llama.cpp's common flags: -fa (with or without a value), -ctk/-ctv f16, --color, --mlock, -e.
llm8_cli_test(cli_flash_attn_flag EXPECT ok NOT_REGEX "not expected"
    CMD $<TARGET_FILE:llm8-cli> -fa -p hi -n 2)
llm8_cli_test(cli_common_flags EXPECT ok
    CMD $<TARGET_FILE:llm8-cli> -fa on -ctk f16 -ctv f16 --color --mlock -e -p hi -n 2)
llm8_cli_test(perplexity_llama_batch_flags EXPECT ok REQUIRE ${DATA}/text/tinyshakespeare.txt
    REGEX "Final estimate"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${DATA}/text/tinyshakespeare.txt -c 128 --chunks 2
        -b 128 -ub 64 -fa off -ngl 0 -t 1)
llm8_cli_test(cli_flash_attn_bad EXPECT error EXIT 2 REGEX "-fa maybe: must be on, off or auto"
    CMD $<TARGET_FILE:llm8-cli> -fa maybe)
llm8_cli_test(cli_cache_type_q4 EXPECT error EXIT 2 REGEX "not supported by llm8 yet: -ctk q4_0 \\(f16, or int8 / q8_0\\)"
    CMD $<TARGET_FILE:llm8-cli> -ctk q4_0)
llm8_cli_test(perplexity_cache_type_v EXPECT error EXIT 2 REGEX "not supported by llm8 yet: -ctv q4_0 \\(f16, or int8 / q8_0\\)"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${PROJECT_SOURCE_DIR}/README.md -ctv q4_0)
llm8_cli_test(cli_cache_type_mixed EXPECT error EXIT 2 REGEX "K and V caches of different types"
    CMD $<TARGET_FILE:llm8-cli> -ctk int8 -ctv f16)
# The INT8 cache as llama.cpp users spell it, with the int8 attention over it.
llm8_cli_test(cli_cache_type_q8 EXPECT ok REGEX "generation"
    CMD $<TARGET_FILE:llm8-cli> -p "Once upon a time" -n 8 --temp 0 -ngl 0 -ctk q8_0 -ctv q8_0
        --attn int8)
# Flags llm8 lacks: refused by name, or ignored with a note.
llm8_cli_test(cli_unsupported_flag EXPECT error EXIT 2 REGEX "not supported by llm8: --lora"
    CMD $<TARGET_FILE:llm8-cli> --lora adapter.gguf -p hi)
llm8_cli_test(cli_ignored_flag EXPECT ok REGEX "ignoring --numa distribute"
    CMD $<TARGET_FILE:llm8-cli> --numa distribute --no-mmap -p hi -n 2)
llm8_cli_test(cli_unknown_flag_as_typed EXPECT error EXIT 2 REGEX "not expected: --frobnicate"
    CMD $<TARGET_FILE:llm8-cli> --frobnicate)
# Escapes: -p 'a\x41b' is "aAb" (llama-cli's default), --no-escape keeps it as typed.
llm8_cli_test(cli_prompt_escapes EXPECT ok STDOUT_BEGINS "Once\tupon"
    CMD $<TARGET_FILE:llm8-cli> -p "Once\\tupon" -n 1 --temp 0)
llm8_cli_test(cli_prompt_no_escape EXPECT ok STDOUT_BEGINS "Once\\tupon"
    CMD $<TARGET_FILE:llm8-cli> -p "Once\\tupon" -n 1 --temp 0 --no-escape)
# -f must be a readable file.
llm8_cli_test(cli_prompt_file_is_directory EXPECT error EXIT 1 REGEX "-f: '.*' is a directory, not a prompt file"
    CMD $<TARGET_FILE:llm8-cli> -f ${CMAKE_CURRENT_SOURCE_DIR})
llm8_cli_test(perplexity_file_is_directory EXPECT error EXIT 1 REGEX "is a directory, not a text file"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${CMAKE_CURRENT_SOURCE_DIR})
# More threads than cores: capped with a warning; a context past the training length: warned.
llm8_cli_test(cli_threads_capped EXPECT ok
    REGEX "warning: -t 10000 is more threads than this machine's [0-9]+ cores; using [0-9]+"
    CMD $<TARGET_FILE:llm8-cli> -t 10000 -p hi -n 2)
llm8_cli_test(cli_ctx_beyond_training EXPECT ok
    REGEX "warning: -c 1024 is more than the 512 tokens the model was trained on"
    CMD $<TARGET_FILE:llm8-cli> -c 1024 -p hi -n 2)
# Corrupt weights: the NaN logits name the likely cause; --check-tensors names the tensor.
llm8_cli_test(cli_nan_weights EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "every logit is NaN or -inf: the model's weights are likely corrupt.*run with --check-tensors"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/nan.gguf -p hi -n 4)
llm8_cli_test(cli_check_tensors EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "tensor 'blk.2.attn_q.weight' \\(layer 2\\) holds a NaN at row 0, column 0: the file is corrupt"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/nan.gguf --check-tensors -p hi -n 4)
llm8_cli_test(perplexity_check_tensors EXPECT error EXIT 1 FIXTURE cli_models REGEX "blk.2.attn_q.weight"
    CMD $<TARGET_FILE:llm8-perplexity> -m ${BAD}/nan.gguf --check-tensors -f ${PROJECT_SOURCE_DIR}/README.md)
llm8_cli_test(cli_check_tensors_sound_model EXPECT ok CMD $<TARGET_FILE:llm8-cli> --check-tensors -p hi -n 2)
# Hparams that would give garbage are refused at load, naming the key and the range.
llm8_cli_test(cli_rope_base_infinite EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "metadata 'llama.rope.freq_base' = inf is out of range \\[1, 1e\\+12\\]"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/rope_base_inf.gguf -p hi)
llm8_cli_test(cli_rope_scale_negative EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "metadata 'llama.rope.scale_linear' = -2 is out of range"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/rope_scale_neg.gguf -p hi)
llm8_cli_test(cli_rms_eps_bad EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "metadata 'llama.attention.layer_norm_rms_epsilon' = 0.5 is out of range"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/eps_bad.gguf -p hi)
llm8_cli_test(cli_heads_not_dividing EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "head_count 8 is not a multiple of head_count_kv 3"
    CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/heads_bad.gguf -p hi)
# Requantizing: refused without --allow-requantize, warned with it.
llm8_cli_test(convert_requantize_refused EXPECT error EXIT 1 FIXTURE cli_models
    REGEX "is already quantized .*'token_embd.weight' is q8_0.*pass --allow-requantize"
    CMD $<TARGET_FILE:llm8-convert> gguf ${BAD}/q8_0.gguf -o ${BAD}/q4_0.gguf --outtype q4_0)
llm8_cli_test(convert_requantize_allowed EXPECT ok FIXTURE cli_models
    REGEX "warning: .*already quantized: requantizing [0-9]+ tensors to q4_0"
    CMD $<TARGET_FILE:llm8-convert> gguf ${BAD}/q8_0.gguf -o ${BAD}/q4_0.gguf --outtype q4_0
        --allow-requantize)
# A full context: shifted (plain: --keep; chat: the oldest turns go), or stopped with a word.
llm8_cli_test(cli_context_shift EXPECT ok REGEX "context full \\(24 tokens\\): context shift, keeping the first 1"
    CMD $<TARGET_FILE:llm8-cli> -c 24 -n 40 -p "Once upon a time" --temp 0)
llm8_cli_test(cli_context_full_stops EXPECT ok REGEX "context full \\(24 tokens\\): generation stopped"
    CMD $<TARGET_FILE:llm8-cli> -c 24 -n 40 -p "Once upon a time" --temp 0 --no-context-shift)
llm8_cli_test(cli_chat_context_shift EXPECT ok INPUT ${CMAKE_CURRENT_SOURCE_DIR}/cli/chat_long_input.txt
    REGEX "> [^>]+> [^>]+> [^>]+> [^>]+> [^>]+> [^>]+> [^>]+> [^>]+> .*context full \\(128 tokens\\): context shift, dropping the oldest turns after the system prompt"
    NOT_REGEX "generation stopped|error"
    CMD $<TARGET_FILE:llm8-cli> -cnv -sys "Be brief." --chat-template chatml -c 128 -n 16 --temp 0)
# --version everywhere; --log-disable silences the informational lines.
foreach(tool llm8-cli llm8-bench llm8-batched-bench llm8-perplexity llm8-convert llm8-tokenize llm8-mkmodel)
    llm8_cli_test(${tool}_version EXPECT ok
        REGEX "^${tool} version: [0-9]+\\.[0-9]+\\.[0-9]+ \\(([0-9a-f]+|unknown)\\).built: [A-Za-z]+, CUDA "
        CMD $<TARGET_FILE:${tool}> --version)
endforeach()
llm8_cli_test(cli_log_disable EXPECT ok NOT_REGEX "load time|model stories"
    CMD $<TARGET_FILE:llm8-cli> --log-disable -p hi -n 2)
# llm8-bench: comma lists, every combination a row; CPU prompt rates in GFLOP/s.
llm8_cli_test(bench_lists EXPECT ok
    REGEX "\\| threads \\| n_batch \\| test .*\\| 1 \\| 8 \\| pp16 .*GFLOP/s.*\\| 1 \\| 8 \\| tg4 .*\\| 1 \\| 16 \\| pp16 .*\\| 2 \\| 8 \\| pp16 .*\\| 2 \\| 16 \\| tg4 .*GB/s"
    NOT_REGEX "TFLOP/s"
    CMD $<TARGET_FILE:llm8-bench> -ngl 0 -t 1,2 -p 16 -n 4 -b 8,16 -r 1)

# The INT8 cache: llama-bench's type_k / type_v columns (md) and fields (csv).
llm8_cli_test(bench_int8_cache_columns EXPECT ok
    REGEX "\\| type_k \\| type_v \\| test .*\\| int8 \\| int8 \\| tg4 "
    CMD $<TARGET_FILE:llm8-bench> -ngl 0 -t 1 -p 0 -n 4 -r 1 -ctk int8 -ctv q8_0)
llm8_cli_test(bench_csv_cache_type EXPECT ok REGEX "type_k,type_v,test.*,f32,f32,\"tg4\""
    CMD $<TARGET_FILE:llm8-bench> -ngl 0 -t 1 -p 0 -n 4 -r 1 -o csv)

# llm8-batched-bench: llama-batched-bench's table, one row per (PP, TG, B); the shared prompt
# (-pps) counts its tokens once in N_KV; the plan with -v; bad lists name the flag.
llm8_cli_test(batched_bench_table EXPECT ok
    REGEX "\\|    PP \\|     TG \\|    B \\|   N_KV \\|   T_PP s \\| S_PP t/s \\|   T_TG s \\| S_TG t/s \\|      T s \\|    S t/s \\|.*\\|     8 \\|      4 \\|    1 \\|     12 \\|.*\\|     8 \\|      4 \\|    3 \\|     36 \\|"
    CMD $<TARGET_FILE:llm8-batched-bench> -ngl 0 -npp 8 -ntg 4 -npl 1,3 -t 1)
llm8_cli_test(batched_bench_shared_prompt_and_plan EXPECT ok
    REGEX "layer plan \\(CPU\\).*\\|     8 \\|      4 \\|    3 \\|     20 \\|"
    CMD $<TARGET_FILE:llm8-batched-bench> -ngl 0 -npp 8 -ntg 4 -npl 3 -pps -v -t 1)
llm8_cli_test(batched_bench_bad_list EXPECT error REGEX "-npl: '1,0' is not a list of positive counts"
    CMD $<TARGET_FILE:llm8-batched-bench> -ngl 0 -npl 1,0)
llm8_cli_test(batched_bench_small_context EXPECT error REGEX "-c 16 is too small"
    CMD $<TARGET_FILE:llm8-batched-bench> -ngl 0 -npp 8 -ntg 4 -npl 2 -c 16)

llm8_cli_test(perplexity_stories260K EXPECT ok REQUIRE ${DATA}/text/tinyshakespeare.txt
    CMD $<TARGET_FILE:llm8-perplexity> -f ${DATA}/text/tinyshakespeare.txt -c 128 --chunks 8
    REGEX "\\[1\\][0-9]+\\.[0-9]+,\\[2\\].*Final estimate: PPL = [0-9]+\\.[0-9]+ \\+/- [0-9]+\\.[0-9]+")
llm8_cli_test(perplexity_missing_file EXPECT error REGEX "cannot open text file"
    CMD $<TARGET_FILE:llm8-perplexity> -f /nonexistent.txt)
llm8_cli_test(perplexity_text_too_short EXPECT error REGEX "need at least"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${PROJECT_SOURCE_DIR}/.clang-format -c 4096)

llm8_cli_test(convert_refuses_overwriting_input EXPECT error REGEX "overwrite"
    CMD $<TARGET_FILE:llm8-convert> gguf ${PROJECT_SOURCE_DIR}/models/stories260K.gguf
        -o ${PROJECT_SOURCE_DIR}/models/stories260K.gguf)
llm8_cli_test(convert_bad_outtype EXPECT error REGEX "unknown --outtype"
    CMD $<TARGET_FILE:llm8-convert> gguf ${PROJECT_SOURCE_DIR}/models/stories260K.gguf
        -o ${CMAKE_BINARY_DIR}/x.gguf --outtype q9_9)
# llama-quantize's mixes; rows that do not fill a block fall back, each named (stories260K:
# rows of 64 and 172).
llm8_cli_test(convert_mix_fallback EXPECT ok
    REGEX "warning: tensor 'blk.0.ffn_down.weight': rows of 172 elements do not fill q4_K blocks: f16 instead"
    CMD $<TARGET_FILE:llm8-convert> gguf ${PROJECT_SOURCE_DIR}/models/stories260K.gguf
        -o ${CMAKE_BINARY_DIR}/stories260K-q4km.gguf --outtype Q4_K_M)
llm8_cli_test(mkmodel_mix EXPECT ok REQUIRE ${DATA}/vocab/ggml-vocab-llama-spm.gguf
    REGEX "writing .*tiny, 1 layers, vocab 32000, Q2_K"
    CMD $<TARGET_FILE:llm8-mkmodel> --preset tiny --layers 1 --type Q2_K
        --vocab ${DATA}/vocab/ggml-vocab-llama-spm.gguf -o ${CMAKE_BINARY_DIR}/tiny-q2k.gguf)
# The MoE / MLA presets: made by llm8-mkmodel, run by llm8-cli on the CPU (random weights: the
# text is noise; tests/test_model.cpp checks the numbers).
foreach(arch qwen3moe mixtral deepseek2 deepseek2-q deepseek3)
    llm8_cli_test(mkmodel_tiny_${arch} EXPECT ok REQUIRE ${DATA}/vocab/ggml-vocab-llama-spm.gguf
        REGEX "writing .*tiny-${arch}, 2 layers"
        CMD $<TARGET_FILE:llm8-mkmodel> --preset tiny-${arch} --type q8_0
            --vocab ${DATA}/vocab/ggml-vocab-llama-spm.gguf -o ${CMAKE_BINARY_DIR}/tiny-${arch}.gguf)
    set_tests_properties(mkmodel_tiny_${arch} PROPERTIES FIXTURES_SETUP tiny_${arch})
    llm8_cli_test(cli_tiny_${arch} EXPECT ok FIXTURE tiny_${arch}
        REQUIRE ${DATA}/vocab/ggml-vocab-llama-spm.gguf
        REGEX "generation .* tokens per second"
        CMD $<TARGET_FILE:llm8-cli> -m ${CMAKE_BINARY_DIR}/tiny-${arch}.gguf -p "Once upon a time"
            -n 8 --temp 0 -ngl 0 -c 128 -t 2)
endforeach()
llm8_cli_test(convert_llama2c EXPECT ok REQUIRE ${DATA}/models/stories260K.bin
    CMD $<TARGET_FILE:llm8-convert> llama2c ${DATA}/models/stories260K.bin ${DATA}/models/tok512.bin
        -o ${CMAKE_BINARY_DIR}/stories260K-test.gguf --name stories260K)
llm8_cli_test(convert_v1_to_v3_q8_0 EXPECT ok REQUIRE ${DATA}/models/stories260K-v1-f32.gguf
    CMD $<TARGET_FILE:llm8-convert> gguf ${DATA}/models/stories260K-v1-f32.gguf
        -o ${CMAKE_BINARY_DIR}/stories260K-v3-q8.gguf --outtype q8_0 REGEX "GGUF v1 -> v3")

# Hostile input (docs/hardening.md): every class of malformed GGUF is a clear error and a clean
# non-zero exit, never a crash. The files are written by tests/data/bad_gguf/make_bad_gguf.py.
set(BAD ${PROJECT_SOURCE_DIR}/tests/data/bad_gguf)
foreach(case
        "truncated|truncated file"
        "wrong_magic|not a GGUF file: bad magic"
        "bad_version|GGUF version 99 is not supported"
        "huge_tensor_count|absurd tensor count"
        "huge_metadata_count|absurd metadata count"
        "huge_string_length|truncated file: metadata key at byte 32 needs [0-9]+ bytes"
        "huge_array_length|'tokenizer.ggml.tokens': array length [0-9]+ runs past the end"
        "bad_metadata_type|metadata 'x.y' has invalid type 99"
        "bad_tensor_type|tensor 'a.weight' has unknown type id 77"
        "huge_dimension|tensor 'a.weight' has an absurd dimension"
        "offset_past_end|tensor 'a.weight' data .* runs past the end of the file"
        "misaligned_offset|tensor 'a.weight' offset 4 is not aligned to 32"
        "overlapping_tensors|tensors 'a.weight' .* and 'b.weight' .* overlap")
    string(REPLACE "|" ";" parts "${case}")
    list(GET parts 0 file)
    list(GET parts 1 regex)
    llm8_cli_test(cli_bad_gguf_${file} EXPECT error REGEX "${regex}"
        CMD $<TARGET_FILE:llm8-cli> -m ${BAD}/${file}.gguf -p hi -n 1)
endforeach()
# Invalid UTF-8 in the prompt is not an error: like llama.cpp, SentencePiece keeps the raw
# bytes (byte fallback) and byte-level BPE reads U+FFFD; the run must simply succeed.
llm8_cli_test(cli_invalid_utf8_prompt EXPECT ok
    CMD $<TARGET_FILE:llm8-cli> -f ${PROJECT_SOURCE_DIR}/tests/data/bad_input/invalid_utf8.txt
        -n 4 --temp 0 --verbose-prompt)
# Templates are recognised by substrings, never executed: a deeply nested "template" cannot
# recurse; it is an unknown name, a clear error.
string(REPEAT "{% for m in messages %}{{ " 1000 deep_template)
llm8_cli_test(cli_deeply_nested_chat_template EXPECT error REGEX "unknown chat template"
    CMD $<TARGET_FILE:llm8-cli> -cnv --chat-template "${deep_template}")

# KL divergence: the base written by one run (fixture), compared by the next.
llm8_cli_test(perplexity_kl_base EXPECT ok REGEX "saved the reference log-probabilities of 2 chunks"
    CMD $<TARGET_FILE:llm8-perplexity> -f ${PROJECT_SOURCE_DIR}/README.md -c 64 --chunks 2
        --kl-divergence-base ${CMAKE_CURRENT_BINARY_DIR}/cli_base.kld)
set_tests_properties(perplexity_kl_base PROPERTIES FIXTURES_SETUP kl_base)
llm8_cli_test(perplexity_kl_compare EXPECT ok FIXTURE kl_base
    REGEX "Mean    KLD:   0.000000.*Same top p: 100.000 ± 0.000 %"
    CMD $<TARGET_FILE:llm8-perplexity> --kl-divergence-base ${CMAKE_CURRENT_BINARY_DIR}/cli_base.kld
        --kl-divergence -t 1)
llm8_cli_test(perplexity_kl_ctx_mismatch EXPECT error EXIT 1 FIXTURE kl_base
    REGEX "-c 128: the base .* was made with -c 64"
    CMD $<TARGET_FILE:llm8-perplexity> --kl-divergence-base ${CMAKE_CURRENT_BINARY_DIR}/cli_base.kld
        --kl-divergence -c 128)
llm8_cli_test(perplexity_kl_needs_base EXPECT error EXIT 1 REGEX "--kl-divergence needs --kl-divergence-base"
    CMD $<TARGET_FILE:llm8-perplexity> --kl-divergence)
llm8_cli_test(perplexity_kl_not_a_base EXPECT error EXIT 1 REGEX "not an llm8 KL divergence base"
    CMD $<TARGET_FILE:llm8-perplexity> --kl-divergence-base ${PROJECT_SOURCE_DIR}/README.md --kl-divergence)
llm8_cli_test(perplexity_needs_text EXPECT error EXIT 1 REGEX "-f FILE is required"
    CMD $<TARGET_FILE:llm8-perplexity> -c 64)

# The accuracy guard: --attn auto calibrates at load, --attn-report prints the table at exit.
llm8_cli_test(cli_attn_auto_report EXPECT ok
    REGEX "attention guard: --attn auto.*layer +mode.*int8"
    CMD $<TARGET_FILE:llm8-cli> -p "Once upon a time" -n 4 --temp 0 -ngl 0 --attn auto --attn-report
        --attn-monitor 2)
llm8_cli_test(cli_attn_bad_mode EXPECT error EXIT 2 REGEX "--attn"
    CMD $<TARGET_FILE:llm8-cli> -p "Once" -n 1 --attn fp8)
llm8_cli_test(cli_attn_bad_threshold EXPECT error EXIT 2 REGEX "--attn-cos-min"
    CMD $<TARGET_FILE:llm8-cli> -p "Once" -n 1 --attn auto --attn-cos-min 2)
