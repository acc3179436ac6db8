// The argument layer shared by the tools (see args.h).
#include "common/args.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "llm8/version.h"

namespace llm8_tools {

namespace {

// llama.cpp's single-dash multi-letter spellings, rewritten before CLI11 sees them.
const char* const kAliases[][2] = {
    {"-ngl", "--n-gpu-layers"},  {"-fa", "--flash-attn"},  {"-ctk", "--cache-type-k"},
    {"-ctv", "--cache-type-v"},  {"-ub", "--ubatch-size"}, {"-cnv", "--conversation"},
    {"-sys", "--system-prompt"}, {"-npp", "--npp"},        {"-ntg", "--ntg"},
    {"-npl", "--npl"},           {"-pps", "--pps"},        {"-np", "--parallel"},
    {"-cb", "--cont-batching"},
};

// llama.cpp flags that change nothing llm8 does: accepted with a note. `values` is how many
// arguments follow the flag.
struct Ignored {
    const char* flag;
    int values;
    const char* why;
};
const Ignored kIgnored[] = {
    {"--no-mmap", 0, "llm8 always maps the model file"},
    {"--mmap", 0, "llm8 always maps the model file"},
    {"--numa", 1, "llm8 does not place memory by NUMA node"},
    {"--no-warmup", 0, "llm8 does no warm-up run"},
    {"--warmup", 0, "llm8 does no warm-up run"},
    {"-tb", 1, "llm8 uses -t for the prompt too"},
    {"--threads-batch", 1, "llm8 uses -t for the prompt too"},
    {"-C", 1, "thread placement is left to OpenMP"},
    {"--cpu-mask", 1, "thread placement is left to OpenMP"},
    {"-Cr", 1, "thread placement is left to OpenMP"},
    {"--cpu-range", 1, "thread placement is left to OpenMP"},
    {"--cpu-strict", 1, "thread placement is left to OpenMP"},
    {"--prio", 1, "llm8 does not change its priority"},
    {"--poll", 1, "llm8's threads are OpenMP's"},
    {"--no-perf", 0, "llm8 always prints its timings"},
    {"--perf", 0, "llm8 always prints its timings"},
    {"-dev", 1, "llm8 uses the first GPU"},
    {"--device", 1, "llm8 uses the first GPU"},
    {"--simple-io", 0, "llm8's input is always plain"},
    {"--cont-batching", 0, "only llm8-server batches sequences"},
    {"--no-display-prompt", 0, "not implemented; the prompt is printed"},
};

// llama.cpp flags whose feature llm8 lacks: refused, so that nobody believes they took effect.
const char* const kRefused[] = {
    "--lora",
    "--lora-scaled",
    "--control-vector",
    "--control-vector-scaled",
    "--control-vector-layer-range",
    "--grammar",
    "--grammar-file",
    "-j",
    "--json-schema",
    "--mmproj",
    "--image",
    "-md",
    "--model-draft",
    "--draft",
    "--draft-max",
    "--draft-min",
    "-ts",
    "--tensor-split",
    "-sm",
    "--split-mode",
    "-mg",
    "--main-gpu",
    "--rope-scaling",
    "--rope-scale",
    "--rope-freq-base",
    "--rope-freq-scale",
    "--yarn-orig-ctx",
    "--yarn-ext-factor",
    "--yarn-attn-factor",
    "--yarn-beta-slow",
    "--yarn-beta-fast",
    "-hf",
    "-hfr",
    "--hf-repo",
    "-hff",
    "--hf-file",
    "-mu",
    "--model-url",
    "--override-kv",
    "-ot",
    "--override-tensor",
    "--mirostat",
    "--mirostat-lr",
    "--mirostat-ent",
    "--typical",
    "--dynatemp-range",
    "--dynatemp-exp",
    "--xtc-probability",
    "--xtc-threshold",
    "--dry-multiplier",
    "--dry-base",
    "--dry-allowed-length",
    "--dry-penalty-last-n",
    "--dry-sequence-breaker",
    "--samplers",
    "--sampling-seq",
    "-np",
    "--parallel",
    "--embedding",
    "--embeddings",
    "--reranking",
    "--jinja",
    "-r",
    "--reverse-prompt",
    "--in-prefix",
    "--in-suffix",
    "--in-prefix-bos",
    "-if",
    "--interactive-first",
    "-nkvo",
    "--no-kv-offload",
    "-dt",
    "--defrag-thold",
    "-gan",
    "--grp-attn-n",
    "-gaw",
    "--grp-attn-w",
    "--prompt-cache",
    "--prompt-cache-all",
    "-ptc",
    "--kl-divergence",
    "--kl-divergence-base",
    "--hellaswag",
    "--winogrande",
    "--multiple-choice",
    "--ppl-stride",
    "--ppl-output-type",
    "--spm-infill",
    "--pooling",
    "-sp",
    "--special",
    "--no-escape-special",
};

std::string plain(double x) {
    char buf[64];
    if (std::fabs(x) < 1e15 && x == std::floor(x))
        std::snprintf(buf, sizeof buf, "%.0f", x);
    else
        std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

// A value that failed its check; Args::parse turns it into a message naming the flag.
struct BadValue {
    std::string names, value, expected;
};

std::vector<std::string> split_names(const std::string& names) {
    std::vector<std::string> out;
    std::stringstream ss(names);
    std::string n;
    while (std::getline(ss, n, ',')) out.push_back(n);
    return out;
}

int64_t to_int(const std::string& names, const std::string& s, int64_t lo, int64_t hi) {
    const std::string expected =
        "must be an integer from " + plain(double(lo)) + " to " + plain(double(hi));
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        throw BadValue{names, s, expected};
    return v;
}

double to_float(const std::string& names, const std::string& s, double lo, double hi) {
    const std::string expected = "must be a number from " + plain(lo) + " to " + plain(hi);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || std::isnan(v) || v < lo || v > hi)
        throw BadValue{names, s, expected};
    return v;
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

Args::Args(std::string tool, const std::string& description)
    : tool_(std::move(tool)), app_(description, tool_) {
    app_.add_flag("--version", version_, "print the version and build, then exit");
    app_.add_flag("--log-disable", common.log_disable,
                  "no informational output on stderr (warnings and errors remain)");
}

CLI::Option* Args::add_int(const std::string& names, int& v, int64_t lo, int64_t hi,
                           const std::string& help) {
    return app_
        .add_option_function<std::string>(
            names, [&v, names, lo, hi](const std::string& s) { v = int(to_int(names, s, lo, hi)); },
            help + " [" + std::to_string(v) + "]")
        ->type_name("INT");
}

CLI::Option* Args::add_int64(const std::string& names, int64_t& v, int64_t lo, int64_t hi,
                             const std::string& help) {
    return app_
        .add_option_function<std::string>(
            names, [&v, names, lo, hi](const std::string& s) { v = to_int(names, s, lo, hi); },
            help + " [" + std::to_string(v) + "]")
        ->type_name("INT");
}

CLI::Option* Args::add_float(const std::string& names, float& v, double lo, double hi,
                             const std::string& help) {
    return app_
        .add_option_function<std::string>(
            names,
            [&v, names, lo, hi](const std::string& s) { v = float(to_float(names, s, lo, hi)); },
            help + " [" + plain(v) + "]")
        ->type_name("FLOAT");
}

void Args::add_model_flags() {
    app_.add_option("--flash-attn", common.flash_attn,
                    "-fa on|off|auto: accepted; llm8's attention is always the fused kernel")
        ->expected(0, 1);
    app_.add_option("--cache-type-k", common.cache_type_k,
                    "-ctk: K cache type: f16 (default) or int8 (q8_0: the same)");
    app_.add_option("--cache-type-v", common.cache_type_v,
                    "-ctv: V cache type: f16 (default) or int8 (q8_0), as -ctk");
    app_.add_option("--attn", common.attn,
                    "attention: f16, sage (SageAttention: smoothed K, INT8 Q.K^T, FP16 P.V), "
                    "int8 (INT-FlashAttention: both products INT8) or auto (per layer, the "
                    "fastest 8-bit mode that passes the guard's calibration, else f16; the "
                    "default on the GPU, f16 on the CPU); on the GPU the 8-bit modes run "
                    "prefill (head dim 64 or 128), decode reads the cache as stored")
        ->check(CLI::IsMember({"f16", "sage", "int8", "auto"}));
    app_.add_option("--attn-calib", common.attn_calib,
                    "--attn auto: calibration text file (default: a built-in paragraph)");
    add_float("--attn-cos-min", common.attn_cos_min, 1e-6, 1.0,
              "guard threshold: cosine similarity against FP16 at least this (default 0.999)");
    add_float("--attn-l1-max", common.attn_l1_max, 0.0, 1e6,
              "guard threshold: relative L1 error against FP16 at most this (default 0.03)");
    add_int("--attn-monitor", common.attn_monitor, 0, 1 << 30,
            "check every Nth 8-bit attention call of a layer against FP16; a failure switches "
            "the layer to FP16 (0: off; default 64)");
    app_.add_flag("--attn-report", common.attn_report,
                  "print each layer's attention mode, the calibration errors and the monitor's "
                  "statistics at exit");
    app_.add_flag("--mlock", common.mlock, "keep the model in RAM (mlockall)");
    app_.add_flag("--check-tensors", common.check_tensors,
                  "check every weight for NaN/inf at load (one pass over the file)");
}

llm8::ModelParams Args::model_params(const std::string& path, int n_gpu_layers) const {
    llm8::ModelParams mp;
    mp.path = path;
    mp.n_gpu_layers = n_gpu_layers;
    mp.check_tensors = common.check_tensors;
    mp.attn = common.attn;
    mp.cache_type_k = common.cache_type_k;
    mp.cache_type_v = common.cache_type_v;
    mp.attn_cos_min = common.attn_cos_min;
    mp.attn_l1_max = common.attn_l1_max;
    mp.attn_monitor = common.attn_monitor;
    if (!common.attn_calib.empty())
        mp.attn_calib_text = read_text_file("--attn-calib", common.attn_calib, "calibration text");
    auto bar = std::make_shared<Progress>(progress_enabled(), tool_ + ": loading model");
    mp.progress = [bar](uint64_t done, uint64_t total) {
        bar->update(double(done), double(total), "B");
        if (done == total) bar->finish();
    };
    return mp;
}

void Args::add_prompt_flags() {
    app_.add_flag("-e,--escape", "process escapes (\\n, \\t, \\xNN, ...) in prompts (default)");
    app_.add_flag_callback(
        "--no-escape", [this] { common.escape = false; }, "keep backslashes in prompts as typed");
    app_.add_flag("--color", common.color, "colour the prompt and your input (terminals only)");
}

std::string Args::typed_flag(const std::string& names) const {
    const std::vector<std::string> ns = split_names(names);
    for (size_t i = normalized_.size(); i-- > 0;) {
        std::string n = normalized_[i];
        std::string t = typed_[i];
        const size_t eq = n.find('=');
        if (n.rfind("--", 0) == 0 && eq != std::string::npos) {
            n = n.substr(0, eq);
            t = t.substr(0, t.find('='));
        }
        if (std::find(ns.begin(), ns.end(), n) != ns.end()) return t;
        // "-c8": a short flag with its value attached
        if (n.size() > 2 && n[0] == '-' && n[1] != '-') {
            const std::string s = n.substr(0, 2);
            if (std::find(ns.begin(), ns.end(), s) != ns.end()) return s;
        }
    }
    for (const std::string& n : ns)
        if (n.rfind("--", 0) == 0) return n;
    return ns.empty() ? names : ns.front();
}

int Args::parse(int argc, char** argv) {
    typed_.clear();
    normalized_.clear();
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--version") == 0) {
            std::printf("%s %s", tool_.c_str(), version_text().c_str());
            return 0;
        }
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            std::string n = a;
            for (const auto& m : kAliases)
                if (a == m[0]) n = m[1];
            const std::string flag = n.substr(0, n.find('='));
            const bool is_flag = n.size() > 1 && n[0] == '-' &&
                                 !std::isdigit(static_cast<unsigned char>(n[1])) && n[1] != '.';
            const CLI::Option* opt = is_flag ? app_.get_option_no_throw(flag) : nullptr;
            if (is_flag && !opt && flag != "--help" && flag != "-h") {
                bool handled = false;
                for (const Ignored& ig : kIgnored)
                    if (flag == ig.flag) {
                        warn("ignoring " + a +
                             (ig.values && n.find('=') == std::string::npos && i + 1 < argc
                                  ? " " + std::string(argv[i + 1])
                                  : "") +
                             " (" + ig.why + ")");
                        if (n.find('=') == std::string::npos) i += ig.values;
                        handled = true;
                    }
                if (handled) continue;
                for (const char* r : kRefused)
                    if (flag == r) throw BadValue{"", "", "not supported by llm8: " + flag};
            }
            typed_.push_back(a);
            normalized_.push_back(n);
            // The value of an option is never a flag, even when it starts with '-'.
            if (opt && opt->get_items_expected_min() > 0 && n.find('=') == std::string::npos &&
                i + 1 < argc && (n.size() == 2 || n[1] == '-')) {
                typed_.push_back(argv[++i]);
                normalized_.push_back(argv[i]);
            }
        }
        std::vector<std::string> rev(normalized_.rbegin(), normalized_.rend());
        app_.parse(rev);
        if (common.flash_attn.empty() || common.flash_attn == "1") common.flash_attn = "on";
        if (common.flash_attn == "0") common.flash_attn = "off";
        if (common.flash_attn != "on" && common.flash_attn != "off" && common.flash_attn != "auto")
            throw BadValue{"-fa,--flash-attn", common.flash_attn, "must be on, off or auto"};
        for (const auto& kv : {std::make_pair("-ctk,--cache-type-k", &common.cache_type_k),
                               std::make_pair("-ctv,--cache-type-v", &common.cache_type_v)})
            if (*kv.second != "f16" && *kv.second != "int8" && *kv.second != "q8_0")
                throw BadValue{"", "",
                               "not supported by llm8 yet: " + typed_flag(kv.first) + " " +
                                   *kv.second + " (f16, or int8 / q8_0)"};
        auto kind = [](const std::string& t) { return t == "f16" ? 0 : 1; };
        if (kind(common.cache_type_k) != kind(common.cache_type_v))
            throw BadValue{"", "",
                           "-ctk " + common.cache_type_k + " -ctv " + common.cache_type_v +
                               ": K and V caches of different types are not supported (use -ctk "
                               "int8 -ctv int8)"};
        return -1;
    } catch (const BadValue& b) {
        std::string msg = b.expected;
        if (!b.names.empty()) msg = typed_flag(b.names) + " " + b.value + ": " + b.expected;
        std::fprintf(stderr, "%s: error: %s\n", tool_.c_str(), msg.c_str());
        return 2;
    } catch (const CLI::CallForHelp& e) {
        return app_.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app_.exit(e);
    } catch (const CLI::ParseError& e) {
        // CLI11 names the flags by their long names: put back what the user typed.
        std::string msg = e.what();
        for (size_t i = 0; i < typed_.size(); ++i)
            if (typed_[i] != normalized_[i] && typed_[i][0] == '-') {
                const std::string& from = normalized_[i];
                for (size_t p = msg.find(from); p != std::string::npos;
                     p = msg.find(from, p + typed_[i].size())) {
                    const size_t end = p + from.size();
                    if (end < msg.size() &&
                        (std::isalnum(static_cast<unsigned char>(msg[end])) || msg[end] == '-'))
                        continue;
                    msg.replace(p, from.size(), typed_[i]);
                }
            }
        std::fprintf(stderr, "%s: error: %s\nRun with --help for the flags.\n", tool_.c_str(),
                     msg.c_str());
        return 2;
    }
}

void Args::warn(const std::string& msg) const {
    std::fprintf(stderr, "%s: warning: %s\n", tool_.c_str(), msg.c_str());
}

void Args::info(const std::string& msg) const {
    if (!common.log_disable) std::fprintf(stderr, "%s: %s\n", tool_.c_str(), msg.c_str());
}

bool Args::progress_enabled() const {
    return !common.log_disable && isatty(STDERR_FILENO);
}

int Args::threads(int requested) const {
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    if (requested > cores) {
        warn(typed_flag("-t,--threads") + " " + std::to_string(requested) +
             " is more threads than this machine's " + std::to_string(cores) + " cores; using " +
             std::to_string(cores));
        return cores;
    }
    return requested;
}

void Args::lock_memory() const {
    if (common.mlock && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        warn(std::string("--mlock: cannot lock the model in RAM (") + std::strerror(errno) +
             "; raise 'ulimit -l')");
}

int Args::report(const std::exception& e) const {
    std::fflush(stdout);
    std::string msg = e.what();
    // Both samplers (CPU and GPU) say "every logit is NaN or -inf": the forward produced no
    // number at all, which a sound model never does.
    if (msg.find("logit is NaN") != std::string::npos)
        msg +=
            ": the model's weights are likely corrupt, or a tensor type is not handled "
            "correctly; run with --check-tensors to find the bad tensor";
    std::fprintf(stderr, "%s: error: %s\n", tool_.c_str(), msg.c_str());
    return 1;
}

std::string process_escapes(const std::string& in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '\\' || i + 1 >= in.size()) {
            out += in[i];
            continue;
        }
        const char c = in[++i];
        switch (c) {
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case '\'':
                out += '\'';
                break;
            case '"':
                out += '"';
                break;
            case '\\':
                out += '\\';
                break;
            case 'x':
                if (i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
                    std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
                    out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                    break;
                }
                out += "\\x";
                break;
            default:
                out += '\\';
                out += c;
                break;
        }
    }
    return out;
}

std::string read_text_file(const std::string& flag, const std::string& path,
                           const std::string& what) {
    const std::string where = flag + ": ";
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        llm8::fail(llm8::ErrorKind::io, where + "cannot open " + what + " '" + path + "' (" +
                                            std::strerror(errno) + ")");
    if (S_ISDIR(st.st_mode))
        llm8::fail(llm8::ErrorKind::io, where + "'" + path + "' is a directory, not a " + what);
    std::ifstream f(path, std::ios::binary);
    if (!f) llm8::fail(llm8::ErrorKind::io, where + "cannot open " + what + " '" + path + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    if (f.bad()) llm8::fail(llm8::ErrorKind::io, where + "cannot read " + what + " '" + path + "'");
    return ss.str();
}

std::string version_text() {
    return std::string("version: ") + LLM8_VERSION + " (" + LLM8_COMMIT +
           ")\nbuilt: " + LLM8_BUILD_TYPE + ", CUDA " + LLM8_CUDA_ARCHS + "\n";
}

Progress::Progress(bool enabled, std::string label, double delay_s)
    : enabled_(enabled), label_(std::move(label)), delay_s_(delay_s), t0_(now_s()) {}

Progress::~Progress() {
    finish();
}

void Progress::update(double done, double total, const char* unit) {
    if (!enabled_) return;
    const double t = now_s() - t0_;
    if (t < delay_s_ || (drawn_ && done < total && t - last_draw_ < 0.1)) return;
    last_draw_ = t;
    char buf[160];
    if (std::strcmp(unit, "B") == 0) {
        std::snprintf(buf, sizeof buf, "%.2f / %.2f GB, %.2f GB/s", done / 1e9, total / 1e9,
                      done / 1e9 / std::max(t, 1e-9));
    } else {
        const double eta = done > 0 ? t / done * (total - done) : 0;
        std::snprintf(buf, sizeof buf, "%.0f / %.0f %s, ETA %d:%02d", done, total, unit,
                      int(eta) / 60, int(eta) % 60);
    }
    std::fprintf(stderr, "\r%s: %s   ", label_.c_str(), buf);
    std::fflush(stderr);
    drawn_ = true;
}

void Progress::finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
}

}  // namespace llm8_tools
