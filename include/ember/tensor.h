// Tensor: a typed, shaped, strided view of a Buffer. Copying a Tensor copies the view,
// not the bytes; views (slice, reshape, transpose, permute) share the buffer.
//
// Dimensions are listed outermost first, as in NumPy: a [rows, cols] matrix has
// dims {rows, cols} and, contiguous, strides {cols, 1}. Strides count elements.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "ember/buffer.h"
#include "ember/dtype.h"
#include "ember/status.h"

namespace ember {

inline constexpr int kMaxDims = 4;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  static Result<Shape> from(std::span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return dims_[axis]; }
  int64_t& operator[](int axis) { return dims_[axis]; }
  int64_t elements() const;
  std::span<const int64_t> dims() const { return {dims_.data(), static_cast<size_t>(rank_)}; }
  std::string str() const;  // "[2, 3, 4]"

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

 private:
  int rank_ = 0;
  std::array<int64_t, kMaxDims> dims_{};
};

using Strides = std::array<int64_t, kMaxDims>;
Strides contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // A new contiguous tensor in its own buffer.
  static Result<Tensor> empty(const Shape& shape, DType dtype);
  // A contiguous view of `buffer` starting at `byte_offset`; fails if it does not fit.
  static Result<Tensor> view(std::shared_ptr<Buffer> buffer, const Shape& shape, DType dtype, size_t byte_offset = 0);

  bool defined() const { return buffer_ != nullptr; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int axis) const { return shape_[axis]; }
  int64_t stride(int axis) const { return strides_[axis]; }
  const Strides& strides() const { return strides_; }
  int64_t elements() const { return shape_.elements(); }
  size_t byte_offset() const { return byte_offset_; }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  bool is_contiguous() const;
  // Bytes the elements take when contiguous.
  size_t payload_bytes() const { return static_cast<size_t>(row_bytes(dtype_, elements())); }

  // Views: no bytes copied.
  Result<Tensor> slice(int axis, int64_t start, int64_t length) const;
  Result<Tensor> reshape(const Shape& shape) const;  // contiguous tensors only
  Result<Tensor> transpose(int axis_a, int axis_b) const;
  Result<Tensor> permute(std::span<const int> order) const;  // new axis i = old axis order[i]
  // This tensor itself when contiguous, else a contiguous copy.
  Result<Tensor> contiguous() const;

  // Typed pointers to the first element, with residency tracked. T must match dtype
  // (float for f32, uint16_t for f16/bf16, int32_t for i32, std::byte for any).
  template <typename T> Result<const T*> read() const;
  template <typename T> Result<T*> write() const;

  // Element access for tests and tools (f32, f16, bf16, i32), converted through float.
  // Index count must equal rank; out-of-range indices are a programming error.
  float get(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, float value) const;
  float get_flat(int64_t element) const;  // element in row-major order of the shape
  void set_flat(int64_t element, float value) const;
  Status fill(float value) const;

  std::string describe() const;  // "f32[2, 3]"

 private:
  Tensor(std::shared_ptr<Buffer> buffer, Shape shape, Strides strides, DType dtype, size_t byte_offset)
      : buffer_(std::move(buffer)), shape_(shape), strides_(strides), dtype_(dtype), byte_offset_(byte_offset) {}
  int64_t flat_to_offset(int64_t element) const;  // in elements from byte_offset_
  int64_t index_to_offset(std::initializer_list<int64_t> index) const;

  std::shared_ptr<Buffer> buffer_;
  Shape shape_;
  Strides strides_{};
  DType dtype_ = DType::f32;
  size_t byte_offset_ = 0;
};

}  // namespace ember
