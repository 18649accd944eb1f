#include "cpu/softmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::max_relative_error;
using testing::poisoned;
using testing::SeededRng;

// Keys row r may see: all of them, or up to its query's position under a causal mask.
int64_t visible_keys(int64_t r, int64_t cols, const CausalMask& mask) {
  if (!mask.enabled) return cols;
  return std::clamp<int64_t>(mask.position_offset + r % mask.query_rows + 1, 0, cols);
}

std::vector<float> reference_softmax(const std::vector<float>& x, int64_t rows, int64_t cols, float scale,
                                     const CausalMask& mask = {}) {
  std::vector<float> y(rows * cols, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t visible = visible_keys(r, cols, mask);
    double largest = -INFINITY;
    for (int64_t c = 0; c < visible; ++c) largest = std::max(largest, static_cast<double>(scale) * x[r * cols + c]);
    double total = 0.0;
    for (int64_t c = 0; c < visible; ++c) total += std::exp(static_cast<double>(scale) * x[r * cols + c] - largest);
    for (int64_t c = 0; c < visible; ++c) {
      y[r * cols + c] = static_cast<float>(std::exp(static_cast<double>(scale) * x[r * cols + c] - largest) / total);
    }
  }
  return y;
}

void expect_rows_sum_to_one(const std::vector<float>& y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0.0;
    for (int64_t c = 0; c < cols; ++c) total += y[r * cols + c];
    EXPECT_NEAR(total, 1.0, 1e-5) << "row " << r;  // each entry within a few float ulps of exact
  }
}

TEST(Softmax, MatchesReferenceWithAndWithoutScale) {
  SeededRng rng;
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape& shape : {Shape{1, 1}, Shape{3, 7}, Shape{37, 129}, Shape{129, 1001}}) {
    const std::vector<float> x = rng.normal(shape.rows * shape.cols, 3.0f);
    for (float scale : {1.0f, 0.125f, -0.7f}) {
      std::vector<float> y = poisoned(x.size());
      softmax(x.data(), y.data(), shape.rows, shape.cols, scale);
      // Float scaling and expf against a double reference, |scale * x| up to ~15:
      // 1e-5 relative, with a 1e-7 floor for vanishing probabilities.
      EXPECT_LE(max_relative_error(y, reference_softmax(x, shape.rows, shape.cols, scale), 1e-7), 1e-5)
          << "scale " << scale << " shape " << shape.rows << "x" << shape.cols;
      expect_rows_sum_to_one(y, shape.rows, shape.cols);
    }
  }
}

TEST(Softmax, LargeInputsDoNotOverflow) {
  SeededRng rng;
  const int64_t rows = 7, cols = 1001;
  std::vector<float> x = rng.uniform(rows * cols, 990.0f, 1010.0f);
  std::fill(x.begin(), x.begin() + cols, 1000.0f);  // a flat row must come out uniform
  std::vector<float> y = poisoned(x.size());
  softmax(x.data(), y.data(), rows, cols, 1.0f);
  for (int64_t c = 0; c < cols; ++c) EXPECT_FLOAT_EQ(y[c], 1.0f / cols);  // within 4 ulps
  // exp(1000) overflows float and double alike; only the max-subtracted form is finite.
  EXPECT_LE(max_relative_error(y, reference_softmax(x, rows, cols, 1.0f), 1e-7), 1e-5);  // as above, |x - max| ≤ 20
  expect_rows_sum_to_one(y, rows, cols);
}

TEST(Softmax, CausalMaskZeroesFutureKeysExactly) {
  SeededRng rng;
  struct Case {
    int64_t heads, query_rows, position_offset, cols;
  };
  // Prefill (keys = offset + queries), decode (one query), and a key window wider or
  // narrower than the positions reach.
  for (const Case& c : {Case{3, 7, 0, 7}, Case{2, 13, 24, 37}, Case{5, 1, 36, 37}, Case{3, 7, 3, 37},
                        Case{2, 9, 40, 37}, Case{4, 37, 0, 37}}) {
    const int64_t rows = c.heads * c.query_rows;
    const CausalMask mask{true, c.query_rows, c.position_offset};
    const std::vector<float> x = rng.normal(rows * c.cols, 2.0f);
    for (float scale : {1.0f, 0.3f}) {
      std::vector<float> y = poisoned(x.size());
      softmax(x.data(), y.data(), rows, c.cols, scale, mask);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t visible = visible_keys(r, c.cols, mask);
        for (int64_t k = 0; k < c.cols; ++k) {
          if (k < visible) {
            EXPECT_GT(y[r * c.cols + k], 0.0f) << "row " << r << " key " << k;
          } else {
            EXPECT_EQ(y[r * c.cols + k], 0.0f) << "row " << r << " key " << k;  // exactly 0
          }
        }
      }
      // As in the unmasked test: 1e-5 relative, 1e-7 floor.
      EXPECT_LE(max_relative_error(y, reference_softmax(x, rows, c.cols, scale, mask), 1e-7), 1e-5);
      expect_rows_sum_to_one(y, rows, c.cols);
    }
  }
}

TEST(Softmax, InPlaceEqualsOutOfPlace) {
  SeededRng rng;
  const int64_t query_rows = 37, rows = 3 * query_rows, cols = 301;
  const CausalMask mask{true, query_rows, cols - query_rows};
  for (const CausalMask& m : {CausalMask{}, mask}) {
    std::vector<float> x = rng.normal(rows * cols, 2.0f);
    std::vector<float> y = poisoned(x.size());
    softmax(x.data(), y.data(), rows, cols, 0.5f, m);
    softmax(x.data(), x.data(), rows, cols, 0.5f, m);
    EXPECT_EQ(x, y);  // bit-identical: same arithmetic, aliasing must not change it
  }
}

}  // namespace
}  // namespace ember::cpu
