// GGUF reader and writer: round trips of every metadata type, the v1 file from ../shared, and
// every kind of corrupt file the issue lists (each a clear llm8::Error, never a crash).
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "gguf/gguf.h"
#include "model_builder.h"
#include "test_util.h"

using llm8::ErrorKind;
using llm8::GgufFile;
using llm8::GgufType;
using llm8::GgufValue;
using llm8::GgufWriter;

namespace {

GgufWriter sample_writer() {
    GgufWriter w;
    GgufValue v;
    w.set("general.architecture", GgufValue::make_str("llama"));
    w.set("a.u32", GgufValue::make_u32(4000000000u));
    w.set("a.i32", GgufValue::make_i32(-7));
    w.set("a.u64", GgufValue::make_u64(1ull << 40));
    w.set("a.f32", GgufValue::make_f32(0.25f));
    w.set("a.bool", GgufValue::make_bool(true));
    w.set("a.strs", GgufValue::make_str_array({"x", "", "\xe2\x96\x81y"}));
    w.set("a.f32s", GgufValue::make_f32_array({1.5f, -2.0f}));
    w.set("a.i32s", GgufValue::make_i32_array({1, -2, 3}));
    // The narrower and wider scalar types, and arrays of them.
    const GgufType kinds[] = {GgufType::UINT8, GgufType::INT8,  GgufType::UINT16,
                              GgufType::INT16, GgufType::INT64, GgufType::FLOAT64};
    for (GgufType k : kinds) {
        GgufValue s;
        s.type = k;
        s.i = k == GgufType::UINT8 || k == GgufType::UINT16 ? 200 : -100;
        s.u = uint64_t(s.i);
        s.f = k == GgufType::FLOAT64 ? 3.141592653589793 : double(s.i);
        w.set(std::string("s.") + llm8::gguf_type_name(k), s);
        GgufValue a;
        a.type = GgufType::ARRAY;
        a.elem_type = k;
        if (k == GgufType::FLOAT64)
            a.floats = {1.0, 2.5};
        else
            a.ints = {s.i, 0, s.i};
        w.set(std::string("arr.") + llm8::gguf_type_name(k), a);
    }
    GgufValue u64s;
    u64s.type = GgufType::ARRAY;
    u64s.elem_type = GgufType::UINT64;
    u64s.uints = {1, 1ull << 63};
    w.set("arr.u64", u64s);
    std::vector<float> t1 = {1, 2, 3, 4, 5, 6};
    w.add_tensor("t.f32", llm8::GgmlType::F32, {3, 2}, t1.data(), 24);
    std::vector<uint8_t> q(34 * 2, 0);
    w.add_tensor("t.q8", llm8::GgmlType::Q8_0, {32, 2}, q.data(), q.size());
    return w;
}

std::string write_bytes(const std::vector<uint8_t>& b, const std::string& name) {
    const std::string p = llm8_test::temp_path(name);
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), long(b.size()));
    return p;
}

// Parses bytes; returns the error kind and message (or "ok").
std::pair<int, std::string> parse(const std::vector<uint8_t>& b) {
    try {
        GgufFile::from_memory(b.data(), b.size(), "mem");
        return {-1, "ok"};
    } catch (const llm8::Error& e) {
        return {int(e.kind()), e.what()};
    }
}

template <typename T>
void poke(std::vector<uint8_t>& b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof(T));
}

// Offset of the first tensor info (after the metadata) in sample_writer()'s bytes.
size_t find(const std::vector<uint8_t>& b, const std::string& s) {
    auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
    return size_t(it - b.begin());
}

}  // namespace

TEST(Gguf, RoundTripEveryType) {
    const auto bytes = sample_writer().to_bytes();
    auto f = GgufFile::from_memory(bytes.data(), bytes.size(), "mem");
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->get_str("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("a.u32"), 4000000000LL);
    EXPECT_EQ(f->get_int("a.i32"), -7);
    EXPECT_EQ(f->get_int("a.u64"), 1LL << 40);
    EXPECT_DOUBLE_EQ(f->get_float("a.f32", 0), 0.25);
    EXPECT_TRUE(f->get_bool("a.bool", false));
    EXPECT_EQ(f->get_array("a.strs").strings, (std::vector<std::string>{"x", "", "\xe2\x96\x81y"}));
    EXPECT_EQ(f->get_array("a.f32s").floats, (std::vector<double>{1.5, -2.0}));
    EXPECT_EQ(f->get_array("a.i32s").ints, (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->get_int("s.u8"), 200);
    EXPECT_EQ(f->get_int("s.i8"), -100);
    EXPECT_EQ(f->get_int("s.u16"), 200);
    EXPECT_EQ(f->get_int("s.i16"), -100);
    EXPECT_EQ(f->get_int("s.i64"), -100);
    EXPECT_DOUBLE_EQ(f->get_float("s.f64", 0), 3.141592653589793);
    EXPECT_EQ(f->get_array("arr.i8").ints, (std::vector<int64_t>{-100, 0, -100}));
    EXPECT_EQ(f->get_array("arr.u16").ints, (std::vector<int64_t>{200, 0, 200}));
    EXPECT_EQ(f->get_array("arr.f64").floats, (std::vector<double>{1.0, 2.5}));
    EXPECT_EQ(f->get_array("arr.u64").uints, (std::vector<uint64_t>{1, 1ull << 63}));
    EXPECT_EQ(f->get_array("arr.u64").array_size(), 2u);
    ASSERT_EQ(f->tensors().size(), 2u);
    const auto* t = f->find_tensor("t.f32");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->ne, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(t->nrows(), 2);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 32,
              reinterpret_cast<uintptr_t>(bytes.data()) % 32);
    float got[6];
    std::memcpy(got, t->data, 24);
    EXPECT_EQ(got[5], 6.0f);
    EXPECT_EQ(f->find_tensor("t.q8")->nbytes, 68u);
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
    // Defaults and type mismatches.
    EXPECT_EQ(f->get_int("missing", 5), 5);
    EXPECT_EQ(f->get_str("missing", "d"), "d");
    EXPECT_THROW(f->get_int("missing"), llm8::Error);
    EXPECT_THROW(f->get_str("a.u32"), llm8::Error);
    EXPECT_THROW(f->get_int("a.strs"), llm8::Error);
    EXPECT_THROW(f->get_array("a.u32"), llm8::Error);
    EXPECT_THROW(f->get_float("a.strs", 0), llm8::Error);
    EXPECT_THROW(f->get_bool("general.architecture", false), llm8::Error);
}

TEST(Gguf, WriterReplacesKeysAndChecksTensors) {
    GgufWriter w;
    w.set("k", GgufValue::make_u32(1));
    w.set("k", GgufValue::make_u32(2));
    float x[4] = {0, 0, 0, 0};
    EXPECT_THROW(w.add_tensor("t", llm8::GgmlType::F32, {4}, x, 12), llm8::Error);  // size mismatch
    EXPECT_THROW(w.add_tensor("t", llm8::GgmlType::F32, {}, x, 0), llm8::Error);
    EXPECT_THROW(w.add_tensor("t", llm8::GgmlType::Q8_0, {4}, x, 16), llm8::Error);  // not a block
    w.add_tensor("t", llm8::GgmlType::F32, {4}, x, 16);
    EXPECT_THROW(w.add_tensor("t", llm8::GgmlType::F32, {4}, x, 16), llm8::Error);  // duplicate
    EXPECT_THROW(w.set_alignment(48), llm8::Error);
    w.set_alignment(64);
    const auto b = w.to_bytes();
    auto f = GgufFile::from_memory(b.data(), b.size(), "mem");
    EXPECT_EQ(f->get_int("k"), 2);
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->data_offset() % 64, 0u);
}

TEST(Gguf, WriteIsAtomicAndFileRoundTrips) {
    const std::string p = llm8_test::temp_path("atomic.gguf");
    sample_writer().write(p);
    auto f = GgufFile::open(p);
    EXPECT_EQ(f->tensors().size(), 2u);
    EXPECT_EQ(f->path(), p);
    EXPECT_FALSE(llm8_test::file_exists(p + ".tmp"));
    std::remove(p.c_str());
    EXPECT_THROW(sample_writer().write("/nonexistent-dir/x.gguf"), llm8::Error);
}

TEST(Gguf, ReadsVersion1File) {
    const std::string p = llm8_test::shared_data() + "/models/stories260K-v1-f32.gguf";
    LLM8_REQUIRE_FILE(p);
    auto f = GgufFile::open(p);
    EXPECT_EQ(f->version(), 1u);
    EXPECT_EQ(f->get_str("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
    EXPECT_EQ(f->get_array("tokenizer.ggml.tokens").strings.size(), 512u);
    EXPECT_EQ(f->tensors().size(), 48u);
    EXPECT_EQ(f->find_tensor("token_embd.weight")->ne, (std::vector<int64_t>{64, 512}));
}

TEST(GgufErrors, OpenMissingOrDirectory) {
    try {
        GgufFile::open("/nonexistent/model.gguf");
        FAIL();
    } catch (const llm8::Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::io);
        EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
    }
    EXPECT_THROW(GgufFile::open("/tmp"), llm8::Error);
    const std::string empty = write_bytes({}, "empty.gguf");
    EXPECT_THROW(GgufFile::open(empty), llm8::Error);
    std::remove(empty.c_str());
}

TEST(GgufErrors, EveryTruncationIsAnError) {
    const auto good = sample_writer().to_bytes();
    auto f = GgufFile::from_memory(good.data(), good.size(), "mem");
    size_t end = 0;  // the last tensor byte: only the padding after it may be cut
    for (const auto& t : f->tensors()) end = std::max(end, f->data_offset() + t.offset + t.nbytes);
    // Every cut inside the header, tensor infos and data.
    for (size_t cut = 0; cut < end; ++cut) {
        std::vector<uint8_t> b(good.begin(), good.begin() + long(cut));
        auto r = parse(b);
        EXPECT_NE(r.first, -1) << "cut at " << cut << " parsed";
        if (r.first == -1) break;
        EXPECT_EQ(r.first, int(ErrorKind::format)) << r.second;
    }
}

TEST(GgufErrors, BadMagic) {
    auto b = sample_writer().to_bytes();
    b[0] = 'X';
    auto r = parse(b);
    EXPECT_EQ(r.first, int(ErrorKind::format));
    EXPECT_NE(r.second.find("bad magic"), std::string::npos);
    // A file of text.
    std::string txt = "hello, this is not a model at all";
    EXPECT_NE(parse(std::vector<uint8_t>(txt.begin(), txt.end())).first, -1);
}

TEST(GgufErrors, WrongVersion) {
    for (uint32_t v : {0u, 4u, 0x03000000u}) {
        auto b = sample_writer().to_bytes();
        poke<uint32_t>(b, 4, v);
        auto r = parse(b);
        EXPECT_EQ(r.first, int(ErrorKind::unsupported)) << v;
        EXPECT_NE(r.second.find("version"), std::string::npos);
    }
}

TEST(GgufErrors, AbsurdCounts) {
    auto b = sample_writer().to_bytes();
    poke<uint64_t>(b, 8, 1ull << 60);  // tensors
    EXPECT_NE(parse(b).second.find("absurd tensor count"), std::string::npos);
    b = sample_writer().to_bytes();
    poke<uint64_t>(b, 16, 1ull << 60);  // kv
    EXPECT_NE(parse(b).second.find("absurd metadata count"), std::string::npos);
    // A string length of 2^63.
    b = sample_writer().to_bytes();
    poke<uint64_t>(b, 24, 1ull << 63);
    EXPECT_NE(parse(b).second.find("truncated"), std::string::npos);
    // An array length past the end.
    b = sample_writer().to_bytes();
    const size_t key = find(b, "a.strs");
    poke<uint64_t>(b, key + 6 + 4 + 4, 1ull << 40);
    EXPECT_NE(parse(b).second.find("array length"), std::string::npos);
}

TEST(GgufErrors, InvalidMetadataTypes) {
    auto b = sample_writer().to_bytes();
    const size_t key = find(b, "a.u32");
    poke<uint32_t>(b, key + 5, 13);  // no such type
    EXPECT_NE(parse(b).second.find("invalid type 13"), std::string::npos);
    b = sample_writer().to_bytes();
    const size_t arr = find(b, "a.strs");
    poke<uint32_t>(b, arr + 6 + 4, uint32_t(GgufType::ARRAY));  // array of arrays
    auto r = parse(b);
    EXPECT_EQ(r.first, int(ErrorKind::unsupported));
    b = sample_writer().to_bytes();
    poke<uint32_t>(b, arr + 6 + 4, 99);
    EXPECT_NE(parse(b).second.find("invalid array element type"), std::string::npos);
    b = sample_writer().to_bytes();
    const size_t bl = find(b, "a.bool");
    b[bl + 6 + 4] = 7;
    EXPECT_NE(parse(b).second.find("neither 0 nor 1"), std::string::npos);
}

TEST(GgufErrors, DuplicateKeysAndTensors) {
    auto b = sample_writer().to_bytes();
    const size_t k = find(b, "a.i32");
    b[k + 2] = 'u';  // "a.u32" twice (types differ, names collide)
    b[k + 3] = '3';
    EXPECT_NE(parse(b).second.find("duplicate metadata key"), std::string::npos);
    b = sample_writer().to_bytes();
    const size_t t = find(b, "t.q8");
    std::memcpy(b.data() + t, "t.f3", 4);  // "t.f3" is not "t.f32": rename to collide
    b[t + 3] = '3';
    // Names must have equal length to collide; build a fresh file instead.
    GgufWriter w;
    float x[32] = {};
    w.add_tensor("a", llm8::GgmlType::F32, {32}, x, 128);
    w.add_tensor("b", llm8::GgmlType::F32, {32}, x, 128);
    auto c = w.to_bytes();
    const size_t pb = find(c, std::string("\x01\0\0\0\0\0\0\0b", 9));
    c[pb + 8] = 'a';
    EXPECT_NE(parse(c).second.find("duplicate tensor name"), std::string::npos);
}

TEST(GgufErrors, TensorInfoChecks) {
    GgufWriter w;
    std::vector<float> x(64, 1.0f);
    w.add_tensor("w", llm8::GgmlType::F32, {8, 8}, x.data(), 256);
    const auto good = w.to_bytes();
    const size_t name = find(good, std::string("\x01\0\0\0\0\0\0\0w", 9));
    const size_t ndims = name + 9, dim0 = ndims + 4, dim1 = dim0 + 8, type = dim1 + 8,
                 off = type + 4;

    auto b = good;
    poke<uint32_t>(b, ndims, 5);
    EXPECT_NE(parse(b).second.find("dimensions"), std::string::npos);
    b = good;
    poke<uint64_t>(b, dim0, 0);
    EXPECT_NE(parse(b).second.find("absurd dimension"), std::string::npos);
    b = good;
    poke<uint64_t>(b, dim0, 1ull << 62);
    poke<uint64_t>(b, dim1, 1ull << 62);
    EXPECT_NE(parse(b).second.find("absurd dimension"), std::string::npos);
    b = good;
    poke<uint64_t>(b, dim1, 1ull << 40);  // element count fine, bytes beyond the file
    EXPECT_NE(parse(b).second.find("larger than the file"), std::string::npos);
    b = good;
    poke<uint32_t>(b, type, 77);
    auto r = parse(b);
    EXPECT_EQ(r.first, int(ErrorKind::unsupported));
    EXPECT_NE(r.second.find("unknown type id 77"), std::string::npos);
    b = good;
    poke<uint32_t>(b, type, uint32_t(llm8::GgmlType::Q8_0));  // 8 is not a multiple of 32
    EXPECT_NE(parse(b).second.find("block size"), std::string::npos);
    b = good;
    poke<uint64_t>(b, off, 4096);
    EXPECT_NE(parse(b).second.find("runs past the end"), std::string::npos);
    b = good;
    poke<uint64_t>(b, off, 3);
    EXPECT_NE(parse(b).second.find("not aligned"), std::string::npos);
    b = good;
    poke<uint64_t>(b, off, ~uint64_t(0) - 31);
    EXPECT_NE(parse(b).second.find("runs past the end"), std::string::npos);
}

TEST(GgufErrors, BadAlignment) {
    GgufWriter w;
    w.set("general.alignment", GgufValue::make_u32(24));
    EXPECT_NE(parse(w.to_bytes()).second.find("alignment"), std::string::npos);
    GgufWriter w2;
    w2.set("general.alignment", GgufValue::make_str("32"));
    EXPECT_NE(parse(w2.to_bytes()).second.find("alignment"), std::string::npos);
}

TEST(GgufErrors, RandomCorruptionNeverCrashes) {
    // Flip bytes of a real small model all over its header: each parse either succeeds or
    // throws llm8::Error (the process surviving is the check).
    llm8_test::TinySpec s;
    s.n_layer = 1;
    const auto good = llm8_test::build_tiny_model(s).to_bytes();
    std::mt19937 rng(1234);
    int errors = 0;
    for (int i = 0; i < 3000; ++i) {
        auto b = good;
        const size_t hdr = std::min<size_t>(b.size(), 12000);
        for (int k = 0; k < 4; ++k) b[rng() % hdr] = uint8_t(rng());
        errors += parse(b).first != -1;
    }
    EXPECT_GT(errors, 0);
}

TEST(GgufErrors, OverlappingTensorsAreRefused) {
    GgufWriter w;
    float x[32] = {};
    w.add_tensor("first", llm8::GgmlType::F32, {32}, x, 128);
    w.add_tensor("second", llm8::GgmlType::F32, {32}, x, 128);
    const auto good = w.to_bytes();
    EXPECT_EQ(parse(good).second, "ok");
    // The second tensor's offset field: after its name, n_dims, one dim and the type.
    const size_t off = find(good, std::string("\x06\0\0\0\0\0\0\0second", 14)) + 14 + 4 + 8 + 4;
    for (uint64_t bad : {uint64_t(0), uint64_t(32), uint64_t(96)}) {  // same, inside, tail
        auto b = good;
        poke<uint64_t>(b, off, bad);
        const auto r = parse(b);
        EXPECT_EQ(r.first, int(ErrorKind::format)) << bad;
        EXPECT_NE(r.second.find("overlap"), std::string::npos) << r.second;
        EXPECT_NE(r.second.find("'first'"), std::string::npos) << r.second;
        EXPECT_NE(r.second.find("'second'"), std::string::npos) << r.second;
    }
    auto b = good;
    poke<uint64_t>(b, off, 160);  // past the first tensor: fine if the file is long enough
    b.resize(b.size() + 32);
    EXPECT_EQ(parse(b).second, "ok");
    poke<uint64_t>(b, off, 136);  // not a multiple of 32
    EXPECT_NE(parse(b).second.find("not aligned"), std::string::npos);
}

TEST(GgufErrors, OverlongNamesAreRefused) {
    // A 70,000-byte key: the spec bounds keys at 65,535 bytes.
    GgufWriter w;
    w.set(std::string(70000, 'k'), GgufValue::make_u32(1));
    auto r = parse(w.to_bytes());
    EXPECT_EQ(r.first, int(ErrorKind::format));
    EXPECT_NE(r.second.find("metadata key at byte 24 is 70000 bytes long"), std::string::npos)
        << r.second;
    GgufWriter w2;
    float x[32] = {};
    w2.add_tensor(std::string(70000, 't'), llm8::GgmlType::F32, {32}, x, 128);
    r = parse(w2.to_bytes());
    EXPECT_NE(r.second.find("tensor name at byte 24 is 70000 bytes long"), std::string::npos)
        << r.second;
}
