// Error values for everything in ember that can fail on bad input.
//
// The library never throws across its public API and never aborts on bad input: a
// fallible call returns Status (no value) or Result<T> (a value or an error). The
// message is one line that names the file, tensor, node or option concerned.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ember {

enum class ErrorCode {
  ok = 0,
  invalid_argument,   // wrong shape, dtype, option value
  out_of_range,       // index or size past a limit
  io_error,           // file cannot be opened, read or written
  corrupt_file,       // file content violates its format
  unsupported,        // valid request this build or device cannot serve
  out_of_memory,
  internal,           // a bug in ember: please report
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }

  bool ok() const { return code_ == ErrorCode::ok; }
  explicit operator bool() const { return ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_ = ErrorCode::ok;
  std::string message_;
};

inline Status invalid_argument(std::string message) { return {ErrorCode::invalid_argument, std::move(message)}; }
inline Status out_of_range(std::string message) { return {ErrorCode::out_of_range, std::move(message)}; }
inline Status unsupported(std::string message) { return {ErrorCode::unsupported, std::move(message)}; }
inline Status out_of_memory(std::string message) { return {ErrorCode::out_of_memory, std::move(message)}; }
inline Status internal_error(std::string message) { return {ErrorCode::internal, std::move(message)}; }

// A value or the Status explaining why there is none. Like C++23 std::expected, which
// C++20 lacks. Reading value() of an error Result is a programming error (asserts).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Status status) : state_(std::move(status)) { assert(!std::get<Status>(state_).ok()); }

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<T>(state_); }
  const T& value() const& { assert(ok()); return std::get<T>(state_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  Status status() const { return ok() ? Status{} : std::get<Status>(state_); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace ember

// Early return of an error Status from a function that returns Status or Result<T>.
#define EMBER_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::ember::Status ember_status_ = (expr);      \
    if (!ember_status_.ok()) return ember_status_; \
  } while (0)
