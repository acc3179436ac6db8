// GGUF reader: mmap (or an in-memory image), versions 1-3, every metadata type, tensor infos.
// All sizes come from untrusted bytes, so every read goes through Cursor, which checks the
// remaining length first, and every count is bounded by what the remaining bytes could hold.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "gguf/gguf.h"

namespace llm8 {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // as ggml (GGML_MAX_DIMS)
// Keys and tensor names: the GGUF spec bounds keys at 65535 bytes; a name longer than that is
// corrupt (ggml's own limit on tensor names is 63).
constexpr uint64_t kMaxNameLen = 65535;

class Cursor {
public:
    Cursor(const uint8_t* p, size_t n, const std::string& what) : p_(p), n_(n), what_(what) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return n_ - pos_; }

    void need(size_t k, const char* item) const {
        if (k > remaining())
            fail(ErrorKind::format, what_ + ": truncated file: " + item + " at byte " +
                                        std::to_string(pos_) + " needs " + std::to_string(k) +
                                        " bytes, " + std::to_string(remaining()) + " left");
    }
    template <typename T>
    T read(const char* item) {
        need(sizeof(T), item);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    // Counts and lengths: u32 in v1, u64 in v2+.
    uint64_t read_len(uint32_t version, const char* item) {
        return version == 1 ? read<uint32_t>(item) : read<uint64_t>(item);
    }
    std::string read_string(uint32_t version, const char* item,
                            uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
        const size_t at = pos_;
        const uint64_t len = read_len(version, item);
        need(len, item);
        if (len > max_len)
            fail(ErrorKind::format, what_ + ": " + item + " at byte " + std::to_string(at) +
                                        " is " + std::to_string(len) + " bytes long (at most " +
                                        std::to_string(max_len) + ")");
        std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
    }
    const std::string& what() const { return what_; }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
    std::string what_;
};

size_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::UINT8:
        case GgufType::INT8:
        case GgufType::BOOL:
            return 1;
        case GgufType::UINT16:
        case GgufType::INT16:
            return 2;
        case GgufType::UINT32:
        case GgufType::INT32:
        case GgufType::FLOAT32:
            return 4;
        case GgufType::UINT64:
        case GgufType::INT64:
        case GgufType::FLOAT64:
            return 8;
        default:
            return 0;
    }
}

bool valid_type(uint32_t t) {
    return t <= static_cast<uint32_t>(GgufType::FLOAT64);
}

// An integer (or bool) value seen three ways: i, u (two's complement) and f.
template <typename T>
void set_int(GgufValue& v, T x) {
    v.i = int64_t(x);
    v.u = uint64_t(x);
    v.f = double(x);
}

// Reads one scalar of type t into v (i, u, f and, for bools, i/u as 0/1).
void read_scalar(Cursor& c, GgufType t, GgufValue& v, const char* item) {
    switch (t) {
        case GgufType::UINT8:
            set_int(v, c.read<uint8_t>(item));
            break;
        case GgufType::INT8:
            set_int(v, c.read<int8_t>(item));
            break;
        case GgufType::UINT16:
            set_int(v, c.read<uint16_t>(item));
            break;
        case GgufType::INT16:
            set_int(v, c.read<int16_t>(item));
            break;
        case GgufType::UINT32:
            set_int(v, c.read<uint32_t>(item));
            break;
        case GgufType::INT32:
            set_int(v, c.read<int32_t>(item));
            break;
        case GgufType::UINT64:
            set_int(v, c.read<uint64_t>(item));
            break;
        case GgufType::INT64:
            set_int(v, c.read<int64_t>(item));
            break;
        case GgufType::FLOAT32:
            v.f = c.read<float>(item);
            v.i = int64_t(0);
            break;
        case GgufType::FLOAT64:
            v.f = c.read<double>(item);
            break;
        case GgufType::BOOL: {
            const uint8_t b = c.read<uint8_t>(item);
            if (b > 1)
                fail(ErrorKind::format, c.what() + ": " + item + ": bool value " +
                                            std::to_string(b) + " is neither 0 nor 1");
            set_int(v, b);
            break;
        }
        default:
            fail(ErrorKind::format, c.what() + ": " + item + ": not a scalar type");
    }
}

}  // namespace

// ---- GgufValue --------------------------------------------------------------------------------

const char* gguf_type_name(GgufType t) {
    static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    const uint32_t i = static_cast<uint32_t>(t);
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : "invalid";
}

size_t GgufValue::array_size() const {
    if (!is_array()) return 0;
    switch (elem_type) {
        case GgufType::STRING:
            return strings.size();
        case GgufType::FLOAT32:
        case GgufType::FLOAT64:
            return floats.size();
        case GgufType::UINT64:
            return uints.size();
        default:
            return ints.size();
    }
}

GgufValue GgufValue::make_u32(uint32_t x) {
    GgufValue v;
    v.type = GgufType::UINT32;
    set_int(v, x);
    return v;
}
GgufValue GgufValue::make_i32(int32_t x) {
    GgufValue v;
    v.type = GgufType::INT32;
    set_int(v, x);
    return v;
}
GgufValue GgufValue::make_u64(uint64_t x) {
    GgufValue v;
    v.type = GgufType::UINT64;
    set_int(v, x);
    return v;
}
GgufValue GgufValue::make_f32(float x) {
    GgufValue v;
    v.type = GgufType::FLOAT32;
    v.f = x;
    return v;
}
GgufValue GgufValue::make_bool(bool x) {
    GgufValue v;
    v.type = GgufType::BOOL;
    set_int(v, uint8_t(x));
    return v;
}
GgufValue GgufValue::make_str(std::string x) {
    GgufValue v;
    v.type = GgufType::STRING;
    v.str = std::move(x);
    return v;
}
GgufValue GgufValue::make_str_array(std::vector<std::string> x) {
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.elem_type = GgufType::STRING;
    v.strings = std::move(x);
    return v;
}
GgufValue GgufValue::make_f32_array(std::vector<float> x) {
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.elem_type = GgufType::FLOAT32;
    v.floats.assign(x.begin(), x.end());
    return v;
}
GgufValue GgufValue::make_i32_array(std::vector<int32_t> x) {
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.elem_type = GgufType::INT32;
    v.ints.assign(x.begin(), x.end());
    return v;
}

int64_t GgufTensorInfo::nelements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

// ---- GgufFile ---------------------------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(ErrorKind::io, "cannot open model file '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(ErrorKind::io, "'" + path + "' is not a regular file");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size < 8) {
        ::close(fd);
        fail(ErrorKind::format, path + ": truncated file: " + std::to_string(size) +
                                    " bytes is too small for a GGUF header");
    }
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) fail(ErrorKind::io, "cannot map '" + path + "': " + std::strerror(errno));
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->path_ = path;
    f->base_ = static_cast<const uint8_t*>(p);
    f->size_ = size;
    f->mapped_ = true;
    f->parse();  // on throw, the destructor unmaps
    return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const void* data, size_t size,
                                                const std::string& name) {
    if (!data && size) fail(ErrorKind::io, name + ": no data");
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->path_ = name;
    f->base_ = static_cast<const uint8_t*>(data);
    f->size_ = size;
    f->parse();
    return f;
}

GgufFile::~GgufFile() {
    if (mapped_ && base_) munmap(const_cast<uint8_t*>(base_), size_);
}

void GgufFile::parse() {
    Cursor c(base_, size_, path_);
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "bad magic 0x%08x (expected 'GGUF')", magic);
        fail(ErrorKind::format, path_ + ": not a GGUF file: " + buf);
    }
    version_ = c.read<uint32_t>("version");
    if (version_ < 1 || version_ > 3)
        fail(ErrorKind::unsupported, path_ + ": GGUF version " + std::to_string(version_) +
                                         " is not supported (1-3)" +
                                         (version_ > 0x00ffffff ? " (a big-endian file?)" : ""));

    const uint64_t n_tensors = c.read_len(version_, "tensor count");
    const uint64_t n_kv = c.read_len(version_, "metadata count");
    // Each kv takes >= 12 bytes (v1: 4-byte key length + 4-byte type + 1-byte value), each tensor
    // info >= 16: counts beyond what the file could hold are corrupt.
    if (n_kv > c.remaining() / 9)
        fail(ErrorKind::format, path_ + ": absurd metadata count " + std::to_string(n_kv) +
                                    " for a file of " + std::to_string(size_) + " bytes");
    if (n_tensors > c.remaining() / 16)
        fail(ErrorKind::format, path_ + ": absurd tensor count " + std::to_string(n_tensors) +
                                    " for a file of " + std::to_string(size_) + " bytes");

    kv_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.read_string(version_, "metadata key", kMaxNameLen);
        const uint32_t t = c.read<uint32_t>("metadata type");
        if (!valid_type(t))
            fail(ErrorKind::format,
                 path_ + ": metadata '" + key + "' has invalid type " + std::to_string(t));
        GgufValue v;
        v.type = static_cast<GgufType>(t);
        if (v.type == GgufType::STRING) {
            v.str = c.read_string(version_, key.c_str());
        } else if (v.type == GgufType::ARRAY) {
            const uint32_t et = c.read<uint32_t>("array element type");
            if (!valid_type(et))
                fail(ErrorKind::format, path_ + ": metadata '" + key +
                                            "' has invalid array element type " +
                                            std::to_string(et));
            v.elem_type = static_cast<GgufType>(et);
            if (v.elem_type == GgufType::ARRAY)
                fail(ErrorKind::unsupported,
                     path_ + ": metadata '" + key + "' is an array of arrays (not supported)");
            const uint64_t n = c.read_len(version_, "array length");
            const size_t min_elem = v.elem_type == GgufType::STRING ? (version_ == 1 ? 4 : 8)
                                                                    : scalar_size(v.elem_type);
            if (n > c.remaining() / min_elem)
                fail(ErrorKind::format, path_ + ": metadata '" + key + "': array length " +
                                            std::to_string(n) + " runs past the end of the file");
            const size_t count = static_cast<size_t>(n);
            if (v.elem_type == GgufType::STRING) {
                v.strings.reserve(count);
                for (size_t i = 0; i < count; ++i)
                    v.strings.push_back(c.read_string(version_, key.c_str()));
            } else {
                const bool is_float =
                    v.elem_type == GgufType::FLOAT32 || v.elem_type == GgufType::FLOAT64;
                const bool is_u64 = v.elem_type == GgufType::UINT64;
                if (is_float)
                    v.floats.reserve(count);
                else if (is_u64)
                    v.uints.reserve(count);
                else
                    v.ints.reserve(count);
                GgufValue e;
                for (size_t i = 0; i < count; ++i) {
                    read_scalar(c, v.elem_type, e, key.c_str());
                    if (is_float)
                        v.floats.push_back(e.f);
                    else if (is_u64)
                        v.uints.push_back(e.u);
                    else
                        v.ints.push_back(e.i);
                }
            }
        } else {
            read_scalar(c, v.type, v, key.c_str());
        }
        if (kv_index_.count(key))
            fail(ErrorKind::format, path_ + ": duplicate metadata key '" + key + "'");
        kv_index_[key] = kv_.size();
        kv_.emplace_back(std::move(key), std::move(v));
    }

    if (const GgufValue* a = find("general.alignment")) {
        if (a->is_array() || a->type == GgufType::STRING || a->u == 0 || (a->u & (a->u - 1)) ||
            a->u > 65536)
            fail(ErrorKind::format, path_ + ": general.alignment must be a power of two <= 65536");
        alignment_ = static_cast<size_t>(a->u);
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo ti;
        ti.name = c.read_string(version_, "tensor name", kMaxNameLen);
        const uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
        if (n_dims > kMaxDims)
            fail(ErrorKind::format, path_ + ": tensor '" + ti.name + "' has " +
                                        std::to_string(n_dims) + " dimensions (at most 4)");
        int64_t nel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t dim =
                version_ == 1 ? c.read<uint32_t>("tensor dim") : c.read<uint64_t>("tensor dim");
            // ggml keeps dims as int64: reject anything whose element count overflows.
            if (dim == 0 || dim > uint64_t(std::numeric_limits<int64_t>::max()) ||
                uint64_t(nel) > uint64_t(std::numeric_limits<int64_t>::max()) / dim)
                fail(ErrorKind::format, path_ + ": tensor '" + ti.name +
                                            "' has an absurd dimension " + std::to_string(dim));
            nel *= int64_t(dim);
            ti.ne.push_back(int64_t(dim));
        }
        const uint32_t type = c.read<uint32_t>("tensor type");
        const TypeTraits* tt = type_traits(type);
        if (!tt)
            fail(ErrorKind::unsupported,
                 path_ + ": tensor '" + ti.name + "' has unknown type id " + std::to_string(type));
        ti.type = static_cast<GgmlType>(type);
        ti.offset = c.read<uint64_t>("tensor offset");
        const int64_t ne0 = ti.ne.empty() ? 1 : ti.ne[0];
        if (ne0 % tt->block_size != 0)
            fail(ErrorKind::format, path_ + ": tensor '" + ti.name + "': row length " +
                                        std::to_string(ne0) + " is not a multiple of the " +
                                        tt->name + " block size");
        const uint64_t nblocks = uint64_t(nel) / uint64_t(tt->block_size);
        if (nblocks > uint64_t(size_) / tt->type_size)
            fail(ErrorKind::format, path_ + ": tensor '" + ti.name + "' (" + std::to_string(nel) +
                                        " elements) is larger than the file");
        ti.nbytes = static_cast<size_t>(nblocks * tt->type_size);
        if (tensor_index_.count(ti.name))
            fail(ErrorKind::format, path_ + ": duplicate tensor name '" + ti.name + "'");
        tensor_index_[ti.name] = tensors_.size();
        tensors_.push_back(std::move(ti));
    }

    // The data section starts at the next multiple of the alignment.
    size_t off = c.pos();
    off = (off + alignment_ - 1) / alignment_ * alignment_;
    if (n_tensors > 0 && off > size_)
        fail(ErrorKind::format, path_ + ": truncated file: data section starts past the end");
    data_offset_ = off;
    const uint64_t data_size = size_ >= off ? size_ - off : 0;
    for (GgufTensorInfo& ti : tensors_) {
        if (ti.offset % alignment_ != 0)
            fail(ErrorKind::format, path_ + ": tensor '" + ti.name + "' offset " +
                                        std::to_string(ti.offset) + " is not aligned to " +
                                        std::to_string(alignment_));
        if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
            fail(ErrorKind::format,
                 path_ + ": tensor '" + ti.name + "' data [" + std::to_string(ti.offset) + ", +" +
                     std::to_string(ti.nbytes) + ") runs past the end of the file (truncated?)");
        ti.data = base_ + off + ti.offset;
    }
    // No two tensors may share bytes (a hostile file could alias a weight that is written
    // through, or hide one tensor inside another): sorted by offset, each must end before the
    // next begins.
    std::vector<size_t> order(tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const GgufTensorInfo& prev = tensors_[order[k - 1]];
        const GgufTensorInfo& cur = tensors_[order[k]];
        if (cur.offset - prev.offset < prev.nbytes)  // offsets sorted, both inside the file
            fail(ErrorKind::format,
                 path_ + ": tensors '" + prev.name + "' [" + std::to_string(prev.offset) + ", +" +
                     std::to_string(prev.nbytes) + ") and '" + cur.name + "' [" +
                     std::to_string(cur.offset) + ", +" + std::to_string(cur.nbytes) +
                     ") overlap in the data section");
    }
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

static bool is_integer(GgufType t) {
    switch (t) {
        case GgufType::UINT8:
        case GgufType::INT8:
        case GgufType::UINT16:
        case GgufType::INT16:
        case GgufType::UINT32:
        case GgufType::INT32:
        case GgufType::UINT64:
        case GgufType::INT64:
        case GgufType::BOOL:
            return true;
        default:
            return false;
    }
}

std::string GgufFile::get_str(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) fail(ErrorKind::format, path_ + ": missing metadata '" + key + "'");
    if (v->type != GgufType::STRING)
        fail(ErrorKind::format, path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                                    ", expected a string");
    return v->str;
}

std::string GgufFile::get_str(const std::string& key, const std::string& dflt) const {
    return has(key) ? get_str(key) : dflt;
}

int64_t GgufFile::get_int(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) fail(ErrorKind::format, path_ + ": missing metadata '" + key + "'");
    if (!is_integer(v->type))
        fail(ErrorKind::format, path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                                    ", expected an integer");
    return v->i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t dflt) const {
    return has(key) ? get_int(key) : dflt;
}

double GgufFile::get_float(const std::string& key, double dflt) const {
    const GgufValue* v = find(key);
    if (!v) return dflt;
    if (v->type == GgufType::FLOAT32 || v->type == GgufType::FLOAT64) return v->f;
    if (is_integer(v->type)) return double(v->i);
    fail(ErrorKind::format,
         path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected a number");
}

bool GgufFile::get_bool(const std::string& key, bool dflt) const {
    const GgufValue* v = find(key);
    if (!v) return dflt;
    if (!is_integer(v->type))
        fail(ErrorKind::format, path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                                    ", expected a bool");
    return v->i != 0;
}

const GgufValue& GgufFile::get_array(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) fail(ErrorKind::format, path_ + ": missing metadata '" + key + "'");
    if (!v->is_array())
        fail(ErrorKind::format, path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                                    ", expected an array");
    return *v;
}

}  // namespace llm8
