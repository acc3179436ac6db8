// GGUF v3 writer. Output goes to PATH.tmp and is renamed over PATH only when complete, so an
// error (disk full, bad tensor) never leaves a truncated model behind, and converting a file
// onto itself cannot destroy the input before it has been read.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "gguf/gguf.h"

namespace llm8 {

namespace {

class Out {
public:
    template <typename T>
    void put(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        buf.insert(buf.end(), p, p + sizeof(T));
    }
    void put_str(const std::string& s) {
        put<uint64_t>(s.size());
        buf.insert(buf.end(), s.begin(), s.end());
    }
    void pad_to(size_t align) {
        while (buf.size() % align) buf.push_back(0);
    }
    std::vector<uint8_t> buf;
};

void put_scalar(Out& o, GgufType t, int64_t i, uint64_t u, double f) {
    switch (t) {
        case GgufType::UINT8:
            o.put<uint8_t>(uint8_t(u));
            break;
        case GgufType::INT8:
            o.put<int8_t>(int8_t(i));
            break;
        case GgufType::UINT16:
            o.put<uint16_t>(uint16_t(u));
            break;
        case GgufType::INT16:
            o.put<int16_t>(int16_t(i));
            break;
        case GgufType::UINT32:
            o.put<uint32_t>(uint32_t(u));
            break;
        case GgufType::INT32:
            o.put<int32_t>(int32_t(i));
            break;
        case GgufType::UINT64:
            o.put<uint64_t>(u);
            break;
        case GgufType::INT64:
            o.put<int64_t>(i);
            break;
        case GgufType::FLOAT32:
            o.put<float>(float(f));
            break;
        case GgufType::FLOAT64:
            o.put<double>(f);
            break;
        case GgufType::BOOL:
            o.put<uint8_t>(i != 0);
            break;
        default:
            fail(ErrorKind::invalid_arg, "gguf writer: not a scalar type");
    }
}

void put_value(Out& o, const GgufValue& v) {
    o.put<uint32_t>(static_cast<uint32_t>(v.type));
    if (v.type == GgufType::STRING) {
        o.put_str(v.str);
    } else if (v.type == GgufType::ARRAY) {
        o.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
        o.put<uint64_t>(v.array_size());
        switch (v.elem_type) {
            case GgufType::STRING:
                for (const auto& s : v.strings) o.put_str(s);
                break;
            case GgufType::FLOAT32:
            case GgufType::FLOAT64:
                for (double f : v.floats) put_scalar(o, v.elem_type, 0, 0, f);
                break;
            case GgufType::UINT64:
                for (uint64_t u : v.uints) put_scalar(o, v.elem_type, int64_t(u), u, 0);
                break;
            case GgufType::ARRAY:
                fail(ErrorKind::unsupported, "gguf writer: array of arrays");
            default:
                for (int64_t i : v.ints) put_scalar(o, v.elem_type, i, uint64_t(i), 0);
        }
    } else {
        put_scalar(o, v.type, v.i, v.u, v.f);
    }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_alignment(size_t a) {
    if (a == 0 || (a & (a - 1))) fail(ErrorKind::invalid_arg, "alignment must be a power of two");
    alignment_ = a;
    set("general.alignment", GgufValue::make_u32(uint32_t(a)));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                            const void* data, size_t nbytes) {
    for (const auto& t : tensors_)
        if (t.name == name) fail(ErrorKind::invalid_arg, "gguf writer: duplicate tensor " + name);
    if (ne.empty() || ne.size() > 4)
        fail(ErrorKind::invalid_arg, "gguf writer: tensor " + name + " needs 1-4 dimensions");
    int64_t nel = 1;
    for (int64_t d : ne) nel *= d;
    const size_t expect = row_size(type, ne[0]) * size_t(nel / ne[0]);
    if (expect != nbytes)
        fail(ErrorKind::invalid_arg, "gguf writer: tensor " + name + " has " +
                                         std::to_string(nbytes) + " bytes, its shape needs " +
                                         std::to_string(expect));
    Tensor t{name, type, std::move(ne), {}, nbytes, nullptr};
    t.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
    tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_lazy(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                                 std::function<void(uint8_t* dst)> fill) {
    for (const auto& t : tensors_)
        if (t.name == name) fail(ErrorKind::invalid_arg, "gguf writer: duplicate tensor " + name);
    if (ne.empty() || ne.size() > 4)
        fail(ErrorKind::invalid_arg, "gguf writer: tensor " + name + " needs 1-4 dimensions");
    int64_t nel = 1;
    for (int64_t d : ne) nel *= d;
    const size_t nbytes = row_size(type, ne[0]) * size_t(nel / ne[0]);
    tensors_.push_back(Tensor{name, type, std::move(ne), {}, nbytes, std::move(fill)});
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
    Out o;
    o.put<uint32_t>(0x46554747);
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors_.size());
    o.put<uint64_t>(kv_.size());
    for (const auto& kv : kv_) {
        o.put_str(kv.first);
        put_value(o, kv.second);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        o.put_str(t.name);
        o.put<uint32_t>(uint32_t(t.ne.size()));
        for (int64_t d : t.ne) o.put<uint64_t>(uint64_t(d));
        o.put<uint32_t>(static_cast<uint32_t>(t.type));
        o.put<uint64_t>(offset);
        offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
    }
    o.pad_to(alignment_);
    return o.buf;
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<uint8_t> buf = header_bytes();
    for (const auto& t : tensors_) {
        const size_t at = buf.size();
        buf.resize(at + (t.nbytes + alignment_ - 1) / alignment_ * alignment_, 0);
        if (t.fill)
            t.fill(buf.data() + at);
        else
            std::copy(t.bytes.begin(), t.bytes.end(), buf.begin() + long(at));
    }
    return buf;
}

void GgufWriter::write(const std::string& path) const {
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(ErrorKind::io, "cannot create '" + tmp + "': " + std::strerror(errno));
    // Header, then one tensor at a time (lazy tensors are produced just before they are written).
    const std::vector<uint8_t> hdr = header_bytes();
    bool ok = std::fwrite(hdr.data(), 1, hdr.size(), f) == hdr.size();
    std::vector<uint8_t> buf;
    try {
        for (const auto& t : tensors_) {
            if (!ok) break;
            const size_t padded = (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
            if (t.fill) {
                buf.assign(padded, 0);
                t.fill(buf.data());
            } else {
                buf.assign(t.bytes.begin(), t.bytes.end());
                buf.resize(padded, 0);
            }
            ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
        }
    } catch (...) {
        std::fclose(f);
        std::remove(tmp.c_str());
        throw;
    }
    ok = ok && std::fflush(f) == 0;
    if (std::fclose(f) != 0 || !ok) {
        std::remove(tmp.c_str());
        fail(ErrorKind::io, "cannot write '" + tmp + "' (disk full?)");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail(ErrorKind::io,
             "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
    }
}

}  // namespace llm8
