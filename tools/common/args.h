// The argument layer shared by every tool: llama.cpp's flag spellings on top of CLI11.
//
// llama.cpp uses single-dash multi-letter flags (-ngl, -fa, -ctk, -ub, -cnv); CLI11 reads
// "-ngl" as "-n -g -l", so such flags are rewritten to their long names before parsing, and
// every message names the flag as the user typed it. Numbers are parsed here, not by CLI11, so
// that a bad value says "-c -5: must be an integer from 0 to 1048576". llama.cpp flags that
// llm8 does not have are either ignored with a note (--no-mmap, --numa, ...) or refused with
// "not supported by llm8: FLAG" (tables in args.cpp; docs/llama-cpp-users.md lists them).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "llm8/engine.h"

namespace llm8_tools {

// Flags every tool reads through Args (--log-disable, --color, ...).
struct CommonFlags {
    bool log_disable = false;         // --log-disable: no informational lines, no progress
    bool color = false;               // --color: colour the prompt and the user's input (terminals)
    bool mlock = false;               // --mlock: keep the model's pages in RAM
    bool check_tensors = false;       // --check-tensors: validate the weights at load
    bool escape = true;               // -e/--escape (default) and --no-escape: \n \t ... in prompts
    std::string flash_attn = "auto";  // -fa on|off|auto (llm8's attention is always fused)
    std::string cache_type_k = "f16", cache_type_v = "f16";  // -ctk/-ctv: f16 or int8 (q8_0)
    std::string attn;  // --attn f16|sage|int8|auto (empty: auto on the GPU, f16 on the CPU)
    std::string attn_calib;    // --attn-calib FILE: calibration text for --attn auto
    float attn_cos_min = 0.999f, attn_l1_max = 0.03f;  // the guard's thresholds
    int attn_monitor = 64;     // --attn-monitor N: every Nth 8-bit call checked (0: off)
    bool attn_report = false;  // --attn-report: print the guard's choices and statistics
};

class Args {
public:
    Args(std::string tool, const std::string& description);

    CLI::App& app() { return app_; }
    const std::string& tool() const { return tool_; }
    CommonFlags common;

    // Numbers with an allowed range; a bad value is reported with the flag as typed.
    CLI::Option* add_int(const std::string& names, int& v, int64_t lo, int64_t hi,
                         const std::string& help);
    CLI::Option* add_int64(const std::string& names, int64_t& v, int64_t lo, int64_t hi,
                           const std::string& help);
    CLI::Option* add_float(const std::string& names, float& v, double lo, double hi,
                           const std::string& help);
    // The flags that tools loading a model share: -fa, -ctk, -ctv, --mlock, --check-tensors.
    void add_model_flags();
    // ModelParams with --check-tensors and a load progress line (after a second, terminals
    // only, not with --log-disable).
    llm8::ModelParams model_params(const std::string& path, int n_gpu_layers) const;
    // Prompt handling: -e/--escape, --no-escape, --color.
    void add_prompt_flags();

    // Parses argv. Returns -1 to go on, or the exit code (0 after --help/--version, 2 after a
    // bad argument, with the message printed).
    int parse(int argc, char** argv);

    // Prints "TOOL: warning: MSG" on stderr (always: warnings are not informational logs).
    void warn(const std::string& msg) const;
    // Prints "TOOL: MSG" on stderr unless --log-disable.
    void info(const std::string& msg) const;
    // Whether progress lines should be drawn: stderr is a terminal and logs are on.
    bool progress_enabled() const;

    // -t N: 0 means all cores; more than the machine has is capped with a warning.
    int threads(int requested) const;
    // --mlock: locks the process's pages (the mapped model among them) in RAM; a failure is
    // a warning, as in llama.cpp.
    void lock_memory() const;
    // Reports an exception from the tool's work: "TOOL: error: ...", with a hint where the
    // cause is known (NaN logits: corrupt weights). Returns the exit code (1).
    int report(const std::exception& e) const;

private:
    std::string typed_flag(const std::string& names) const;

    std::string tool_;
    CLI::App app_;
    bool version_ = false;
    std::vector<std::string> typed_;       // argv as the user typed it
    std::vector<std::string> normalized_;  // after the llama.cpp spellings were rewritten
};

// llama.cpp's prompt escapes: \n \r \t \' \" \\ and \xNN (others are kept as typed).
std::string process_escapes(const std::string& in);

// Reads a whole text file; refuses directories and unreadable files with an error naming
// the flag, what the file is for ("prompt file") and the path.
std::string read_text_file(const std::string& flag, const std::string& path,
                           const std::string& what);

// "version: 0.1.0 (abc1234)\nbuilt: Release, CUDA sm_90a": what --version prints.
std::string version_text();

// A one-line progress indicator on stderr ("\r" redraws), drawn only when enabled and after
// `delay_s` seconds, so that quick work stays quiet.
class Progress {
public:
    Progress(bool enabled, std::string label, double delay_s = 1.0);
    ~Progress();
    // done/total in units of `unit` ("B" prints GB and GB/s; anything else counts items with
    // an ETA).
    void update(double done, double total, const char* unit);
    void finish();

private:
    bool enabled_, drawn_ = false;
    std::string label_;
    double delay_s_;
    double t0_, last_draw_ = 0;  // seconds
};

}  // namespace llm8_tools
