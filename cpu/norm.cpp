#include "cpu/norm.h"

#include <cmath>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;

// out *= weight, then out += bias, each skipped when null. The row is in L1 by now, so
// the extra passes are cheaper than four fused variants of the normalising loop.
void apply_weight_and_bias(const float* weight, const float* bias, float* out, int64_t cols) {
  if (weight != nullptr) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] *= weight[c];
  }
  if (bias != nullptr) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] += bias[c];
  }
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t rows, int64_t cols, float eps) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    double sum_squares = 0.0;
#pragma omp simd reduction(+ : sum_squares)
    for (int64_t c = 0; c < cols; ++c) sum_squares += static_cast<double>(in[c]) * in[c];
    const float inverse_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(cols) + eps));
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = in[c] * inverse_rms;
    apply_weight_and_bias(weight, nullptr, out, cols);
  }
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int64_t cols,
                float eps) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += in[c];
    const double mean = sum / static_cast<double>(cols);
    // Two passes (variance of the centred values) rather than E[x²] - mean², which
    // cancels catastrophically when the mean is large next to the spread.
    double sum_squares = 0.0;
#pragma omp simd reduction(+ : sum_squares)
    for (int64_t c = 0; c < cols; ++c) {
      const double centred = in[c] - mean;
      sum_squares += centred * centred;
    }
    const double inverse_std = 1.0 / std::sqrt(sum_squares / static_cast<double>(cols) + eps);
    // Centred in double: a float mean near 1000 would already be off by ~3e-5.
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>((in[c] - mean) * inverse_std);
    apply_weight_and_bias(weight, bias, out, cols);
  }
}

}  // namespace ember::cpu
