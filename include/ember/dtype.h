// Element types of tensors. Quantized block types join this list with the formats issue;
// every function here already treats a type as "blocks of block_elements() elements
// taking block_bytes() bytes", so a block type needs no special case elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ember {

enum class DType : uint8_t { f32, f16, bf16, i32 };

std::string_view dtype_name(DType type);
std::optional<DType> dtype_from_name(std::string_view name);

// Elements per block (1 for plain types) and the bytes one block takes.
int64_t block_elements(DType type);
int64_t block_bytes(DType type);

// Bytes of a row of `elements` elements; the caller checks elements % block_elements == 0.
inline int64_t row_bytes(DType type, int64_t elements) {
  return elements / block_elements(type) * block_bytes(type);
}

inline bool is_float(DType type) { return type == DType::f32 || type == DType::f16 || type == DType::bf16; }

}  // namespace ember
