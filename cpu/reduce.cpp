#include "cpu/reduce.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many input elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;
// Axis elements per first-stage partial. A constant rather than a share of the threads,
// so the summation order, and with it every bit of the result, depends only on the shape.
constexpr int64_t kChunk = 4096;
// Output columns accumulated side by side when the reduced axis is not the last one:
// 4 KiB of double accumulators, which stay in L1 while the chunk streams past.
constexpr int64_t kColumnBlock = 512;

double identity(bool take_max) { return take_max ? -std::numeric_limits<double>::infinity() : 0.0; }

// Accumulating in double keeps a 100k-element sum exact to float precision.
double reduce_contiguous(bool take_max, const float* x, int64_t count) {
  double result = identity(take_max);
  if (take_max) {
#pragma omp simd reduction(max : result)
    for (int64_t i = 0; i < count; ++i) result = std::max(result, static_cast<double>(x[i]));
  } else {
#pragma omp simd reduction(+ : result)
    for (int64_t i = 0; i < count; ++i) result += x[i];
  }
  return result;
}

// acc[j] = op over r < rows of x[r * stride + j], for j < width. Walking the rows and
// vectorising across columns reads memory in order instead of striding down each column.
void reduce_columns(bool take_max, const float* x, int64_t rows, int64_t stride, int64_t width, double* acc) {
  std::fill(acc, acc + width, identity(take_max));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * stride;
    if (take_max) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) acc[j] = std::max(acc[j], static_cast<double>(row[j]));
    } else {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) acc[j] += row[j];
    }
  }
}

float finish(ReduceOp op, double value, int64_t axis_length) {
  return static_cast<float>(op == ReduceOp::mean ? value / static_cast<double>(axis_length) : value);
}

}  // namespace

void reduce(ReduceOp op, const float* x, int64_t outer, int64_t axis_length, int64_t inner, float* y) {
  const bool take_max = op == ReduceOp::max;
  const int64_t chunks = std::max<int64_t>(1, (axis_length + kChunk - 1) / kChunk);
  const int64_t column_blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  const int64_t items = outer * chunks * column_blocks;
  // Only a multi-chunk axis has a second stage; its partials are laid out [outer, chunks, inner].
  std::vector<double> partials(chunks > 1 ? outer * chunks * inner : 0);

  // Every (outer, chunk, column block) item is computed the same way whichever thread
  // takes it, which is what makes the result independent of the thread count.
#pragma omp parallel for num_threads(threads()) schedule(static) if (outer * axis_length * inner >= kMinParallelWork)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t block = item % column_blocks;
    const int64_t chunk = item / column_blocks % chunks;
    const int64_t o = item / (column_blocks * chunks);
    const int64_t axis_begin = chunk * kChunk;
    const int64_t axis_count = std::min(kChunk, axis_length - axis_begin);
    const int64_t column_begin = block * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - column_begin);
    const float* start = x + (o * axis_length + axis_begin) * inner + column_begin;

    double acc[kColumnBlock];
    if (inner == 1) {
      acc[0] = reduce_contiguous(take_max, start, axis_count);
    } else {
      reduce_columns(take_max, start, axis_count, inner, width, acc);
    }
    if (chunks == 1) {
      float* out = y + o * inner + column_begin;
      for (int64_t j = 0; j < width; ++j) out[j] = finish(op, acc[j], axis_length);
    } else {
      double* out = partials.data() + (o * chunks + chunk) * inner + column_begin;
      std::copy(acc, acc + width, out);
    }
  }
  if (chunks == 1) return;

  const int64_t outputs = outer * inner;
#pragma omp parallel for num_threads(threads()) schedule(static) if (outputs * chunks >= kMinParallelWork)
  for (int64_t index = 0; index < outputs; ++index) {
    const double* column = partials.data() + index / inner * chunks * inner + index % inner;
    double total = identity(take_max);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const double partial = column[chunk * inner];
      total = take_max ? std::max(total, partial) : total + partial;
    }
    y[index] = finish(op, total, axis_length);
  }
}

}  // namespace ember::cpu
