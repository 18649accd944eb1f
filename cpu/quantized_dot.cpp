#include "cpu/quantized_dot.h"

#include "cpu/dot_blocks32.h"
#include "cpu/dot_kquants.h"

namespace ember::cpu {

DType activation_dtype(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q4_1: return DType::q8_1;
    case ElementType::q4_k:
    case ElementType::q6_k: return DType::q8_k;
    default: return DType::q8_0;
  }
}

QuantizedTile quantized_tile(ElementType weight_type, Isa isa) {
  switch (weight_type) {
    case ElementType::q8_0:
    case ElementType::q4_0:
    case ElementType::q4_1: return blocks32_tile(weight_type, isa);
    case ElementType::q4_k:
    case ElementType::q6_k: return kquants_tile(weight_type, isa);
    default: return nullptr;
  }
}

}  // namespace ember::cpu
