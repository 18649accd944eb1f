#include "ember/dtype.h"

namespace ember {

std::string_view dtype_name(DType type) {
  switch (type) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::q8_0: return "q8_0";
    case DType::q4_0: return "q4_0";
    case DType::q4_1: return "q4_1";
    case DType::q4_k: return "q4_k";
    case DType::q6_k: return "q6_k";
    case DType::q8_k: return "q8_k";
    case DType::q8_1: return "q8_1";
  }
  return "unknown";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType type : kAllDTypes)
    if (dtype_name(type) == name) return type;
  return std::nullopt;
}

int64_t block_elements(DType type) {
  switch (type) {
    case DType::q8_0: case DType::q4_0: case DType::q4_1: case DType::q8_1: return 32;
    case DType::q4_k: case DType::q6_k: case DType::q8_k: return 256;
    default: return 1;
  }
}

int64_t block_bytes(DType type) {
  switch (type) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::q8_0: return 34;
    case DType::q4_0: return 18;
    case DType::q4_1: return 20;
    case DType::q4_k: return 144;
    case DType::q6_k: return 210;
    case DType::q8_k: return 292;
    case DType::q8_1: return 36;
  }
  return 0;
}

}  // namespace ember
