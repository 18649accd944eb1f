#include "cpu/matmul.h"

#include <algorithm>
#include <cstdint>

#include "cpu/isa.h"
#include "cpu/row_split.h"
#include "cpu/threads.h"
#include "cpu/x86/gemv_kernels.h"
#include "quant/convert.h"

namespace ember::cpu {
namespace {

// Rows one kernel call takes: about a quarter of a core's L2 of weights, in a multiple of
// the 4 rows the SIMD kernels share each load of x across.
constexpr int64_t kChunkBytes = 256 * 1024;
constexpr int64_t kRowGroup = 4;
// Below this many weight bytes a parallel region costs more than it saves.
constexpr int64_t kParallelBytes = 128 * 1024;

// Independent partial sums in a fixed-size array: no reassociation is needed to keep them
// in one vector register, so the compiler vectorises the loop while the order of every
// addition stays fixed.
constexpr int64_t kScalarLanes = 16;
// 16-bit weights are widened in blocks this long (a stack buffer) before the dot product.
constexpr int64_t kWidenBlock = 256;

void accumulate(const float* w, const float* x, int64_t count, float (&lanes)[kScalarLanes], float& tail) {
  int64_t i = 0;
  for (; i + kScalarLanes <= count; i += kScalarLanes)
    for (int64_t lane = 0; lane < kScalarLanes; ++lane) lanes[lane] += w[i + lane] * x[i + lane];
  for (; i < count; ++i) tail += w[i] * x[i];
}

float finish(const float (&lanes)[kScalarLanes], float tail) {
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum + tail;
}

float dot_f32(const float* w, const float* x, int64_t in) {
  float lanes[kScalarLanes] = {};
  float tail = 0.0f;
  accumulate(w, x, in, lanes, tail);
  return finish(lanes, tail);
}

template <void (*kWiden)(const uint16_t*, float*, int64_t)>
float dot_16bit(const uint16_t* w, const float* x, int64_t in) {
  float lanes[kScalarLanes] = {};
  float tail = 0.0f;
  float widened[kWidenBlock];
  for (int64_t start = 0; start < in; start += kWidenBlock) {
    const int64_t count = std::min(kWidenBlock, in - start);
    kWiden(w + start, widened, count);
    accumulate(widened, x + start, count, lanes, tail);
  }
  return finish(lanes, tail);
}

void gemv_rows_scalar(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x,
                      float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    switch (weight_type) {
      case ElementType::f32: y[r] = dot_f32(static_cast<const float*>(weight) + r * in, x, in); break;
      case ElementType::f16:
        y[r] = dot_16bit<quant::f16_to_f32_row>(static_cast<const uint16_t*>(weight) + r * in, x, in);
        break;
      case ElementType::bf16:
        y[r] = dot_16bit<quant::bf16_to_f32_row>(static_cast<const uint16_t*>(weight) + r * in, x, in);
        break;
      default:  // block types go through quantized_matmul
        break;
    }
  }
}

using RowsKernel = void (*)(ElementType, const void*, int64_t, int64_t, const float*, float*);

RowsKernel kernel_for(Isa isa) {
  if (has_avx512(isa)) return x86::gemv_rows_avx512;
  if (has_avx2(isa)) return x86::gemv_rows_avx2;
  return gemv_rows_scalar;
}

}  // namespace

void gemv_group(const float* x, int64_t in_features, std::span<const LinearOfX> products) {
  if (products.empty()) return;
  if (in_features <= 0) {
    for (const LinearOfX& product : products) std::fill(product.y, product.y + std::max<int64_t>(0, product.out_features), 0.0f);
    return;
  }
  constexpr size_t kMostProducts = 4;
  RowShare shares[kMostProducts];
  const size_t count = std::min(products.size(), kMostProducts);
  int64_t total_bytes = 0;
  for (size_t p = 0; p < count; ++p) {
    const int64_t row_bytes = in_features * static_cast<int64_t>(element_bytes(products[p].weight_type));
    shares[p] = {products[p].out_features, row_bytes, rows_for_bytes(kChunkBytes, row_bytes, kRowGroup)};
    total_bytes += std::max<int64_t>(0, products[p].out_features) * row_bytes;
  }
  const RowsKernel kernel = kernel_for(active_isa());
  // Every row is summed by one call in a fixed order, so neither the split nor the thread
  // count changes any result.
  for_each_row_share(std::span<const RowShare>(shares, count), kRowGroup, total_bytes >= kParallelBytes,
                     [&](size_t p, int64_t first_row, int64_t rows) {
                       const LinearOfX& product = products[p];
                       kernel(product.weight_type,
                              static_cast<const char*>(product.weight) + first_row * shares[p].row_bytes, rows,
                              in_features, x, product.y + first_row);
                     });
  if (products.size() > kMostProducts) gemv_group(x, in_features, products.subspan(kMostProducts));
}

void gemv(const void* weight, ElementType weight_type, int64_t out_features, int64_t in_features, const float* x,
          float* y) {
  if (out_features <= 0) return;
  const LinearOfX product = LinearOfX::product(weight, weight_type, y, out_features);
  gemv_group(x, in_features, std::span<const LinearOfX>(&product, 1));
}

}  // namespace ember::cpu
