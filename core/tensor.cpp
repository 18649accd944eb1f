#include "ember/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "quant/bf16.h"
#include "quant/f16.h"

namespace ember {

Shape::Shape(std::initializer_list<int64_t> dims) {
  assert(dims.size() <= kMaxDims);
  for (int64_t d : dims) dims_[rank_++] = d;
}

Result<Shape> Shape::from(std::span<const int64_t> dims) {
  if (dims.size() > kMaxDims) return invalid_argument(fmt::format("{} dimensions; ember supports at most {}", dims.size(), kMaxDims));
  Shape shape;
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument(fmt::format("negative dimension {}", d));
    shape.dims_[shape.rank_++] = d;
  }
  return shape;
}

int64_t Shape::elements() const {
  int64_t count = 1;
  for (int i = 0; i < rank_; ++i) count *= dims_[i];
  return count;
}

std::string Shape::str() const { return fmt::format("[{}]", fmt::join(dims(), ", ")); }

Strides contiguous_strides(const Shape& shape) {
  Strides strides{};
  int64_t step = 1;
  for (int axis = shape.rank() - 1; axis >= 0; --axis) {
    strides[axis] = step;
    step *= shape[axis];
  }
  return strides;
}

namespace {

// Elements above this are refused before any multiplication can overflow int64.
constexpr int64_t kMaxElements = int64_t{1} << 46;

Status check_shape(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape.dims()) {
    if (d < 0) return invalid_argument(fmt::format("shape {} has a negative dimension", shape.str()));
    if (d != 0 && count > kMaxElements / d)
      return invalid_argument(fmt::format("shape {} has more than 2^46 elements", shape.str()));
    count *= d;
  }
  return {};
}

}  // namespace

Result<Tensor> Tensor::empty(const Shape& shape, DType dtype) {
  EMBER_RETURN_IF_ERROR(check_shape(shape));
  auto buffer = Buffer::allocate(static_cast<size_t>(row_bytes(dtype, shape.elements())));
  if (!buffer) return buffer.status();
  return Tensor(std::move(buffer.value()), shape, contiguous_strides(shape), dtype, 0);
}

Result<Tensor> Tensor::view(std::shared_ptr<Buffer> buffer, const Shape& shape, DType dtype, size_t byte_offset) {
  if (buffer == nullptr) return invalid_argument("tensor view of a null buffer");
  EMBER_RETURN_IF_ERROR(check_shape(shape));
  if (shape.rank() > 0 && shape[shape.rank() - 1] % block_elements(dtype) != 0)
    return invalid_argument(fmt::format("{} rows of {} are not whole blocks of {}", dtype_name(dtype),
                                        shape[shape.rank() - 1], block_elements(dtype)));
  const auto needed = static_cast<size_t>(row_bytes(dtype, shape.elements()));
  if (byte_offset > buffer->bytes() || needed > buffer->bytes() - byte_offset)
    return out_of_range(fmt::format("{}{} at byte {} needs {} bytes; the buffer has {}", dtype_name(dtype), shape.str(),
                                    byte_offset, needed, buffer->bytes()));
  return Tensor(std::move(buffer), shape, contiguous_strides(shape), dtype, byte_offset);
}

bool Tensor::is_contiguous() const {
  const Strides expected = contiguous_strides(shape_);
  for (int axis = 0; axis < rank(); ++axis)
    if (shape_[axis] != 1 && strides_[axis] != expected[axis]) return false;
  return true;
}

Result<Tensor> Tensor::slice(int axis, int64_t start, int64_t length) const {
  if (axis < 0 || axis >= rank()) return invalid_argument(fmt::format("slice axis {} of {}", axis, describe()));
  if (start < 0 || length < 0 || start > shape_[axis] || length > shape_[axis] - start)
    return out_of_range(fmt::format("slice [{}, {}) of axis {} of {}", start, start + length, axis, describe()));
  if (block_elements(dtype_) > 1 && axis == rank() - 1 &&
      (start % block_elements(dtype_) != 0 || length % block_elements(dtype_) != 0))
    return invalid_argument(fmt::format("slice of {} splits a {}-element block", describe(), block_elements(dtype_)));
  Tensor result = *this;
  result.shape_[axis] = length;
  result.byte_offset_ += static_cast<size_t>(row_bytes(dtype_, start * strides_[axis]));
  return result;
}

Result<Tensor> Tensor::reshape(const Shape& shape) const {
  EMBER_RETURN_IF_ERROR(check_shape(shape));
  if (shape.elements() != elements())
    return invalid_argument(fmt::format("cannot reshape {} to {}: element counts differ", describe(), shape.str()));
  if (!is_contiguous())
    return invalid_argument(fmt::format("cannot reshape non-contiguous {} without a copy", describe()));
  return Tensor(buffer_, shape, contiguous_strides(shape), dtype_, byte_offset_);
}

Result<Tensor> Tensor::transpose(int axis_a, int axis_b) const {
  if (axis_a < 0 || axis_a >= rank() || axis_b < 0 || axis_b >= rank())
    return invalid_argument(fmt::format("transpose axes {} and {} of {}", axis_a, axis_b, describe()));
  std::array<int, kMaxDims> order{};
  for (int axis = 0; axis < rank(); ++axis) order[axis] = axis;
  std::swap(order[axis_a], order[axis_b]);
  return permute({order.data(), static_cast<size_t>(rank())});
}

Result<Tensor> Tensor::permute(std::span<const int> order) const {
  if (static_cast<int>(order.size()) != rank())
    return invalid_argument(fmt::format("permutation of {} axes for {}", order.size(), describe()));
  std::array<bool, kMaxDims> seen{};
  Tensor result = *this;
  for (int axis = 0; axis < rank(); ++axis) {
    const int from = order[axis];
    if (from < 0 || from >= rank() || seen[from])
      return invalid_argument(fmt::format("axis order is not a permutation of 0..{} for {}", rank() - 1, describe()));
    seen[from] = true;
    result.shape_[axis] = shape_[from];
    result.strides_[axis] = strides_[from];
  }
  if (block_elements(dtype_) > 1 && rank() > 0 && result.strides_[rank() - 1] != 1)
    return invalid_argument(fmt::format("permutation of {} would split its blocks", describe()));
  return result;
}

Result<Tensor> Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  auto copy = Tensor::empty(shape_, dtype_);
  if (!copy) return copy.status();
  auto source = buffer_->host_read();
  if (!source) return source.status();
  auto target = copy->buffer_->host_write();
  if (!target) return target.status();
  const int64_t element_bytes = block_bytes(dtype_);  // plain types only reach here: blocks stay contiguous
  const int64_t count = elements();
  for (int64_t element = 0; element < count; ++element)
    std::memcpy(target.value() + element * element_bytes,
                source.value() + byte_offset_ + flat_to_offset(element) * element_bytes, element_bytes);
  return copy;
}

int64_t Tensor::flat_to_offset(int64_t element) const {
  int64_t offset = 0;
  for (int axis = rank() - 1; axis >= 0; --axis) {
    offset += (element % shape_[axis]) * strides_[axis];
    element /= shape_[axis];
  }
  return offset;
}

template <typename T>
Result<const T*> Tensor::read() const {
  auto bytes = buffer_->host_read();
  if (!bytes) return bytes.status();
  return reinterpret_cast<const T*>(bytes.value() + byte_offset_);
}

template <typename T>
Result<T*> Tensor::write() const {
  auto bytes = buffer_->host_write();
  if (!bytes) return bytes.status();
  return reinterpret_cast<T*>(bytes.value() + byte_offset_);
}

template Result<const float*> Tensor::read<float>() const;
template Result<const uint16_t*> Tensor::read<uint16_t>() const;
template Result<const int32_t*> Tensor::read<int32_t>() const;
template Result<const std::byte*> Tensor::read<std::byte>() const;
template Result<float*> Tensor::write<float>() const;
template Result<uint16_t*> Tensor::write<uint16_t>() const;
template Result<int32_t*> Tensor::write<int32_t>() const;
template Result<std::byte*> Tensor::write<std::byte>() const;

namespace {

float load_as_float(DType dtype, const std::byte* at) {
  switch (dtype) {
    case DType::f32: { float v; std::memcpy(&v, at, 4); return v; }
    case DType::f16: { uint16_t v; std::memcpy(&v, at, 2); return quant::f16_to_f32(v); }
    case DType::bf16: { uint16_t v; std::memcpy(&v, at, 2); return quant::bf16_to_f32(v); }
    case DType::i32: { int32_t v; std::memcpy(&v, at, 4); return static_cast<float>(v); }
    default: break;  // block-quantized elements have no value on their own
  }
  return std::numeric_limits<float>::quiet_NaN();
}

void store_from_float(DType dtype, std::byte* at, float value) {
  switch (dtype) {
    case DType::f32: std::memcpy(at, &value, 4); return;
    case DType::f16: { uint16_t v = quant::f32_to_f16(value); std::memcpy(at, &v, 2); return; }
    case DType::bf16: { uint16_t v = quant::f32_to_bf16(value); std::memcpy(at, &v, 2); return; }
    case DType::i32: { auto v = static_cast<int32_t>(value); std::memcpy(at, &v, 4); return; }
    default: return;
  }
}

}  // namespace

int64_t Tensor::index_to_offset(std::initializer_list<int64_t> index) const {
  assert(static_cast<int>(index.size()) == rank());
  int64_t offset = 0;
  int axis = 0;
  for (int64_t i : index) {
    assert(i >= 0 && i < shape_[axis]);
    offset += i * strides_[axis++];
  }
  return offset;
}

float Tensor::get(std::initializer_list<int64_t> index) const {
  return load_as_float(dtype_, read<std::byte>().value() + index_to_offset(index) * block_bytes(dtype_));
}

void Tensor::set(std::initializer_list<int64_t> index, float value) const {
  store_from_float(dtype_, write<std::byte>().value() + index_to_offset(index) * block_bytes(dtype_), value);
}

float Tensor::get_flat(int64_t element) const {
  return load_as_float(dtype_, read<std::byte>().value() + flat_to_offset(element) * block_bytes(dtype_));
}

void Tensor::set_flat(int64_t element, float value) const {
  store_from_float(dtype_, write<std::byte>().value() + flat_to_offset(element) * block_bytes(dtype_), value);
}

Status Tensor::fill(float value) const {
  if (block_elements(dtype_) > 1) return unsupported(fmt::format("fill of block-quantized {}", describe()));
  auto bytes = write<std::byte>();
  if (!bytes) return bytes.status();
  const int64_t count = elements();
  for (int64_t element = 0; element < count; ++element)
    store_from_float(dtype_, bytes.value() + flat_to_offset(element) * block_bytes(dtype_), value);
  return {};
}

std::string Tensor::describe() const { return fmt::format("{}{}", dtype_name(dtype_), shape_.str()); }

}  // namespace ember
