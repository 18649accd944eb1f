#include "cpu/reduce.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <vector>

#include "cpu/threads.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::max_relative_error;
using testing::poisoned;
using testing::SeededRng;

constexpr ReduceOp kAllOps[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::mean};

std::vector<float> reference_reduce(ReduceOp op, const std::vector<float>& x, int64_t outer, int64_t axis_length,
                                    int64_t inner) {
  std::vector<float> y(outer * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      double sum = 0.0;
      double largest = -std::numeric_limits<double>::infinity();
      for (int64_t a = 0; a < axis_length; ++a) {
        const double v = x[(o * axis_length + a) * inner + j];
        sum += v;
        largest = std::max(largest, v);
      }
      const double result = op == ReduceOp::sum ? sum : op == ReduceOp::max ? largest : sum / axis_length;
      y[o * inner + j] = static_cast<float>(result);
    }
  }
  return y;
}

void expect_reduce_matches(SeededRng& rng, int64_t outer, int64_t axis_length, int64_t inner) {
  const std::vector<float> x = rng.uniform(outer * axis_length * inner);
  for (ReduceOp op : kAllOps) {
    std::vector<float> y = poisoned(outer * inner);
    reduce(op, x.data(), outer, axis_length, inner, y.data());
    // Both accumulate in double, in different orders: only the final rounding to float
    // differs, so 1e-6 relative (1e-3 absolute floor for sums that cancel near zero).
    EXPECT_LE(max_relative_error(y, reference_reduce(op, x, outer, axis_length, inner)), 1e-6)
        << "op " << static_cast<int>(op) << " shape [" << outer << ", " << axis_length << ", " << inner << "]";
  }
}

TEST(Reduce, FirstMiddleAndLastAxisOfA3dTensor) {
  SeededRng rng;
  const int64_t d0 = 7, d1 = 37, d2 = 129;
  expect_reduce_matches(rng, 1, d0, d1 * d2);  // first axis
  expect_reduce_matches(rng, d0, d1, d2);      // middle axis
  expect_reduce_matches(rng, d0 * d1, d2, 1);  // last axis
}

TEST(Reduce, SmallAndDegenerateShapes) {
  SeededRng rng;
  expect_reduce_matches(rng, 1, 1, 1);
  expect_reduce_matches(rng, 3, 1, 7);
  expect_reduce_matches(rng, 1, 7, 1);
  expect_reduce_matches(rng, 3, 7, 1);
}

TEST(Reduce, WideInnerAxisAcrossChunkBoundaries) {
  SeededRng rng;
  expect_reduce_matches(rng, 2, 4099, 515);  // two axis chunks, two column blocks
  expect_reduce_matches(rng, 1, 8193, 3);
}

TEST(Reduce, MaxFindsAPlantedPeak) {
  SeededRng rng;
  const int64_t axis_length = 100003;
  std::vector<float> x = rng.uniform(3 * axis_length);
  const int64_t peak = rng.integer(0, axis_length - 1);
  x[axis_length + peak] = 7.5f;
  std::vector<float> y = poisoned(3);
  reduce(ReduceOp::max, x.data(), 3, axis_length, 1, y.data());
  EXPECT_EQ(y[1], 7.5f);  // exact: max does no arithmetic
  EXPECT_LE(y[0], 1.0f);
  EXPECT_LE(y[2], 1.0f);
}

TEST(Reduce, LongAxisIsIdenticalOnOneAndTwoThreads) {
  SeededRng rng;
  struct Shape {
    int64_t outer, axis_length, inner;
  };
  for (const Shape& shape : {Shape{3, 100003, 1}, Shape{1, 250007, 1}, Shape{2, 100003, 5}}) {
    const std::vector<float> x = rng.uniform(shape.outer * shape.axis_length * shape.inner);
    for (ReduceOp op : kAllOps) {
      std::vector<float> one = poisoned(shape.outer * shape.inner);
      std::vector<float> two = poisoned(shape.outer * shape.inner);
      set_threads(1);
      reduce(op, x.data(), shape.outer, shape.axis_length, shape.inner, one.data());
      set_threads(2);
      reduce(op, x.data(), shape.outer, shape.axis_length, shape.inner, two.data());
      set_threads(0);
      EXPECT_EQ(one, two) << "op " << static_cast<int>(op);  // bit-identical
      const auto expected = reference_reduce(op, x, shape.outer, shape.axis_length, shape.inner);
      // Double accumulation either way: 1e-6 relative, 1e-3 floor for sums near zero.
      EXPECT_LE(max_relative_error(one, expected), 1e-6) << "op " << static_cast<int>(op);
    }
  }
}

TEST(Reduce, LongAxisWithCancellationIsIdenticalOnOneAndTwoThreads) {
  SeededRng rng;
  // Huge values of both signs swallow the small ones in whichever partial they land, so
  // any change in how the axis is split changes the sum even in double precision.
  const int64_t axis_length = 300007;
  std::vector<float> x = rng.uniform(axis_length);
  for (int k = 0; k < 8; ++k) x[rng.integer(0, axis_length - 1)] = (k % 2 ? -1.0f : 1.0f) * 1e20f;
  for (ReduceOp op : kAllOps) {
    float one = std::numeric_limits<float>::quiet_NaN();
    float two = std::numeric_limits<float>::quiet_NaN();
    set_threads(1);
    reduce(op, x.data(), 1, axis_length, 1, &one);
    set_threads(2);
    reduce(op, x.data(), 1, axis_length, 1, &two);
    set_threads(0);
    // bit-identical
    EXPECT_EQ(std::bit_cast<uint32_t>(one), std::bit_cast<uint32_t>(two)) << "op " << static_cast<int>(op);
  }
}

TEST(Reduce, LongSumKeepsFloatPrecision) {
  SeededRng rng;
  // A float running sum of a million 0.1s drifts by ~1e-2 relative; the two-stage sum must not.
  const int64_t axis_length = (1 << 20) + 1;
  const float value = rng.uniform(1, 0.05f, 0.15f)[0];
  const std::vector<float> x(axis_length, value);
  float sum = std::numeric_limits<float>::quiet_NaN();
  float mean = std::numeric_limits<float>::quiet_NaN();
  reduce(ReduceOp::sum, x.data(), 1, axis_length, 1, &sum);
  reduce(ReduceOp::mean, x.data(), 1, axis_length, 1, &mean);
  const double exact_sum = static_cast<double>(value) * axis_length;
  EXPECT_NEAR(sum, exact_sum, exact_sum * 1e-7);  // one float rounding of an exact sum: 6e-8 relative
  EXPECT_NEAR(mean, value, value * 1e-7);         // likewise
}

}  // namespace
}  // namespace ember::cpu
