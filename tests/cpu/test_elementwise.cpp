#include "cpu/elementwise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/threads.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::max_relative_error;
using testing::poisoned;
using testing::SeededRng;

int64_t element_count(const Dims4& shape) { return shape[0] * shape[1] * shape[2] * shape[3]; }

// Row-major strides of `shape`, with 0 on its unit axes so they broadcast against dims.
Dims4 broadcast_strides(const Dims4& shape) {
  Dims4 strides{};
  int64_t step = 1;
  for (int axis = 3; axis >= 0; --axis) {
    strides[axis] = shape[axis] == 1 ? 0 : step;
    step *= shape[axis];
  }
  return strides;
}

float apply(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
  }
  return 0.0f;
}

float reference_activation(Activation act, float x) {
  if (act == Activation::relu) return x > 0.0f ? x : 0.0f;
  if (act == Activation::silu) return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x))));
  return x;
}

float at(const StridedInput& in, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
  return in.data[i0 * in.strides[0] + i1 * in.strides[1] + i2 * in.strides[2] + i3 * in.strides[3]];
}

std::vector<float> reference_binary(BinaryOp op, StridedInput a, StridedInput b, const Dims4& dims,
                                    Activation post = Activation::none) {
  std::vector<float> out;
  for (int64_t i0 = 0; i0 < dims[0]; ++i0)
    for (int64_t i1 = 0; i1 < dims[1]; ++i1)
      for (int64_t i2 = 0; i2 < dims[2]; ++i2)
        for (int64_t i3 = 0; i3 < dims[3]; ++i3)
          out.push_back(reference_activation(post, apply(op, at(a, i0, i1, i2, i3), at(b, i0, i1, i2, i3))));
  return out;
}

std::vector<float> reference_affine(StridedInput x, StridedInput scale, StridedInput shift, const Dims4& dims) {
  std::vector<float> out;
  for (int64_t i0 = 0; i0 < dims[0]; ++i0)
    for (int64_t i1 = 0; i1 < dims[1]; ++i1)
      for (int64_t i2 = 0; i2 < dims[2]; ++i2)
        for (int64_t i3 = 0; i3 < dims[3]; ++i3)
          out.push_back(at(x, i0, i1, i2, i3) * at(scale, i0, i1, i2, i3) + at(shift, i0, i1, i2, i3));
  return out;
}

constexpr BinaryOp kAllOps[] = {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div};

// Random values away from zero, so div stays well conditioned.
std::vector<float> operand(SeededRng& rng, const Dims4& shape) {
  std::vector<float> values = rng.uniform(element_count(shape), 0.5f, 2.0f);
  for (size_t i = 0; i < values.size(); i += 2) values[i] = -values[i];
  return values;
}

// Runs binary for a with shape a_shape and b with shape b_shape, broadcast to dims.
void expect_binary_matches(SeededRng& rng, BinaryOp op, const Dims4& a_shape, const Dims4& b_shape,
                           const Dims4& dims, Activation post = Activation::none) {
  const std::vector<float> a_values = operand(rng, a_shape);
  const std::vector<float> b_values = operand(rng, b_shape);
  const StridedInput a{a_values.data(), broadcast_strides(a_shape)};
  const StridedInput b{b_values.data(), broadcast_strides(b_shape)};
  std::vector<float> out = poisoned(element_count(dims));
  binary(op, a, b, out.data(), dims, post);
  // Exact: each element is one IEEE operation (and relu) in both, whatever the loop.
  EXPECT_EQ(out, reference_binary(op, a, b, dims, post)) << "op " << static_cast<int>(op);
}

TEST(Binary, EveryOpOnSameShape) {
  SeededRng rng;
  for (BinaryOp op : kAllOps) {
    expect_binary_matches(rng, op, {3, 7, 5, 37}, {3, 7, 5, 37}, {3, 7, 5, 37});
    expect_binary_matches(rng, op, {1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1});
  }
}

TEST(Binary, BroadcastsAlongEachAxis) {
  SeededRng rng;
  const Dims4 dims{3, 7, 5, 37};
  for (int axis = 0; axis < 4; ++axis) {
    Dims4 b_shape = dims;
    b_shape[axis] = 1;
    Dims4 a_shape = dims;
    a_shape[(axis + 1) % 4] = 1;
    for (BinaryOp op : kAllOps) {
      expect_binary_matches(rng, op, dims, b_shape, dims);
      expect_binary_matches(rng, op, b_shape, dims, dims);
      expect_binary_matches(rng, op, a_shape, b_shape, dims);  // both operands broadcast
    }
  }
}

TEST(Binary, BroadcastsScalarsAndRowVectors) {
  SeededRng rng;
  const Dims4 dims{2, 3, 7, 129};
  for (BinaryOp op : kAllOps) {
    expect_binary_matches(rng, op, dims, {1, 1, 1, 1}, dims);
    expect_binary_matches(rng, op, {1, 1, 1, 1}, dims, dims);
    expect_binary_matches(rng, op, dims, {1, 1, 1, 129}, dims);  // bias over the last axis
    expect_binary_matches(rng, op, {1, 3, 1, 1}, dims, dims);    // per channel
    expect_binary_matches(rng, op, {2, 1, 7, 1}, {1, 3, 1, 129}, dims);  // outer product
  }
}

TEST(Binary, ReadsNonContiguousOperands) {
  SeededRng rng;
  const Dims4 dims{2, 3, 7, 37};
  // a is stored as [2, 3, 37, 7] and read transposed over the last two axes.
  const std::vector<float> a_values = operand(rng, {2, 3, 37, 7});
  const StridedInput a{a_values.data(), {3 * 37 * 7, 37 * 7, 1, 7}};
  const std::vector<float> b_values = operand(rng, dims);
  const StridedInput b{b_values.data(), broadcast_strides(dims)};
  for (BinaryOp op : kAllOps) {
    std::vector<float> out = poisoned(element_count(dims));
    binary(op, a, b, out.data(), dims);
    EXPECT_EQ(out, reference_binary(op, a, b, dims));  // exact: one IEEE operation per element
  }
}

TEST(Binary, FusesPostActivation) {
  SeededRng rng;
  const Dims4 dims{1, 3, 37, 1001};  // large enough to run on several threads
  expect_binary_matches(rng, BinaryOp::add, dims, {1, 1, 1, 1001}, dims, Activation::relu);
  expect_binary_matches(rng, BinaryOp::sub, {1, 3, 1, 1}, dims, dims, Activation::relu);

  const std::vector<float> a_values = operand(rng, dims);
  const std::vector<float> b_values = operand(rng, {1, 1, 1, 1001});
  const StridedInput a{a_values.data(), broadcast_strides(dims)};
  const StridedInput b{b_values.data(), broadcast_strides({1, 1, 1, 1001})};
  std::vector<float> out = poisoned(element_count(dims));
  binary(BinaryOp::mul, a, b, out.data(), dims, Activation::relu);
  int64_t zeros = 0;
  for (float v : out) zeros += v == 0.0f;
  EXPECT_GT(zeros, 0);  // the relu actually clipped something
  EXPECT_LT(zeros, static_cast<int64_t>(out.size()));

  binary(BinaryOp::add, a, b, out.data(), dims, Activation::silu);
  // silu goes through expf: a few float roundings on top of the double reference.
  EXPECT_LE(max_relative_error(out, reference_binary(BinaryOp::add, a, b, dims, Activation::silu)), 1e-5);
}

TEST(Binary, SameResultOnOneAndTwoThreads) {
  SeededRng rng;
  const Dims4 dims{1, 1, 3, 20011};  // one long coalesced row, split into blocks
  const std::vector<float> a_values = operand(rng, dims);
  const std::vector<float> b_values = operand(rng, dims);
  const StridedInput a{a_values.data(), broadcast_strides(dims)};
  const StridedInput b{b_values.data(), broadcast_strides(dims)};
  std::vector<float> one = poisoned(element_count(dims));
  std::vector<float> two = poisoned(element_count(dims));
  set_threads(1);
  binary(BinaryOp::div, a, b, one.data(), dims);
  set_threads(2);
  binary(BinaryOp::div, a, b, two.data(), dims);
  set_threads(0);
  EXPECT_EQ(one, two);  // bit-identical
  EXPECT_EQ(one, reference_binary(BinaryOp::div, a, b, dims));  // exact: one IEEE division each
}

void expect_affine_matches(SeededRng& rng, const Dims4& x_shape, const Dims4& scale_shape, const Dims4& shift_shape,
                           const Dims4& dims) {
  const std::vector<float> x_values = rng.uniform(element_count(x_shape));
  const std::vector<float> scale_values = rng.uniform(element_count(scale_shape));
  const std::vector<float> shift_values = rng.uniform(element_count(shift_shape));
  const StridedInput x{x_values.data(), broadcast_strides(x_shape)};
  const StridedInput scale{scale_values.data(), broadcast_strides(scale_shape)};
  const StridedInput shift{shift_values.data(), broadcast_strides(shift_shape)};
  std::vector<float> out = poisoned(element_count(dims));
  affine(x, scale, shift, out.data(), dims);
  // Either side may fuse the multiply-add (one rounding instead of two): 1e-6 relative,
  // with a floor of 1 (the terms' size) where the sum cancels to near zero.
  EXPECT_LE(max_relative_error(out, reference_affine(x, scale, shift, dims), 1.0), 1e-6);
}

TEST(Affine, BroadcastsScaleAndShift) {
  SeededRng rng;
  const Dims4 dims{2, 7, 3, 129};
  expect_affine_matches(rng, dims, dims, dims, dims);
  expect_affine_matches(rng, dims, {1, 1, 1, 129}, {1, 1, 1, 129}, dims);  // layer-norm style
  expect_affine_matches(rng, dims, {1, 7, 1, 1}, {1, 7, 1, 1}, dims);      // per channel
  expect_affine_matches(rng, dims, {1, 1, 1, 1}, {1, 1, 1, 1}, dims);      // scalars
  expect_affine_matches(rng, dims, {1, 7, 1, 1}, {1, 1, 1, 129}, dims);    // mixed
  expect_affine_matches(rng, {1, 7, 3, 1}, {2, 1, 1, 129}, dims, dims);    // x broadcast too
  expect_affine_matches(rng, {1, 3, 37, 1001}, {1, 3, 1, 1}, {1, 1, 1, 1001}, {1, 3, 37, 1001});
}

TEST(Scale, MultipliesOutOfPlaceAndInPlace) {
  SeededRng rng;
  for (int64_t count : {1, 7, 1003, 40009}) {
    std::vector<float> x = rng.uniform(count);
    const float factor = rng.uniform(1, -3.0f, 3.0f)[0];
    std::vector<float> expected(count);
    for (int64_t i = 0; i < count; ++i) expected[i] = x[i] * factor;
    std::vector<float> y = poisoned(count);
    scale(x.data(), factor, y.data(), count);
    EXPECT_EQ(y, expected);  // exact: one multiply each
    scale(x.data(), factor, x.data(), count);
    EXPECT_EQ(x, expected);  // exact, in place
  }
}

// Below and above the threshold, on one thread and on two: every index once, none past.
TEST(ParallelSimdFor, VisitsEveryIndexOnce) {
  for (int thread_count : {1, 2})
    for (int64_t count : {0, 5, 16383, 16384, 40009}) {
      set_threads(thread_count);
      std::vector<int32_t> visits(static_cast<size_t>(count) + 1, 0);
      int32_t* counts = visits.data();
      parallel_simd_for(count, 16384, [=](int64_t i) { counts[i] += 1; });
      EXPECT_EQ(std::count(visits.begin(), visits.end() - 1, 1), count) << count << " on " << thread_count;
      EXPECT_EQ(visits.back(), 0) << count << " on " << thread_count;
    }
  set_threads(0);
}

TEST(Swiglu, MatchesSiluTimesUp) {
  SeededRng rng;
  for (int64_t count : {1, 37, 1003, 40009}) {
    const std::vector<float> gate = rng.uniform(count, -6.0f, 6.0f);
    const std::vector<float> up = rng.uniform(count);
    std::vector<float> expected(count);
    for (int64_t i = 0; i < count; ++i) {
      const double g = gate[i];
      expected[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
    }
    std::vector<float> y = poisoned(count);
    swiglu(gate.data(), up.data(), y.data(), count);
    // expf and three float roundings against a double reference: 1e-5 relative.
    EXPECT_LE(max_relative_error(y, expected), 1e-5) << "count " << count;
  }
}

}  // namespace
}  // namespace ember::cpu
