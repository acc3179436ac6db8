// Writes the seed corpora committed under fuzz/corpus/<target>/ (run once; the files are in
// git). Usage: fuzz_make_seeds OUT_DIR [VOCAB_INP]
//   VOCAB_INP: llama.cpp's tokenizer test strings (../shared/data/vocab/*.gguf.inp, MIT),
//   split into one text seed per case; without it only the hand-written texts are written.
// Every seed is small (< 16 KB) so that libFuzzer mutates quickly.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../tests/model_builder.h"
#include "fuzz_targets.h"

namespace fs = std::filesystem;
using llm8::GgufType;
using llm8::GgufValue;

namespace {

fs::path g_out;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
    const fs::path dir = g_out / target;
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary).write(bytes.data(), long(bytes.size()));
}

void put(const std::string& target, const std::string& name, const std::vector<uint8_t>& b) {
    put(target, name, std::string(b.begin(), b.end()));
}

void gguf_seeds() {
    auto tiny = [](const std::string& arch, llm8::GgmlType t, int n_embd, int n_ff) {
        llm8_test::TinySpec s;
        s.arch = arch;
        s.n_embd = n_embd;
        s.n_layer = 1;
        s.n_head = 2;
        s.n_head_kv = 1;
        s.n_ff = n_ff;
        s.wtype = t;
        s.biases = arch == "qwen2";
        s.qk_norm = arch == "qwen3";
        return llm8_test::build_tiny_model(s).to_bytes();
    };
    put("gguf", "tiny-llama-f32.gguf", tiny("llama", llm8::GgmlType::F32, 8, 16));
    put("gguf", "tiny-qwen2-f16.gguf", tiny("qwen2", llm8::GgmlType::F16, 8, 16));
    put("gguf", "tiny-qwen3-f32.gguf", tiny("qwen3", llm8::GgmlType::F32, 8, 16));
    put("gguf", "tiny-llama-q4_0.gguf", tiny("llama", llm8::GgmlType::Q4_0, 32, 32));
    put("gguf", "vocab-bpe-llama-bpe.gguf", llm8_fuzz::bpe_vocab_gguf("llama-bpe"));
    {  // the MoE and latent-attention loaders: experts, shared experts, groups, MLA dims, YaRN
        llm8_test::TinySpec s;
        s.arch = "qwen3moe";
        s.n_embd = 8;
        s.n_layer = 1;
        s.n_head = 2;
        s.n_head_kv = 1;
        s.qk_norm = true;
        s.n_expert = 4;
        s.n_expert_used = 2;
        s.n_ff_exp = 8;
        put("gguf", "tiny-qwen3moe-f32.gguf", llm8_test::build_tiny_model(s).to_bytes());
        s = llm8_test::TinySpec();
        s.arch = "deepseek2";
        s.n_embd = 8;
        s.n_layer = 2;
        s.n_head = 2;
        s.n_head_kv = 2;
        s.n_ff = 8;
        s.q_lora_rank = 4;
        s.kv_lora_rank = 4;
        s.qk_rope = 2;
        s.qk_nope = 2;
        s.v_head = 2;
        s.kv_b_split = true;
        s.n_expert = 4;
        s.n_expert_used = 2;
        s.n_ff_exp = 4;
        s.n_expert_shared = 1;
        s.n_dense_lead = 1;
        s.gating = 2;
        s.probs_bias = true;
        s.n_groups = 2;
        s.n_groups_used = 1;
        s.yarn_factor = 4.0f;
        s.yarn_orig_ctx = 16;
        s.yarn_log_mul = 0.0707f;
        put("gguf", "tiny-deepseek2-f32.gguf", llm8_test::build_tiny_model(s).to_bytes());
    }

    // Every metadata type, two tensors of block types, and a custom alignment.
    llm8::GgufWriter w;
    w.set_alignment(64);
    w.set("general.architecture", GgufValue::make_str("llama"));
    w.set("a.u32", GgufValue::make_u32(7));
    w.set("a.i32", GgufValue::make_i32(-7));
    w.set("a.u64", GgufValue::make_u64(1ull << 40));
    w.set("a.f32", GgufValue::make_f32(0.5f));
    w.set("a.bool", GgufValue::make_bool(true));
    w.set("a.strs", GgufValue::make_str_array({"x", "", "\xe2\x96\x81y"}));
    w.set("a.f32s", GgufValue::make_f32_array({1.5f, -2.0f}));
    w.set("a.i32s", GgufValue::make_i32_array({1, -2, 3}));
    for (GgufType k : {GgufType::UINT8, GgufType::INT8, GgufType::UINT16, GgufType::INT16,
                       GgufType::INT64, GgufType::FLOAT64, GgufType::UINT64}) {
        GgufValue a;
        a.type = GgufType::ARRAY;
        a.elem_type = k;
        if (k == GgufType::FLOAT64)
            a.floats = {1.0, 2.5};
        else if (k == GgufType::UINT64)
            a.uints = {1, 2};
        else
            a.ints = {1, 0, 1};
        w.set(std::string("arr.") + llm8::gguf_type_name(k), a);
    }
    std::vector<uint8_t> q(34 * 2, 1);
    w.add_tensor("t.q8_0", llm8::GgmlType::Q8_0, {32, 2}, q.data(), q.size());
    std::vector<uint8_t> k(144, 2);
    w.add_tensor("t.q4_k", llm8::GgmlType::Q4_K, {256}, k.data(), k.size());
    put("gguf", "every-type.gguf", w.to_bytes());
    put("gguf", "empty-v3.gguf", llm8::GgufWriter().to_bytes());
}

std::vector<std::string> text_cases(const char* inp_path) {
    std::vector<std::string> texts = {
        "Hello world",
        " Hello World!",
        "<s>[INST] hi [/INST]</s>",
        "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
        "3333 33333 1.5e-3 don't I'M",
        "\xe1\x84\x80\xe1\x85\xa1 \xf0\x9f\xa6\x99 \xe4\xbd\xa0\xe5\xa5\xbd \xe2\x96\x81",
        "\xff\xfe abc\x80xyz \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80",
        std::string("a\0b\t\r\n  \n\n", 10),
    };
    if (inp_path) {
        std::ifstream f(inp_path, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        const std::string inp = ss.str();
        const std::string sep = "\n__ggml_vocab_test__\n";
        size_t pos = 0;
        for (;;) {
            const size_t hit = inp.find(sep, pos);
            if (hit == std::string::npos) break;
            texts.push_back(inp.substr(pos, hit - pos));
            pos = hit + sep.size();
        }
    }
    return texts;
}

void text_seeds(const char* inp_path) {
    const std::vector<std::string> texts = text_cases(inp_path);
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::string n = "text-" + std::to_string(i);
        put("utf8", n, texts[i]);
        // Tokenizers: a flags byte first (bit 0 add_special, 1 parse_special; BPE: the top two
        // bits choose the pre-tokenizer).
        put("tokenizer_spm", n, std::string(1, char(i % 4)) + texts[i]);
        put("tokenizer_bpe", n, std::string(1, char((i % 3) << 6 | (i % 4))) + texts[i]);
    }
}

void chat_seeds() {
    const std::string conv = std::string(
        "\0system\0Be brief.\0user\0Hello\0assistant\0 Hi! \0user\0"
        "And you?",
        52);
    const char* tmpls[] = {
        "chatml",
        "llama3",
        "mistral",
        "gemma",
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}",
        "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
        "<|start_header_id|>{{ role }}<|end_header_id|>{% if x %}{% for y in z %}{{ y }}"
        "{% endfor %}{% endif %}",
        "{% for m in messages %}<start_of_turn>{{ m.role }}{% endfor %}",
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{ }}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}",
    };
    int i = 0;
    for (const char* t : tmpls) {
        const std::string flags(1, char(i * 2 + (i % 2) + (i % 3 == 0 ? 128 : 0)));
        put("chat_template", "tmpl-" + std::to_string(i++), flags + t + conv);
    }
}

void sampler_seeds() {
    struct Seed {
        uint8_t n_vocab;
        float temp;
        int32_t top_k;
        float top_p, min_p, rep, freq, pres;
        int32_t last_n;
        uint64_t seed;
    };
    const Seed seeds[] = {
        {32, 0.8f, 40, 0.95f, 0.05f, 1.0f, 0.0f, 0.0f, 64, 1},
        {64, 0.0f, 0, 1.0f, 0.0f, 1.1f, 0.1f, 0.2f, -1, 2},
        {255, 1.5f, 5, 0.5f, 0.2f, 1.3f, 0.0f, 0.0f, 8, 3},
        {3, 1e-30f, 1, 0.0f, 1.0f, 0.5f, -1.0f, 1.0f, 0, 4},
    };
    int i = 0;
    for (const Seed& s : seeds) {
        std::string b;
        auto add = [&b](const auto& v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
        add(s.n_vocab);
        add(s.temp);
        add(s.top_k);
        add(s.top_p);
        add(s.min_p);
        add(s.rep);
        add(s.freq);
        add(s.pres);
        add(s.last_n);
        add(s.seed);
        add(uint8_t(0x32));  // 2 logit biases, 3 history tokens
        add(int32_t(1));
        add(-INFINITY);
        add(int32_t(2));
        add(2.5f);
        for (int32_t t : {0, 1, 1}) add(t);
        std::mt19937 rng{uint32_t(i)};
        std::normal_distribution<float> nd(0.0f, 3.0f);
        const int n = s.n_vocab == 255 ? 1000 : s.n_vocab % 200;
        for (int k = 0; k < n; ++k) add(k % 17 == 5 ? NAN : nd(rng));
        put("sampler", "params-" + std::to_string(i++), b);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR [VOCAB_INP]\n", argv[0]);
        return 2;
    }
    g_out = argv[1];
    gguf_seeds();
    text_seeds(argc > 2 ? argv[2] : nullptr);
    chat_seeds();
    sampler_seeds();
    return 0;
}
