// GGUF container: reader (mmap or an in-memory image; versions 1, 2, 3) and writer (v3).
//
// Layout: magic "GGUF", u32 version, tensor count and metadata count (u32 in v1, u64 after),
// metadata key/value pairs, tensor infos (name, n_dims, dims, type, offset), padding to
// general.alignment (default 32), then the tensor data. Strings are a length (u32 in v1, u64
// after) and bytes. Every count, length, dimension and offset is checked against the file
// size before use: a corrupt file is an llm8::Error, never a crash or a huge allocation.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gguf/quants.h"

namespace llm8 {

enum class GgufType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars are widened into i/u/f; arrays keep their element type and
// hold their elements in the matching vector (integers and bools in ints/uints, floats in
// floats, strings in strings). Arrays of arrays are rejected as unsupported.
struct GgufValue {
    GgufType type = GgufType::UINT8;
    GgufType elem_type = GgufType::UINT8;  // for ARRAY
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string str;
    std::vector<int64_t> ints;
    std::vector<uint64_t> uints;
    std::vector<double> floats;
    std::vector<std::string> strings;

    bool is_array() const { return type == GgufType::ARRAY; }
    size_t array_size() const;
    static GgufValue make_u32(uint32_t v);
    static GgufValue make_i32(int32_t v);
    static GgufValue make_u64(uint64_t v);
    static GgufValue make_f32(float v);
    static GgufValue make_bool(bool v);
    static GgufValue make_str(std::string v);
    static GgufValue make_str_array(std::vector<std::string> v);
    static GgufValue make_f32_array(std::vector<float> v);
    static GgufValue make_i32_array(std::vector<int32_t> v);
};

struct GgufTensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> ne;  // ne[0] is the contiguous (row) dimension, as in ggml
    uint64_t offset = 0;      // from the start of the data section
    size_t nbytes = 0;
    const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives

    int64_t nelements() const;
    int64_t nrows() const { return ne.empty() ? 1 : nelements() / ne[0]; }
};

class GgufFile {
public:
    // Map a file read-only. Throws llm8::Error(io/format/unsupported) with the path in the message.
    static std::unique_ptr<GgufFile> open(const std::string& path);
    // Parse an image already in memory (the embedded model); the bytes must outlive the object.
    static std::unique_ptr<GgufFile> from_memory(const void* data, size_t size,
                                                 const std::string& name);
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    uint32_t version() const { return version_; }
    const std::string& path() const { return path_; }
    size_t file_size() const { return size_; }
    size_t alignment() const { return alignment_; }
    size_t data_offset() const { return data_offset_; }

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(const std::string& key) const;
    bool has(const std::string& key) const { return find(key) != nullptr; }
    // Typed getters: throw llm8::Error(format) naming the key when absent or of another kind.
    std::string get_str(const std::string& key) const;
    std::string get_str(const std::string& key, const std::string& dflt) const;
    int64_t get_int(const std::string& key) const;  // any integer type
    int64_t get_int(const std::string& key, int64_t dflt) const;
    double get_float(const std::string& key, double dflt) const;  // any numeric type
    bool get_bool(const std::string& key, bool dflt) const;
    const GgufValue& get_array(const std::string& key) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const;

private:
    GgufFile() = default;
    void parse();

    std::string path_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    size_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

// Writes GGUF v3. Tensors are added with their bytes (already in the target type).
class GgufWriter {
public:
    void set(const std::string& key, GgufValue v);  // replaces an existing key, keeps order
    void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                    const void* data, size_t nbytes);  // data is copied
    // A tensor whose bytes are produced only when written: fill(dst) writes row_size(type,
    // ne[0]) * rows bytes. Lets llm8-mkmodel write multi-GB files one tensor at a time.
    void add_tensor_lazy(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                         std::function<void(uint8_t* dst)> fill);
    void set_alignment(size_t a);
    // Writes to path + ".tmp" then renames, so a failure never leaves a half file at path.
    void write(const std::string& path) const;
    std::vector<uint8_t> to_bytes() const;

private:
    struct Tensor {
        std::string name;
        GgmlType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> bytes;
        size_t nbytes = 0;
        std::function<void(uint8_t*)> fill;  // lazy tensors
    };
    std::vector<uint8_t> header_bytes() const;  // everything before the tensor data
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<Tensor> tensors_;
    size_t alignment_ = 32;
};

}  // namespace llm8
