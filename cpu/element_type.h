// The storage types CPU kernels accept for weights, tables and caches. Activations are
// always f32. (cpu/ does not depend on core/, so it has its own small enum.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/block_formats.h"

namespace ember::cpu {

// q8_0 is GGUF's block format (quant::BlockQ8_0: 32 int8 values and an f16 scale in 34
// bytes); only attention's KV cache accepts it.
enum class ElementType : uint8_t { f32, f16, bf16, q8_0 };

// Bytes per element of the plain types. q8_0 has no per-element size, so it answers 0:
// size its rows with element_row_bytes.
inline size_t element_bytes(ElementType type) {
  switch (type) {
    case ElementType::f32: return 4;
    case ElementType::f16:
    case ElementType::bf16: return 2;
    case ElementType::q8_0: return 0;
  }
  return 0;
}

// Bytes of a row of `elements` values; for q8_0 the caller checks elements % 32 == 0.
inline int64_t element_row_bytes(ElementType type, int64_t elements) {
  return type == ElementType::q8_0 ? elements / quant::kQK8_0 * static_cast<int64_t>(sizeof(quant::BlockQ8_0))
                                   : elements * static_cast<int64_t>(element_bytes(type));
}

}  // namespace ember::cpu
