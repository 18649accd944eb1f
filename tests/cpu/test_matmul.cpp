#include "cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/threads.h"
#include "quant/bf16.h"
#include "quant/f16.h"
#include "cpu/kernel_fixtures.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::poisoned;
using testing::SeededRng;
using testing::ThreadCount;
using testing::Weights;
using testing::make_weights;
using testing::type_name;

struct Shape {
  int64_t m, n, k;
};

struct Product {
  MatmulArgs args;
  std::vector<float> a;
  Weights b;
  std::vector<float> c;
};

// Operands with leading dimensions wider than the rows unless `padding` is 0 (padding
// filled with NaN, so a kernel that reads it fails) and C poisoned everywhere.
Product make_product(SeededRng& rng, Shape shape, ElementType b_type, bool b_transposed, int64_t padding = 5) {
  Product p;
  const int64_t lda = shape.k + padding;
  const int64_t b_rows = b_transposed ? shape.n : shape.k;
  const int64_t ldb = (b_transposed ? shape.k : shape.n) + padding;
  const int64_t ldc = shape.n + padding;
  p.a = rng.uniform(shape.m * lda);
  for (int64_t i = 0; i < shape.m; ++i)
    for (int64_t p_col = shape.k; p_col < lda; ++p_col) p.a[i * lda + p_col] = NAN;
  p.b = make_weights(rng, b_type, b_rows * ldb);
  for (int64_t row = 0; row < b_rows; ++row)
    for (int64_t col = ldb - padding; col < ldb; ++col) {
      p.b.decoded[row * ldb + col] = NAN;
      if (b_type == ElementType::f32) p.b.f32[row * ldb + col] = NAN;
      if (b_type == ElementType::f16) p.b.bits[row * ldb + col] = 0x7e00;
      if (b_type == ElementType::bf16) p.b.bits[row * ldb + col] = 0x7fc0;
    }
  p.c = poisoned(shape.m * ldc);
  p.args = MatmulArgs{p.a.data(), lda, p.b.data(), b_type, ldb, b_transposed, p.c.data(), ldc,
                      shape.m,    shape.n, shape.k};
  return p;
}

float b_at(const Product& p, int64_t row, int64_t col) {
  const MatmulArgs& args = p.args;
  return args.b_transposed ? p.b.decoded[col * args.ldb + row] : p.b.decoded[row * args.ldb + col];
}

// C[i][j] = Σ_p A[i][p] · B[p][j] in double; `magnitude` gets Σ_p |A[i][p] · B[p][j]|, the
// scale of the rounding error an f32 sum may make.
void reference_matmul(const Product& p, std::vector<double>& c, std::vector<double>& magnitude) {
  const MatmulArgs& args = p.args;
  c.assign(args.m * args.n, 0.0);
  magnitude.assign(args.m * args.n, 0.0);
  for (int64_t i = 0; i < args.m; ++i)
    for (int64_t j = 0; j < args.n; ++j)
      for (int64_t q = 0; q < args.k; ++q) {
        // matmul sends one row against contiguous linear weights to the GEMV.
        const bool through_gemv = args.m == 1 && args.ldb == args.k;
        const float a = args.b_transposed
                            ? testing::activation_as_multiplied(p.a[i * args.lda + q], args.b_type, through_gemv)
                            : p.a[i * args.lda + q];
        const double term = static_cast<double>(a) * b_at(p, q, j);
        c[i * args.n + j] += term;
        magnitude[i * args.n + j] += std::fabs(term);
      }
}

void expect_matches_reference(const Product& p) {
  std::vector<double> expected, magnitude;
  reference_matmul(p, expected, magnitude);
  const MatmulArgs& args = p.args;
  for (int64_t i = 0; i < args.m; ++i) {
    for (int64_t j = 0; j < args.n; ++j) {
      // f32 sums of k products: the error stays far below 1e-5 of Σ|terms| for these k
      // (≤ 2100), while one wrong or missing term is ~1/k of it.
      const double tolerance = 1e-5 * magnitude[i * args.n + j] + 1e-30;
      ASSERT_NEAR(p.c[i * args.ldc + j], expected[i * args.n + j], tolerance) << "at C[" << i << "][" << j << "]";
    }
    for (int64_t j = args.n; j < args.ldc; ++j)
      ASSERT_TRUE(std::isnan(p.c[i * args.ldc + j])) << "padding C[" << i << "][" << j << "] was written";
  }
}

// The last shapes are wider than one widened panel of 16-bit B (3 panels, the last partial).
const Shape kShapes[] = {{1, 1, 1},      {1, 17, 33},     {3, 17, 33},    {17, 127, 3},
                         {33, 1, 127},   {2, 3, 1000},    {1, 1003, 257}, {65, 1031, 301},
                         {127, 33, 1001}, {7, 301, 2049}, {3, 600, 4099}};
constexpr Shape kMultiPanelShape{9, 600, 4099};
constexpr ElementType kTypes[] = {ElementType::f32, ElementType::f16, ElementType::bf16};

std::string describe(Shape s, ElementType type, bool transposed) {
  return "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
         " type=" + std::to_string(static_cast<int>(type)) + (transposed ? " B transposed" : " B plain");
}

TEST(Matmul, MatchesReferenceForEveryLayoutAndWeightType) {
  SeededRng rng;
  for (const Shape& shape : kShapes)
    for (ElementType type : kTypes)
      for (bool transposed : {false, true}) {
        SCOPED_TRACE(describe(shape, type, transposed));
        Product p = make_product(rng, shape, type, transposed);
        matmul(p.args);
        expect_matches_reference(p);
      }
}

// One row times contiguous transposed weights is the decode shape that goes to gemv.
TEST(Matmul, SingleRowWithUnpaddedWeights) {
  SeededRng rng;
  for (Shape shape : {Shape{1, 1, 1}, Shape{1, 3, 17}, Shape{1, 1003, 257}, Shape{1, 130, 4099}})
    for (ElementType type : kTypes)
      for (bool transposed : {false, true}) {
        SCOPED_TRACE(describe(shape, type, transposed) + " unpadded");
        Product p = make_product(rng, shape, type, transposed, 0);
        matmul(p.args);
        expect_matches_reference(p);
      }
}

TEST(Matmul, MatchesReferenceOnOneAndTwoThreads) {
  SeededRng rng;
  for (int count : {1, 2}) {
    ThreadCount scoped(count);
    for (ElementType type : kTypes) {
      SCOPED_TRACE(describe(kMultiPanelShape, type, true) + " threads=" + std::to_string(count));
      Product p = make_product(rng, kMultiPanelShape, type, true);
      matmul(p.args);
      expect_matches_reference(p);
    }
  }
}

TEST(Matmul, EmptyDepthGivesZeros) {
  std::vector<float> a(4), b(4);
  std::vector<float> c = poisoned(6);
  matmul(MatmulArgs{a.data(), 1, b.data(), ElementType::f32, 3, false, c.data(), 3, 2, 3, 0});
  for (float value : c) EXPECT_EQ(value, 0.0f);  // exact: an empty sum is 0
}

TEST(Matmul, RepeatedRunsAreBitIdentical) {
  SeededRng rng;
  for (ElementType type : kTypes)
    for (bool transposed : {false, true}) {
      SCOPED_TRACE(describe(kMultiPanelShape, type, transposed));
      Product first = make_product(rng, kMultiPanelShape, type, transposed);
      Product second = first;
      second.args.a = second.a.data();
      second.args.b = second.b.data();
      second.args.c = second.c.data();
      matmul(first.args);
      matmul(second.args);
      // exact: a given thread count must always split and sum the same way
      EXPECT_EQ(0, std::memcmp(first.c.data(), second.c.data(), first.c.size() * sizeof(float)));
    }
}

}  // namespace
}  // namespace ember::cpu
