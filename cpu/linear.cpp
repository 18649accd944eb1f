#include "cpu/matmul.h"

#include <algorithm>
#include <cstdint>

#include "cpu/activation.h"
#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// The epilogue walks the output in tiles of one row segment, so a few wide rows still
// split across threads.
constexpr int64_t kTileColumns = 2048;
// Below this many outputs a parallel region costs more than the epilogue itself.
constexpr int64_t kParallelOutputs = 16 * 1024;

// The activation is a template parameter so its switch leaves the inner loop and the
// simple cases (none, relu) vectorise.
template <Activation kAct, bool kHasBias>
void epilogue_tile(const float* bias, float* y, int64_t columns) {
#pragma omp simd
  for (int64_t j = 0; j < columns; ++j) {
    const float value = kHasBias ? y[j] + bias[j] : y[j];
    y[j] = activate(kAct, value);
  }
}

template <Activation kAct, bool kHasBias>
void epilogue_pass(const float* bias, float* y, int64_t rows, int64_t columns) {
  const int64_t tiles_per_row = (columns + kTileColumns - 1) / kTileColumns;
  const int64_t tiles = rows * tiles_per_row;
#pragma omp parallel for num_threads(threads()) schedule(static) if (rows * columns >= kParallelOutputs)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t row = tile / tiles_per_row;
    const int64_t first = tile % tiles_per_row * kTileColumns;
    const int64_t count = std::min(kTileColumns, columns - first);
    epilogue_tile<kAct, kHasBias>(bias + (kHasBias ? first : 0), y + row * columns + first, count);
  }
}

template <Activation kAct>
void epilogue(const float* bias, float* y, int64_t rows, int64_t columns) {
  if (bias != nullptr) {
    epilogue_pass<kAct, true>(bias, y, rows, columns);
  } else if (kAct != Activation::none) {
    epilogue_pass<kAct, false>(bias, y, rows, columns);
  }
}

// One in-place pass over y, whatever of bias and activation there is.
void apply_bias_activation(Activation act, const float* bias, float* y, int64_t rows, int64_t columns) {
  switch (act) {
    case Activation::none: return epilogue<Activation::none>(bias, y, rows, columns);
    case Activation::relu: return epilogue<Activation::relu>(bias, y, rows, columns);
    case Activation::gelu_tanh: return epilogue<Activation::gelu_tanh>(bias, y, rows, columns);
    case Activation::gelu_erf: return epilogue<Activation::gelu_erf>(bias, y, rows, columns);
    case Activation::silu: return epilogue<Activation::silu>(bias, y, rows, columns);
  }
}

}  // namespace

void linear(const float* x, int64_t rows, int64_t in_features, const void* weight, ElementType weight_type,
            const float* bias, Activation act, float* y, int64_t out_features, WeightLayout layout) {
  if (rows <= 0 || out_features <= 0) return;
  if (is_block_quantized(weight_type)) {
    quantized_matmul(x, rows, in_features, weight, weight_type, y, out_features, layout);
  } else if (rows == 1) {
    gemv(weight, weight_type, out_features, in_features, x, y);
  } else {
    MatmulArgs product;
    product.a = x;
    product.lda = in_features;
    product.b = weight;
    product.b_type = weight_type;
    product.ldb = in_features;
    product.b_transposed = true;
    product.c = y;
    product.ldc = out_features;
    product.m = rows;
    product.n = out_features;
    product.k = in_features;
    matmul(product);
  }
  apply_bias_activation(act, bias, y, rows, out_features);
}

void linears_of_one_x(const float* x, int64_t rows, int64_t in_features, std::span<const LinearOfX> linears) {
  if (rows <= 0 || linears.empty()) return;
  if (is_block_quantized(linears.front().weight_type)) {
    quantized_matmul_group(x, rows, in_features, linears);
  } else {
    gemv_group(x, in_features, linears);
  }
  for (const LinearOfX& linear : linears)
    if (linear.out_features > 0) apply_bias_activation(linear.act, linear.bias, linear.y, rows, linear.out_features);
}

}  // namespace ember::cpu
