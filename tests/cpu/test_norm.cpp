#include "cpu/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::max_relative_error;
using testing::poisoned;
using testing::SeededRng;

std::vector<float> reference_rms_norm(const std::vector<float>& x, const float* weight, int64_t rows, int64_t cols,
                                      float eps) {
  std::vector<float> y(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double sum_squares = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum_squares += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
    const double rms = std::sqrt(sum_squares / cols + eps);
    for (int64_t c = 0; c < cols; ++c) {
      const double w = weight ? weight[c] : 1.0;
      y[r * cols + c] = static_cast<float>(x[r * cols + c] / rms * w);
    }
  }
  return y;
}

std::vector<float> reference_layer_norm(const std::vector<float>& x, const float* weight, const float* bias,
                                        int64_t rows, int64_t cols, float eps) {
  std::vector<float> y(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += x[r * cols + c];
    const double mean = sum / cols;
    double sum_squares = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum_squares += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
    const double std_dev = std::sqrt(sum_squares / cols + eps);
    for (int64_t c = 0; c < cols; ++c) {
      const double w = weight ? weight[c] : 1.0;
      const double b = bias ? bias[c] : 0.0;
      y[r * cols + c] = static_cast<float>((x[r * cols + c] - mean) / std_dev * w + b);
    }
  }
  return y;
}

struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{1, 1}, {3, 7}, {37, 129}, {7, 4099}};

TEST(RmsNorm, MatchesReferenceWithAndWithoutWeight) {
  SeededRng rng;
  for (const Shape& shape : kShapes) {
    const std::vector<float> x = rng.normal(shape.rows * shape.cols, 2.0f);
    const std::vector<float> weight = rng.uniform(shape.cols, 0.5f, 1.5f);
    for (const float* w : {static_cast<const float*>(nullptr), weight.data()}) {
      std::vector<float> y = poisoned(x.size());
      rms_norm(x.data(), w, y.data(), shape.rows, shape.cols, 1e-6f);
      // Two or three float multiplies against a double reference: 1e-6 relative
      // (purely multiplicative, so no floor is needed; 1e-9 keeps exact zeros fine).
      EXPECT_LE(max_relative_error(y, reference_rms_norm(x, w, shape.rows, shape.cols, 1e-6f), 1e-9), 1e-6)
          << "weight " << (w != nullptr) << " shape " << shape.rows << "x" << shape.cols;
    }
  }
}

TEST(RmsNorm, EpsilonMatters) {
  SeededRng rng;
  const int64_t cols = 37;
  const std::vector<float> x = rng.uniform(cols, -1e-3f, 1e-3f);  // mean square ~3e-7, near eps
  std::vector<float> y = poisoned(cols);
  rms_norm(x.data(), nullptr, y.data(), 1, cols, 1e-6f);
  // As above: 1e-6 relative.
  EXPECT_LE(max_relative_error(y, reference_rms_norm(x, nullptr, 1, cols, 1e-6f), 1e-9), 1e-6);
}

TEST(LayerNorm, MatchesReferenceForEveryWeightAndBiasCombination) {
  SeededRng rng;
  for (const Shape& shape : kShapes) {
    const std::vector<float> x = rng.normal(shape.rows * shape.cols, 2.0f);
    const std::vector<float> weight = rng.uniform(shape.cols, 0.5f, 1.5f);
    const std::vector<float> bias = rng.uniform(shape.cols);
    for (const float* w : {static_cast<const float*>(nullptr), weight.data()}) {
      for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
        std::vector<float> y = poisoned(x.size());
        layer_norm(x.data(), w, b, y.data(), shape.rows, shape.cols, 1e-5f);
        // Normalised in double, then a float multiply and add: three roundings, 1e-6
        // relative. The floor of 1 (|bias| ≤ 1) covers values the bias cancels to near zero.
        EXPECT_LE(max_relative_error(y, reference_layer_norm(x, w, b, shape.rows, shape.cols, 1e-5f), 1.0), 1e-6)
            << "weight " << (w != nullptr) << " bias " << (b != nullptr) << " shape " << shape.rows << "x"
            << shape.cols;
      }
    }
  }
}

TEST(LayerNorm, LargeMeanSmallSpread) {
  SeededRng rng;
  const int64_t rows = 7, cols = 1001;
  std::vector<float> x = rng.normal(rows * cols, 0.01f);
  for (float& v : x) v += 1000.0f;  // E[x²] - mean² would cancel away every digit here
  std::vector<float> y = poisoned(x.size());
  layer_norm(x.data(), nullptr, nullptr, y.data(), rows, cols, 1e-12f);
  // Centred and scaled in double, one final rounding: 1e-6 relative, 1e-3 floor.
  EXPECT_LE(max_relative_error(y, reference_layer_norm(x, nullptr, nullptr, rows, cols, 1e-12f)), 1e-6);
}

TEST(Norm, InPlaceEqualsOutOfPlace) {
  SeededRng rng;
  const int64_t rows = 37, cols = 1001;
  const std::vector<float> weight = rng.uniform(cols, 0.5f, 1.5f);
  const std::vector<float> bias = rng.uniform(cols);
  std::vector<float> x = rng.normal(rows * cols);
  std::vector<float> y = poisoned(x.size());
  rms_norm(x.data(), weight.data(), y.data(), rows, cols, 1e-6f);
  std::vector<float> in_place = x;
  rms_norm(in_place.data(), weight.data(), in_place.data(), rows, cols, 1e-6f);
  EXPECT_EQ(in_place, y);  // bit-identical
  layer_norm(x.data(), weight.data(), bias.data(), y.data(), rows, cols, 1e-5f);
  layer_norm(x.data(), weight.data(), bias.data(), x.data(), rows, cols, 1e-5f);
  EXPECT_EQ(x, y);  // bit-identical
}

}  // namespace
}  // namespace ember::cpu
