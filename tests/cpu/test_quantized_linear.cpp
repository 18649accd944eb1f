// linear on GGUF block weights (cpu::quantized_matmul): the activations are quantized to
// 8-bit blocks, so the exact answer is the product of the dequantized weights with the
// dequantized quantized activations; every ISA path and thread count must reach it to
// float rounding, and split the work without changing a bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/isa.h"
#include "cpu/kernel_fixtures.h"
#include "cpu/matmul.h"
#include "cpu/quantized_dot.h"
#include "quant/f16.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::poisoned;
using testing::SeededRng;
using testing::ThreadCount;

constexpr ElementType kBlockTypes[] = {ElementType::q8_0, ElementType::q4_0, ElementType::q4_1, ElementType::q4_k,
                                       ElementType::q6_k};

std::string name(ElementType type) { return std::string(dtype_name(to_dtype(type))); }

// Weights stored in `type` and the floats they decode to.
struct BlockWeights {
  std::vector<unsigned char> bytes;
  std::vector<float> decoded;
};

BlockWeights make_block_weights(SeededRng& rng, ElementType type, int64_t out, int64_t in) {
  BlockWeights w;
  // Rows of different scales, so one row's scale cannot stand in for another's.
  std::vector<float> values = rng.normal(out * in);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t i = 0; i < in; ++i) values[r * in + i] *= 0.25f + static_cast<float>(r % 7);
  w.bytes.resize(element_row_bytes(type, in) * out);
  quant::quantize_row_reference(to_dtype(type), values.data(), w.bytes.data(), out * in);
  w.decoded.resize(out * in);
  quant::dequantize_row(to_dtype(type), w.bytes.data(), w.decoded.data(), out * in);
  return w;
}

// x as the kernels see it: quantized to the activation format and decoded again.
std::vector<float> as_quantized_activations(ElementType type, const std::vector<float>& x) {
  const DType activation = activation_dtype(type);
  std::vector<unsigned char> blocks(row_bytes(activation, static_cast<int64_t>(x.size())));
  quant::quantize_row_reference(activation, x.data(), blocks.data(), static_cast<int64_t>(x.size()));
  std::vector<float> decoded(x.size());
  quant::dequantize_row(activation, blocks.data(), decoded.data(), static_cast<int64_t>(x.size()));
  return decoded;
}

// q4_1's min meets the activation block's sum as q8_1 stores it (as ggml does): the f32
// scale times Σq, rounded to f16, while the decoded activations use the f16-rounded
// scale. Two half-ulps of f16 (2^-10 relative) of |min · block sum| separate them.
double q4_1_min_term_bound(const BlockWeights& w, const std::vector<float>& x_seen, int64_t row, int64_t output,
                           int64_t in) {
  const auto* blocks = reinterpret_cast<const quant::BlockQ4_1*>(w.bytes.data()) + output * in / quant::kQK4_1;
  double bound = 0.0;
  for (int64_t b = 0; b < in / quant::kQK4_1; ++b) {
    double block_sum = 0.0;
    for (int64_t i = 0; i < quant::kQK4_1; ++i) block_sum += x_seen[row * in + b * quant::kQK4_1 + i];
    bound += std::fabs(quant::f16_to_f32(blocks[b].m) * block_sum) * std::ldexp(1.0, -10);
  }
  return bound;
}

void expect_matches_exact_product(ElementType type, const std::vector<float>& y, const std::vector<float>& x_seen,
                                  const BlockWeights& w, int64_t rows, int64_t in, int64_t out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t i = 0; i < in; ++i) {
        const double term = static_cast<double>(x_seen[r * in + i]) * w.decoded[o * in + i];
        sum += term;
        magnitude += std::fabs(term);
      }
      // Integer block sums are exact; what is left is f32 rounding of the block scales and
      // of the per-block accumulation, far below 1e-5 of Σ|terms|.
      const double stored_sum_error = type == ElementType::q4_1 ? q4_1_min_term_bound(w, x_seen, r, o, in) : 0.0;
      ASSERT_NEAR(y[r * out + o], sum, 1e-5 * magnitude + stored_sum_error + 1e-6) << "row " << r << " output " << o;
    }
}

struct Shape {
  int64_t rows, blocks, out;
};

TEST(QuantizedLinear, EveryTypeIsaAndThreadCountMatchesTheExactProduct) {
  SeededRng rng;
  const Shape shapes[] = {{1, 1, 1}, {1, 3, 5}, {2, 7, 67}, {3, 2, 130}, {65, 3, 9}, {130, 2, 37}};
  for (ElementType type : kBlockTypes)
    for (const Shape& s : shapes) {
      const int64_t in = s.blocks * block_elements(type);
      const BlockWeights w = make_block_weights(rng, type, s.out, in);
      const std::vector<float> x = rng.uniform(s.rows * in, -2.0f, 2.0f);
      std::vector<float> x_seen;
      for (int64_t r = 0; r < s.rows; ++r) {
        const std::vector<float> row(x.begin() + r * in, x.begin() + (r + 1) * in);
        const std::vector<float> seen = as_quantized_activations(type, row);
        x_seen.insert(x_seen.end(), seen.begin(), seen.end());
      }
      for (Isa isa : supported_isas())
        for (int count : {1, 2}) {
          SCOPED_TRACE(name(type) + " " + std::string(isa_name(isa)) + " threads=" + std::to_string(count) +
                       " rows=" + std::to_string(s.rows) + " in=" + std::to_string(in) +
                       " out=" + std::to_string(s.out));
          force_isa(isa);
          ThreadCount threads(count);
          std::vector<float> y = poisoned(s.rows * s.out);
          quantized_matmul(x.data(), s.rows, in, w.bytes.data(), type, y.data(), s.out);
          force_isa(detected_isa());
          expect_matches_exact_product(type, y, x_seen, w, s.rows, in, s.out);
        }
    }
}

// The tile kernels sum each output in one fixed order, so neither the thread count nor
// the batch a row arrives in (a prompt of many rows, or one decoded row) changes a bit.
TEST(QuantizedLinear, ThreadsAndBatchingDoNotChangeAnyBit) {
  SeededRng rng;
  for (ElementType type : kBlockTypes) {
    SCOPED_TRACE(name(type));
    const int64_t rows = 70, in = 4 * 256, out = 203;
    const BlockWeights w = make_block_weights(rng, type, out, in);
    const std::vector<float> x = rng.uniform(rows * in);
    std::vector<float> one_thread = poisoned(rows * out), two_threads = poisoned(rows * out);
    {
      ThreadCount threads(1);
      quantized_matmul(x.data(), rows, in, w.bytes.data(), type, one_thread.data(), out);
    }
    ThreadCount threads(2);
    quantized_matmul(x.data(), rows, in, w.bytes.data(), type, two_threads.data(), out);
    EXPECT_EQ(0, std::memcmp(one_thread.data(), two_threads.data(), one_thread.size() * sizeof(float)));
    for (int64_t r : {int64_t{0}, int64_t{37}, rows - 1}) {
      std::vector<float> single = poisoned(out);
      quantized_matmul(x.data() + r * in, 1, in, w.bytes.data(), type, single.data(), out);
      EXPECT_EQ(0, std::memcmp(single.data(), two_threads.data() + r * out, out * sizeof(float))) << "row " << r;
    }
  }
}

TEST(QuantizedLinear, LinearAppliesBiasAndActivationAfterTheProduct) {
  SeededRng rng;
  const int64_t rows = 3, in = 256, out = 19;
  for (ElementType type : kBlockTypes) {
    SCOPED_TRACE(name(type));
    const BlockWeights w = make_block_weights(rng, type, out, in);
    const std::vector<float> x = rng.uniform(rows * in);
    const std::vector<float> bias = rng.uniform(out);
    std::vector<float> product = poisoned(rows * out), y = poisoned(rows * out);
    quantized_matmul(x.data(), rows, in, w.bytes.data(), type, product.data(), out);
    linear(x.data(), rows, in, w.bytes.data(), type, bias.data(), Activation::relu, y.data(), out);
    for (int64_t i = 0; i < rows * out; ++i) {
      const float expected = product[i] + bias[i % out];
      ASSERT_EQ(y[i], expected > 0.0f ? expected : 0.0f) << "at " << i;
    }
  }
}

// The weights of `type` (block or plain) as bytes, for linears_of_one_x.
std::vector<unsigned char> weight_bytes(SeededRng& rng, ElementType type, int64_t out, int64_t in) {
  if (is_block_quantized(type)) return make_block_weights(rng, type, out, in).bytes;
  const testing::Weights plain = testing::make_weights(rng, type, static_cast<size_t>(out * in));
  const auto* first = static_cast<const unsigned char*>(plain.data());
  return std::vector<unsigned char>(first, first + out * in * static_cast<int64_t>(element_bytes(type)));
}

// Several linears of one x in one parallel region (a layer's q, k and v): each output has
// the bits linear() gives it alone, for mixed types that run together (q4_K and q6_K, as
// q4_k_m mixes them; q8_0 and q4_0; f16, bf16 and f32 on one row), with bias and
// activation, on any thread count, and the outputs' neighbours untouched.
TEST(LinearsOfOneX, GiveEachLinearsOwnBitsInOneRegion) {
  SeededRng rng;
  const std::vector<std::vector<ElementType>> groups = {{ElementType::q4_k, ElementType::q4_k, ElementType::q6_k},
                                                        {ElementType::q8_0, ElementType::q4_0},
                                                        // More than one region takes (4): the rest follow in a second.
                                                        {ElementType::q8_0, ElementType::q4_0, ElementType::q8_0,
                                                         ElementType::q4_0, ElementType::q8_0},
                                                        {ElementType::q4_1},
                                                        {ElementType::f16, ElementType::bf16, ElementType::f32}};
  for (const auto& types : groups)
    for (int64_t rows : {1, 3, 70}) {
      if (!is_block_quantized(types.front()) && rows > 1) continue;
      const int64_t in = is_block_quantized(types.front()) ? 2 * block_elements(types.front()) : 300;
      const std::vector<int64_t> outs = {45, 16, 2000, 7, 130};
      const std::vector<float> x = rng.normal(rows * in);
      std::vector<std::vector<unsigned char>> weights;
      std::vector<std::vector<float>> biases, expected;
      for (size_t p = 0; p < types.size(); ++p) {
        weights.push_back(weight_bytes(rng, types[p], outs[p], in));
        biases.push_back(rng.normal(outs[p]));
        expected.push_back(poisoned(rows * outs[p]));
        const Activation act = p == 1 ? Activation::silu : Activation::none;
        linear(x.data(), rows, in, weights[p].data(), types[p], p == 0 ? biases[p].data() : nullptr, act,
               expected[p].data(), outs[p]);
      }
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(name(types.front()) + " rows " + std::to_string(rows) + " threads " + std::to_string(threads));
        const ThreadCount scope(threads);
        std::vector<std::vector<float>> actual;
        std::vector<LinearOfX> linears;
        for (size_t p = 0; p < types.size(); ++p) actual.push_back(poisoned(rows * outs[p] + 8));
        for (size_t p = 0; p < types.size(); ++p) {
          ASSERT_TRUE(run_together(types.front(), types[p], rows));
          LinearOfX linear;
          linear.weight = weights[p].data();
          linear.weight_type = types[p];
          linear.bias = p == 0 ? biases[p].data() : nullptr;
          linear.act = p == 1 ? Activation::silu : Activation::none;
          linear.y = actual[p].data();
          linear.out_features = outs[p];
          linears.push_back(linear);
        }
        linears_of_one_x(x.data(), rows, in, linears);
        for (size_t p = 0; p < types.size(); ++p) {
          ASSERT_EQ(std::memcmp(actual[p].data(), expected[p].data(), expected[p].size() * sizeof(float)), 0) << p;
          for (size_t i = expected[p].size(); i < actual[p].size(); ++i) ASSERT_TRUE(std::isnan(actual[p][i]));
        }
      }
    }
  EXPECT_FALSE(run_together(ElementType::q4_0, ElementType::q4_k, 1));
  EXPECT_FALSE(run_together(ElementType::q4_0, ElementType::q4_1, 1));
  EXPECT_FALSE(run_together(ElementType::q8_0, ElementType::f16, 1));
  EXPECT_FALSE(run_together(ElementType::f16, ElementType::f16, 2));
}

}  // namespace
}  // namespace ember::cpu
