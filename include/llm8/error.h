// llm8::Error: typed errors raised at the boundaries (files, requests, flags). Tools catch
// llm8::Error, print what() and exit non-zero; nothing aborts on bad input.
#pragma once
#include <stdexcept>
#include <string>

namespace llm8 {

enum class ErrorKind {
    io,           // cannot open / read / map / write a file
    format,       // malformed content: bad magic, truncated, offsets out of range
    unsupported,  // well-formed but not handled: unknown tensor type, architecture, version
    invalid_arg,  // bad flag or parameter value
    runtime,      // anything else that went wrong while running
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

[[noreturn]] inline void fail(ErrorKind kind, const std::string& msg) {
    throw Error(kind, msg);
}

}  // namespace llm8
