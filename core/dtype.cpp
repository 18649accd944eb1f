#include "ember/dtype.h"

namespace ember {

std::string_view dtype_name(DType type) {
  switch (type) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "unknown";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType type : {DType::f32, DType::f16, DType::bf16, DType::i32})
    if (dtype_name(type) == name) return type;
  return std::nullopt;
}

int64_t block_elements(DType) { return 1; }

int64_t block_bytes(DType type) {
  switch (type) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

}  // namespace ember
