// Element types of tensors. Every function here treats a type as "blocks of
// block_elements() elements taking block_bytes() bytes" (1 element per block for plain
// types), so block-quantized types need no special case elsewhere. The block layouts
// are GGUF's (quant/block_formats.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ember {

enum class DType : uint8_t {
  f32, f16, bf16, i32,
  q8_0,  // 32 weights: f16 scale + 32 int8                        (34 bytes)
  q4_0,  // 32 weights: f16 scale + 16 bytes of 4-bit values        (18 bytes)
  q4_1,  // 32 weights: f16 scale, f16 min + 16 bytes of nibbles    (20 bytes)
  q4_k,  // 256 weights: 8 sub-blocks with 6-bit scales and mins    (144 bytes)
  q6_k,  // 256 weights: 6-bit values, 16 int8 sub-block scales     (210 bytes)
  q8_k,  // 256 activations: f32 scale, 256 int8, 16 int16 sums     (292 bytes)
  q8_1,  // 32 activations: f16 scale, f16 scale × Σ codes, 32 int8 (36 bytes)
};
inline constexpr DType kAllDTypes[] = {DType::f32,  DType::f16,  DType::bf16, DType::i32, DType::q8_0,
                                       DType::q4_0, DType::q4_1, DType::q4_k, DType::q6_k, DType::q8_k,
                                       DType::q8_1};

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
inline bool is_quantized(DType type) { return type >= DType::q8_0; }

}  // namespace ember
