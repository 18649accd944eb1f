// The GPU module's error value. gpu/ sits below core and cannot use ember::Status, so it
// carries its own: a one-line message, empty when the call succeeded. The core glue
// turns it into an ember::Status.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ember::gpu {

enum class ErrorKind {
  ok = 0,
  unavailable,    // no loader, no device, or the device lacks something needed
  invalid_argument,
  out_of_memory,  // a budget or the device ran out
  device_error,   // a Vulkan call failed
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

  bool ok() const { return kind_ == ErrorKind::ok; }
  explicit operator bool() const { return ok(); }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

 private:
  ErrorKind kind_ = ErrorKind::ok;
  std::string message_;
};

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
  Status status() const { return ok() ? Status{} : std::get<Status>(state_); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace ember::gpu

#define EMBER_GPU_RETURN_IF_ERROR(expr)               \
  do {                                                \
    ::ember::gpu::Status ember_gpu_status_ = (expr);  \
    if (!ember_gpu_status_.ok()) return ember_gpu_status_; \
  } while (false)
