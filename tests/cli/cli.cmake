# Command-line tests of the tools (included from tests/CMakeLists.txt).
set(RUN ${CMAKE_CURRENT_SOURCE_DIR}/cli/run_expect.cmake)
set(DATA ${LLM8_SHARED_DATA})
function(llm8_cli_test name)
    cmake_parse_arguments(T "" "EXPECT;REGEX;NOT_REGEX;REQUIRE;STDOUT_BEGINS;INPUT" "CMD" ${ARGN})
    set(defs "-DEXPECT=${T_EXPECT}")
    foreach(k REGEX NOT_REGEX REQUIRE STDOUT_BEGINS INPUT)
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
