#include "cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/fast_math.h"
#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;

// out[c] = softmax(scale * in)[c] over the first `count` entries; out may alias in.
void softmax_row(const float* in, float* out, int64_t count, float scale) {
  if (count == 0) return;
  // The max of the scaled values, not scale * max, so a negative scale stays correct.
  float largest = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : largest)
  for (int64_t c = 0; c < count; ++c) largest = std::max(largest, scale * in[c]);

  // A double total keeps long rows (tens of thousands of keys) summing to 1 in float.
#pragma omp simd
  for (int64_t c = 0; c < count; ++c) out[c] = fast_exp(scale * in[c] - largest);
  double total = 0.0;
#pragma omp simd reduction(+ : total)
  for (int64_t c = 0; c < count; ++c) total += out[c];
  const float inverse = static_cast<float>(1.0 / total);
#pragma omp simd
  for (int64_t c = 0; c < count; ++c) out[c] *= inverse;
}

}  // namespace

void softmax(const float* x, float* y, int64_t rows, int64_t cols, float scale, CausalMask mask) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t visible = cols;
    if (mask.enabled) {
      const int64_t position = mask.position_offset + r % mask.query_rows;
      visible = std::clamp<int64_t>(position + 1, 0, cols);
    }
    float* out = y + r * cols;
    softmax_row(x + r * cols, out, visible, scale);
    std::fill(out + visible, out + cols, 0.0f);
  }
}

}  // namespace ember::cpu
