// The storage types CPU kernels accept for weights, tables and caches. Activations are
// always f32. (cpu/ does not depend on core/, so it has its own small enum.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember::cpu {

enum class ElementType : uint8_t { f32, f16, bf16 };

inline size_t element_bytes(ElementType type) { return type == ElementType::f32 ? 4 : 2; }

}  // namespace ember::cpu
