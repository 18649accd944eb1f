#include "cpu/embedding.h"

#include <cstddef>
#include <cstring>

#include "cpu/threads.h"
#include "quant/convert.h"
#include "quant/quantize.h"

namespace ember::cpu {
namespace {

// Below this many output elements forking threads costs more than the copying itself.
constexpr int64_t kMinParallelWork = 16384;

}  // namespace

void embedding(const void* table, ElementType table_type, int64_t cols, const int32_t* ids, int64_t count,
               float* out) {
  const auto* bytes = static_cast<const std::byte*>(table);
  const int64_t row_bytes = element_row_bytes(table_type, cols);
#pragma omp parallel for num_threads(threads()) schedule(static) if (count * cols >= kMinParallelWork)
  for (int64_t i = 0; i < count; ++i) {
    const std::byte* row = bytes + static_cast<int64_t>(ids[i]) * row_bytes;
    float* destination = out + i * cols;
    switch (table_type) {
      case ElementType::f32:
        std::memcpy(destination, row, static_cast<size_t>(cols) * sizeof(float));
        break;
      case ElementType::f16:
        quant::f16_to_f32_row(reinterpret_cast<const uint16_t*>(row), destination, cols);
        break;
      case ElementType::bf16:
        quant::bf16_to_f32_row(reinterpret_cast<const uint16_t*>(row), destination, cols);
        break;
      default: quant::dequantize_row(to_dtype(table_type), row, destination, cols); break;
    }
  }
}

}  // namespace ember::cpu
