// Tensors over the bytes of a memory-mapped model file (GGUF, safetensors).
#pragma once

#include <cstdint>
#include <memory>

#include "ember/mapped_file.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

// A read-only view of `bytes` bytes at offset `at` of the map when their address suits
// the element type's fields (4 bytes for f32, i32 and the block types, 2 for f16 and
// bf16), otherwise an aligned copy. A file may place a tensor at any offset its own
// alignment allows (GGUF's general.alignment may be 1), and the kernels read block
// scales and floats as typed fields.
Result<Tensor> mapped_tensor(const std::shared_ptr<MappedFile>& map, uint64_t at, uint64_t bytes, const Shape& shape,
                             DType dtype);

}  // namespace ember
