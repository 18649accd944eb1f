#include "core/mapped_tensor.h"

#include <cstring>

namespace ember {

Result<Tensor> mapped_tensor(const std::shared_ptr<MappedFile>& map, uint64_t at, uint64_t bytes, const Shape& shape,
                             DType dtype) {
  // The map is PROT_READ and the buffer is marked read-only, so nothing writes through it.
  auto* data = const_cast<std::byte*>(map->bytes().data() + at);
  const auto needed_alignment = static_cast<uintptr_t>(is_quantized(dtype) ? 4 : block_bytes(dtype));
  if (reinterpret_cast<uintptr_t>(data) % needed_alignment == 0)
    return Tensor::view(Buffer::wrap_file_pages(data, static_cast<size_t>(bytes), map), shape, dtype);
  auto copy = Tensor::empty(shape, dtype);
  if (!copy) return copy.status();
  auto target = copy->write<std::byte>();
  if (!target) return target.status();
  std::memcpy(target.value(), data, static_cast<size_t>(bytes));
  return copy;
}

}  // namespace ember
