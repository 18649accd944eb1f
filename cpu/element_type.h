// The storage types CPU kernels accept for weights, tables and caches. Activations are
// always f32. (cpu/ does not depend on core/, so it has its own small enum.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/dtype.h"
#include "quant/block_formats.h"

namespace ember::cpu {

// The block types are GGUF's (quant/block_formats.h). Linear weights and embedding tables
// take every type; attention's KV cache takes f32, f16 and q8_0.
enum class ElementType : uint8_t { f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q6_k };

inline bool is_block_quantized(ElementType type) { return type >= ElementType::q8_0; }

// Bytes per element of the plain types; 0 for the block types: size their rows with
// element_row_bytes.
inline size_t element_bytes(ElementType type) {
  switch (type) {
    case ElementType::f32: return 4;
    case ElementType::f16:
    case ElementType::bf16: return 2;
    default: return 0;
  }
}

// Elements per block: 1 for the plain types.
inline int64_t block_elements(ElementType type) {
  switch (type) {
    case ElementType::q8_0: return quant::kQK8_0;
    case ElementType::q4_0: return quant::kQK4_0;
    case ElementType::q4_1: return quant::kQK4_1;
    case ElementType::q4_k:
    case ElementType::q6_k: return quant::kQK_K;
    default: return 1;
  }
}

inline int64_t block_bytes(ElementType type) {
  switch (type) {
    case ElementType::q8_0: return sizeof(quant::BlockQ8_0);
    case ElementType::q4_0: return sizeof(quant::BlockQ4_0);
    case ElementType::q4_1: return sizeof(quant::BlockQ4_1);
    case ElementType::q4_k: return sizeof(quant::BlockQ4_K);
    case ElementType::q6_k: return sizeof(quant::BlockQ6_K);
    default: return static_cast<int64_t>(element_bytes(type));
  }
}

// Bytes of a row of `elements` values; for the block types the caller checks that
// elements is a multiple of block_elements.
inline int64_t element_row_bytes(ElementType type, int64_t elements) {
  return elements / block_elements(type) * block_bytes(type);
}

// The matching tensor type, for quant/'s row converters.
inline DType to_dtype(ElementType type) {
  switch (type) {
    case ElementType::f32: return DType::f32;
    case ElementType::f16: return DType::f16;
    case ElementType::bf16: return DType::bf16;
    case ElementType::q8_0: return DType::q8_0;
    case ElementType::q4_0: return DType::q4_0;
    case ElementType::q4_1: return DType::q4_1;
    case ElementType::q4_k: return DType::q4_k;
    case ElementType::q6_k: return DType::q6_k;
  }
  return DType::f32;
}

}  // namespace ember::cpu
