// llm8-convert: model files to GGUF v3.
//   llm8-convert llama2c CHECKPOINT.bin TOKENIZER.bin -o OUT.gguf [--name NAME]
//   llm8-convert gguf IN.gguf -o OUT.gguf [--outtype q8_0|f16|Q4_K_M|...]   (v1/v2/v3 -> v3)
//     [--allow-requantize]   (llama-quantize's flag: convert an already-quantized file)
//     [--pure]               (llama-quantize's flag: a mix's base type for every matrix)
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf.h"
#include "model/convert.h"

static bool same_file(const std::string& a, const std::string& b) {
    char ra[4096], rb[4096];
    return realpath(a.c_str(), ra) && realpath(b.c_str(), rb) && std::string(ra) == rb;
}

int main(int argc, char** argv) {
    llm8_tools::Args args(
        "llm8-convert",
        "llm8-convert: convert llama2.c checkpoints and older GGUF files to GGUF v3");
    CLI::App& app = args.app();
    app.require_subcommand(1);
    std::string out, ckpt, tok, name = "llama2c", in, outtype;
    bool allow_requantize = false, pure = false;
    auto* l2c = app.add_subcommand("llama2c", "llama2.c checkpoint + tokenizer.bin -> GGUF v3");
    l2c->add_option("checkpoint", ckpt, "llama2.c model (.bin)")->required();
    l2c->add_option("tokenizer", tok, "llama2.c tokenizer (.bin)")->required();
    l2c->add_option("-o,--outfile", out, "output GGUF")->required();
    l2c->add_option("--name", name, "general.name to record");
    auto* gg = app.add_subcommand("gguf", "GGUF v1/v2/v3 -> GGUF v3, optionally re-quantized");
    gg->add_option("input", in, "input GGUF")->required();
    gg->add_option("-o,--outfile", out, "output GGUF")->required();
    gg->add_option("--outtype", outtype,
                   std::string("convert weight matrices to ") + llm8::quant_target_names());
    gg->add_flag("--allow-requantize", allow_requantize,
                 "convert a file that is already quantized (each rounding loses accuracy)");
    gg->add_flag("--pure", pure,
                 "no mix: every matrix gets the --outtype's base type (llama-quantize's --pure)");
    if (const int rc = args.parse(argc, argv); rc >= 0) return rc;
    try {
        if (*l2c) {
            if (same_file(ckpt, out) || same_file(tok, out))
                llm8::fail(llm8::ErrorKind::invalid_arg, "the output would overwrite an input");
            llm8::convert_llama2c(ckpt, tok, name).write(out);
        } else {
            if (same_file(in, out))
                llm8::fail(llm8::ErrorKind::invalid_arg, "the output would overwrite the input");
            llm8::QuantTarget t;
            if (!outtype.empty() && !llm8::parse_quant_target(outtype, pure, &t))
                llm8::fail(llm8::ErrorKind::invalid_arg, "unknown --outtype '" + outtype + "' (" +
                                                             llm8::quant_target_names() + ")");
            auto f = llm8::GgufFile::open(in);
            llm8::ConvertOptions opt;
            opt.allow_requantize = allow_requantize;
            if (!outtype.empty()) {
                const auto requant = llm8::requantized_tensors(*f, t);
                if (!requant.empty() && allow_requantize)
                    args.warn(in + " is already quantized: requantizing " +
                              std::to_string(requant.size()) + " tensors to " + outtype +
                              " loses accuracy (--allow-requantize)");
                // As llama-quantize does: name every tensor whose rows do not fit its type.
                for (const auto& p : llm8::plan_conversion(*f, t))
                    if (p.fell_back)
                        args.warn("tensor '" + p.name + "': rows of " +
                                  std::to_string(f->find_tensor(p.name)->ne[0]) +
                                  " elements do not fill " + llm8::type_name(p.wanted) +
                                  " blocks: " + llm8::type_name(p.to) + " instead");
            }
            llm8_tools::Progress bar(args.progress_enabled(), "llm8-convert");
            opt.progress = [&](size_t done, size_t total) {
                bar.update(double(done), double(total), "tensors");
            };
            llm8::GgufWriter w = llm8::convert_gguf(
                *f, outtype.empty() ? static_cast<const llm8::QuantTarget*>(nullptr) : &t, opt);
            bar.finish();
            w.write(out);
            char line[200];
            std::snprintf(line, sizeof line, "GGUF v%u -> v3, %zu tensors, %zu metadata keys",
                          f->version(), f->tensors().size(), f->metadata().size());
            args.info(line);
        }
        args.info("wrote " + out);
        return 0;
    } catch (const std::exception& e) {
        return args.report(e);
    }
}
