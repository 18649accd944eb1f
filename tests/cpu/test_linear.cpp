// linear (GEMM or gemv plus bias and activation) and gemv on every ISA path this CPU runs.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/isa.h"
#include "cpu/matmul.h"
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

double reference_activation(Activation act, double x) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return x > 0.0 ? x : 0.0;
    case Activation::gelu_tanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::gelu_erf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::silu: return x / (1.0 + std::exp(-x));
  }
  return x;
}

// y[r][o] = act(Σ_i x[r][i] · W[o][i] + bias[o]) in double, and the scale of the f32
// rounding error: Σ_i |x[r][i] · W[o][i]| + |bias[o]|.
struct Reference {
  std::vector<double> y, magnitude;
};

Reference reference_linear(const std::vector<float>& x, int64_t rows, int64_t in, const Weights& w,
                           const float* bias, Activation act, int64_t out) {
  Reference ref;
  ref.y.resize(rows * out);
  ref.magnitude.resize(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double sum = bias != nullptr ? bias[o] : 0.0;
      double magnitude = bias != nullptr ? std::fabs(bias[o]) : 0.0;
      for (int64_t i = 0; i < in; ++i) {
        const double term =
            static_cast<double>(testing::activation_as_multiplied(x[r * in + i], w.type, rows == 1)) *
            w.decoded[o * in + i];
        sum += term;
        magnitude += std::fabs(term);
      }
      ref.y[r * out + o] = reference_activation(act, sum);
      ref.magnitude[r * out + o] = magnitude;
    }
  return ref;
}

void expect_near_reference(const std::vector<float>& actual, const Reference& ref) {
  for (size_t i = 0; i < ref.y.size(); ++i) {
    // f32 dot products err far below 1e-5 of Σ|terms| (one wrong term is ~1/in of it); the
    // activations' slopes stay under 1.2, and evaluating them in f32 adds a few ulp.
    const double tolerance = 1e-5 * ref.magnitude[i] + 8 * FLT_EPSILON * (std::fabs(ref.y[i]) + 1.0);
    ASSERT_NEAR(actual[i], ref.y[i], tolerance) << "at flat index " << i;
  }
}

constexpr ElementType kTypes[] = {ElementType::f32, ElementType::f16, ElementType::bf16};
constexpr Activation kActivations[] = {Activation::none, Activation::relu, Activation::gelu_tanh,
                                       Activation::gelu_erf, Activation::silu};

struct LinearShape {
  int64_t rows, in, out;
};

TEST(Linear, MatchesReferenceForEveryActivationBiasAndWeightType) {
  SeededRng rng;
  const LinearShape shapes[] = {{1, 1, 1}, {1, 127, 33}, {3, 33, 17}, {17, 127, 1001}, {5, 33, 4097}};
  for (const LinearShape& s : shapes)
    for (ElementType type : kTypes) {
      const std::vector<float> x = rng.uniform(s.rows * s.in);
      const Weights w = make_weights(rng, type, s.out * s.in);
      // Inputs in [-1, 1] over up to 127 terms put pre-activations where every activation
      // bends (roughly -6..6); the bias shifts them by up to ±2.
      const std::vector<float> bias = rng.uniform(s.out, -2.0f, 2.0f);
      for (Activation act : kActivations)
        for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
          SCOPED_TRACE("rows=" + std::to_string(s.rows) + " in=" + std::to_string(s.in) + " out=" +
                       std::to_string(s.out) + " " + type_name(type) + " activation=" +
                       std::to_string(static_cast<int>(act)) + (b ? " with bias" : " no bias"));
          std::vector<float> y = poisoned(s.rows * s.out);
          linear(x.data(), s.rows, s.in, w.data(), type, b, act, y.data(), s.out);
          expect_near_reference(y, reference_linear(x, s.rows, s.in, w, b, act, s.out));
        }
    }
}

// Many rows: AVX-512 CPUs run ember's tiled GEMM (8-row × 32-output register tiles over
// 256-deep chunks of the weights), others Eigen. Shapes straddle every tile edge and
// span several depth chunks.
TEST(Linear, EveryIsaPathMatchesReferenceForManyRows) {
  SeededRng rng;
  const LinearShape shapes[] = {{2, 1, 1}, {7, 31, 33}, {9, 257, 31}, {8, 700, 64}, {17, 513, 97}, {70, 300, 65}};
  for (Isa isa : supported_isas()) {
    testing::ForcedIsa forced(isa);
    for (int count : {1, 2}) {
      ThreadCount scoped(count);
      for (const LinearShape& s : shapes)
        for (ElementType type : kTypes) {
          SCOPED_TRACE(std::string(isa_name(isa)) + " threads=" + std::to_string(count) + " rows=" +
                       std::to_string(s.rows) + " in=" + std::to_string(s.in) + " out=" + std::to_string(s.out) +
                       " " + type_name(type));
          const std::vector<float> x = rng.uniform(s.rows * s.in);
          const Weights w = make_weights(rng, type, s.out * s.in);
          std::vector<float> y = poisoned(s.rows * s.out);
          linear(x.data(), s.rows, s.in, w.data(), type, nullptr, Activation::none, y.data(), s.out);
          expect_near_reference(y, reference_linear(x, s.rows, s.in, w, nullptr, Activation::none, s.out));
        }
    }
  }
}

struct GemvShape {
  int64_t out, in;
};

// Widths around every vector and unroll width (8, 16, 32) and row counts off the 4-row
// grouping; the last two span several thread chunks.
const GemvShape kGemvShapes[] = {{1, 1},   {3, 7},    {5, 8},     {4, 15},   {7, 16},  {9, 17},
                                 {6, 31},  {11, 33},  {17, 127},  {2, 1000}, {1, 4099}, {33, 1003},
                                 {257, 1001}, {130, 4099}};

std::vector<float> run_gemv(const Weights& w, const GemvShape& s, const std::vector<float>& x) {
  std::vector<float> y = poisoned(s.out);
  gemv(w.data(), w.type, s.out, s.in, x.data(), y.data());
  return y;
}

TEST(Gemv, EveryIsaPathMatchesReferenceOnOneAndTwoThreads) {
  SeededRng rng;
  for (Isa isa : supported_isas()) {
    testing::ForcedIsa forced(isa);
    ASSERT_EQ(active_isa(), isa);
    for (int count : {1, 2}) {
      ThreadCount scoped(count);
      for (ElementType type : kTypes)
        for (const GemvShape& s : kGemvShapes) {
          SCOPED_TRACE(std::string(isa_name(active_isa())) + " threads=" + std::to_string(count) + " " +
                       type_name(type) + " out=" + std::to_string(s.out) + " in=" + std::to_string(s.in));
          const std::vector<float> x = rng.uniform(s.in);
          const Weights w = make_weights(rng, type, s.out * s.in);
          expect_near_reference(run_gemv(w, s, x), reference_linear(x, 1, s.in, w, nullptr, Activation::none, s.out));
        }
    }
  }
}

// Each row is summed in one fixed order by one thread, so the split across threads (and
// across the kernel's 4-row groups) must not change a single bit.
TEST(Gemv, ThreadCountDoesNotChangeResults) {
  SeededRng rng;
  for (Isa isa : supported_isas()) {
    testing::ForcedIsa forced(isa);
    for (ElementType type : kTypes) {
      SCOPED_TRACE(std::string(isa_name(active_isa())) + " " + type_name(type));
      const GemvShape s{1027, 1001};
      const std::vector<float> x = rng.uniform(s.in);
      const Weights w = make_weights(rng, type, s.out * s.in);
      std::vector<float> one_thread, two_threads;
      {
        ThreadCount scoped(1);
        one_thread = run_gemv(w, s, x);
      }
      {
        ThreadCount scoped(2);
        two_threads = run_gemv(w, s, x);
      }
      EXPECT_EQ(0, std::memcmp(one_thread.data(), two_threads.data(), s.out * sizeof(float)));  // exact
    }
  }
}

// Only the avx512_bf16 GEMM rounds activations: against bf16 weights of 1, an x of
// 1 + 2^-10 (between two bf16 values, nearer 1) sums to exactly 1 there and to 1 + 2^-10
// on every other path, the one-row GEMV included. x sits last in an odd-length row, in
// the kernels' tails and half of the pair kernel's padded last pair.
TEST(Linear, OnlyTheBf16GemmRoundsActivationsForBf16Weights) {
  constexpr int64_t kIn = 37, kOut = 35;
  const float x_value = 1.0f + 0x1p-10f;
  const std::vector<uint16_t> ones(kIn * kOut, quant::f32_to_bf16(1.0f));
  for (Isa isa : supported_isas()) {
    testing::ForcedIsa forced(isa);
    for (int64_t rows : {1, 3}) {
      const float expected = has_avx512_bf16(isa) && rows > 1 ? 1.0f : x_value;
      SCOPED_TRACE(std::string(isa_name(isa)) + " rows=" + std::to_string(rows));
      std::vector<float> x(rows * kIn, 0.0f);
      for (int64_t r = 0; r < rows; ++r) x[r * kIn + kIn - 1] = x_value;
      std::vector<float> y = poisoned(rows * kOut);
      linear(x.data(), rows, kIn, ones.data(), ElementType::bf16, nullptr, Activation::none, y.data(), kOut);
      for (float value : y) ASSERT_EQ(value, expected);  // exact: one nonzero product
    }
  }
}

TEST(Gemv, EmptyInputGivesZeros) {
  std::vector<float> y = poisoned(3);
  const float unused = 0.0f;
  gemv(&unused, ElementType::f32, 3, 0, &unused, y.data());
  for (float value : y) EXPECT_EQ(value, 0.0f);  // exact: an empty sum is 0
}

}  // namespace
}  // namespace ember::cpu
