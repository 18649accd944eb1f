#include "cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/quantize.h"
#include "cpu/threads.h"
#include "ember/dtype.h"
#include "quant/block_formats.h"
#include "quant/f16.h"
#include "cpu/kernel_fixtures.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::poisoned;
using testing::SeededRng;
using testing::ThreadCount;

struct Case {
  int64_t tokens, q_heads, kv_heads, head_dim, kv_length, position_offset;
};

constexpr int64_t kBlock = quant::kQK8_0;

// A key/value cache in f32, f16 or q8_0, with the f32 values its elements decode to.
struct Cache {
  ElementType type = ElementType::f32;
  std::vector<float> decoded;
  std::vector<uint16_t> bits;
  std::vector<quant::BlockQ8_0> blocks;

  const void* data() const {
    switch (type) {
      case ElementType::f16: return bits.data();
      case ElementType::q8_0: return blocks.data();
      default: return decoded.data();
    }
  }
  // Elements [begin, end) all decode to `value`. A q8_0 range must be whole blocks, which
  // get scale `value` and every code 1.
  void fill(size_t begin, size_t end, float value) {
    if (type == ElementType::q8_0) {
      for (size_t b = begin / kBlock; b < end / kBlock; ++b) {
        blocks[b].d = quant::f32_to_f16(value);
        std::fill(std::begin(blocks[b].qs), std::end(blocks[b].qs), int8_t{1});
      }
      decode_blocks();
      return;
    }
    for (size_t i = begin; i < end; ++i) {
      if (type == ElementType::f32) {
        decoded[i] = value;
      } else {
        bits[i] = quant::f32_to_f16(value);
        decoded[i] = quant::f16_to_f32(bits[i]);
      }
    }
  }
  // Decoded by hand from the block layout rather than by cpu::dequantize_rows, so the
  // reference does not share code with the kernel's reading of the blocks.
  void decode_blocks() {
    for (size_t i = 0; i < decoded.size(); ++i)
      decoded[i] = quant::f16_to_f32(blocks[i / kBlock].d) * static_cast<float>(blocks[i / kBlock].qs[i % kBlock]);
  }
};

Cache make_cache(ElementType type, const std::vector<float>& values) {
  Cache cache;
  cache.type = type;
  cache.decoded.resize(values.size());
  if (type == ElementType::q8_0) {
    const auto count = static_cast<int64_t>(values.size());
    cache.blocks.resize(values.size() / kBlock);
    EXPECT_EQ(element_row_bytes(type, count), static_cast<int64_t>(cache.blocks.size() * sizeof(quant::BlockQ8_0)));
    quantize_rows(DType::q8_0, values.data(), 1, count, cache.blocks.data());
    cache.decode_blocks();
    return cache;
  }
  cache.bits.resize(type == ElementType::f16 ? values.size() : 0);
  for (size_t i = 0; i < values.size(); ++i) cache.fill(i, i + 1, values[i]);
  return cache;
}

struct Problem {
  Case shape;
  std::vector<float> q;
  Cache k, v;
  float scale = 1.0f;

  AttentionArgs args(float* out) const {
    return AttentionArgs{q.data(), k.data(), v.data(), k.type, out, shape.tokens, shape.q_heads, shape.kv_heads,
                         shape.head_dim, shape.kv_length, shape.position_offset, scale};
  }
};

Problem make_problem(SeededRng& rng, const Case& c, ElementType kv_type, float value_scale = 1.0f) {
  Problem p;
  p.shape = c;
  p.q = rng.uniform(c.tokens * c.q_heads * c.head_dim);
  p.k = make_cache(kv_type, rng.uniform(c.kv_length * c.kv_heads * c.head_dim));
  p.v = make_cache(kv_type, rng.uniform(c.kv_length * c.kv_heads * c.head_dim, -value_scale, value_scale));
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return p;
}

// Plain causal attention in double over the decoded cache.
std::vector<double> reference_attention(const Problem& p) {
  const Case& c = p.shape;
  const int64_t group = c.q_heads / c.kv_heads;
  std::vector<double> out(c.tokens * c.q_heads * c.head_dim);
  for (int64_t t = 0; t < c.tokens; ++t)
    for (int64_t h = 0; h < c.q_heads; ++h) {
      const float* q = &p.q[(t * c.q_heads + h) * c.head_dim];
      const int64_t kv_head = h / group;
      const int64_t visible = c.position_offset + t + 1;
      std::vector<double> scores(visible);
      for (int64_t j = 0; j < visible; ++j) {
        const float* k = &p.k.decoded[(j * c.kv_heads + kv_head) * c.head_dim];
        double dot = 0.0;
        for (int64_t d = 0; d < c.head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
        scores[j] = dot * p.scale;
      }
      const double max_score = *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& s : scores) total += (s = std::exp(s - max_score));
      double* o = &out[(t * c.q_heads + h) * c.head_dim];
      for (int64_t j = 0; j < visible; ++j) {
        const float* v = &p.v.decoded[(j * c.kv_heads + kv_head) * c.head_dim];
        for (int64_t d = 0; d < c.head_dim; ++d) o[d] += scores[j] / total * v[d];
      }
    }
  return out;
}

std::vector<float> run_attention(const Problem& p) {
  std::vector<float> out = poisoned(p.shape.tokens * p.shape.q_heads * p.shape.head_dim);
  attention(p.args(out.data()));
  return out;
}

// The output is a convex combination of values bounded by value_scale; f32 scores and
// weights are off by a few ulp, so 1e-5 of that bound is ample, while one wrong key or
// weight moves an output by ~1/visible of it.
void expect_near_reference(const std::vector<float>& actual, const Problem& p, float value_scale) {
  const std::vector<double> expected = reference_attention(p);
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], 1e-5 * value_scale) << "at flat index " << i;
}

std::string describe(const Case& c, ElementType type) {
  return "tokens=" + std::to_string(c.tokens) + " q_heads=" + std::to_string(c.q_heads) +
         " kv_heads=" + std::to_string(c.kv_heads) + " head_dim=" + std::to_string(c.head_dim) +
         " kv_length=" + std::to_string(c.kv_length) + " offset=" + std::to_string(c.position_offset) +
         (type == ElementType::f16 ? " f16" : type == ElementType::q8_0 ? " q8_0" : " f32");
}

// q8_0 caches need whole blocks per head.
bool supports(const Case& c, ElementType type) { return type != ElementType::q8_0 || c.head_dim % kBlock == 0; }

constexpr ElementType kTypes[] = {ElementType::f32, ElementType::f16, ElementType::q8_0};

const Case kCases[] = {
    {1, 1, 1, 1, 1, 0},        // one key
    {1, 6, 2, 17, 33, 32},     // decode, GQA
    {5, 6, 2, 33, 40, 7},      // prefill chunk after a prefix, GQA, unused rows at the end
    {3, 4, 4, 64, 3, 0},       // MHA prompt
    {17, 8, 1, 127, 160, 100},  // MQA
    {2, 3, 3, 128, 1031, 1027},  // long cache
    {3, 6, 2, 64, 8, 5},       // chunk after a prefix, GQA, two blocks per head
    {3, 6, 2, 32, 8, 5},       // one block per head
    {1, 6, 2, 64, 1100, 1040},  // decode over a long cache, unused rows at the end
    {70, 4, 2, 48, 75, 0},      // a prompt of several query tiles and key blocks
    {37, 16, 4, 128, 200, 130},  // M's heads: a chunk after a prefix, tiles across blocks
};

TEST(Attention, MatchesReference) {
  SeededRng rng;
  for (int count : {1, 2}) {
    ThreadCount scoped(count);
    for (const Case& c : kCases)
      for (ElementType type : kTypes) {
        if (!supports(c, type)) continue;
        SCOPED_TRACE(describe(c, type) + " threads=" + std::to_string(count));
        const Problem p = make_problem(rng, c, type);
        expect_near_reference(run_attention(p), p, 1.0f);
      }
  }
}

// Values below f16's smallest normal (6.1e-5) exercise the subnormal half widening.
// Heads of 40 widen element by element; heads of 64 in 16-wide conversions where the ISA
// has them.
TEST(Attention, SubnormalHalfValues) {
  SeededRng rng;
  const float value_scale = 6e-5f;
  for (int64_t head_dim : {40, 64}) {
    const Case c{4, 6, 3, head_dim, 9, 5};
    SCOPED_TRACE(describe(c, ElementType::f16));
    const Problem p = make_problem(rng, c, ElementType::f16, value_scale);
    expect_near_reference(run_attention(p), p, value_scale);
  }
}

// The ISA paths widen the cache differently (16 elements and 16 x 16 transposes at a time
// on AVX-512) but exactly, and sum in the same order: the same bits as plain C++.
TEST(Attention, EveryIsaGivesThePlainPathsBits) {
  SeededRng rng;
  for (const Case& c : kCases)
    for (ElementType type : kTypes) {
      if (!supports(c, type)) continue;
      SCOPED_TRACE(describe(c, type));
      const Problem p = make_problem(rng, c, type);
      std::vector<float> plain;
      {
        const testing::ForcedIsa forced(Isa::scalar);
        plain = run_attention(p);
      }
      for (Isa isa : supported_isas()) {
        const testing::ForcedIsa forced(isa);
        const std::vector<float> actual = run_attention(p);
        ASSERT_EQ(0, std::memcmp(actual.data(), plain.data(), plain.size() * sizeof(float))) << isa_name(isa);
      }
    }
}

// Rows after the last visible position may hold anything: future keys/values of a
// prefill, or stale data. Filling them with huge keys and NaN values must not change one
// bit of the output.
TEST(Attention, MaskedFutureRowsChangeNothing) {
  SeededRng rng;
  for (ElementType type : kTypes) {
    const Case c{5, 6, 2, type == ElementType::q8_0 ? 32 : 33, 40, 7};
    SCOPED_TRACE(describe(c, type));
    Problem p = make_problem(rng, c, type);
    const std::vector<float> clean = run_attention(p);
    const auto row = static_cast<size_t>(c.kv_heads * c.head_dim);
    const auto first_future = static_cast<size_t>(c.position_offset + c.tokens) * row;
    const auto end = static_cast<size_t>(c.kv_length) * row;
    p.k.fill(first_future, end, 6e4f);  // near f16's largest finite value
    p.v.fill(first_future, end, NAN);
    const std::vector<float> dirty = run_attention(p);
    EXPECT_EQ(0, std::memcmp(clean.data(), dirty.data(), clean.size() * sizeof(float)));  // exact
  }
}

TEST(Attention, ThreadCountDoesNotChangeResults) {
  SeededRng rng;
  for (ElementType type : {ElementType::f16, ElementType::q8_0}) {
    const Case c{17, 8, 1, type == ElementType::q8_0 ? 128 : 127, 160, 100};
    SCOPED_TRACE(describe(c, type));
    const Problem p = make_problem(rng, c, type);
    std::vector<float> one_thread, two_threads;
    {
      ThreadCount scoped(1);
      one_thread = run_attention(p);
    }
    {
      ThreadCount scoped(2);
      two_threads = run_attention(p);
    }
    EXPECT_EQ(0, std::memcmp(one_thread.data(), two_threads.data(), one_thread.size() * sizeof(float)));  // exact
  }
}

// A query's result must not depend on the rows it shares a tile with: a prompt's rows
// equal the same queries decoded one at a time, bit for bit (the runtime relies on it when
// it compares a batched prompt with token-by-token decoding).
TEST(Attention, PromptRowsEqualOneTokenAtATime) {
  SeededRng rng;
  for (ElementType type : kTypes) {
    const Case c{45, 6, 2, 64, 110, 60};
    SCOPED_TRACE(describe(c, type));
    const Problem p = make_problem(rng, c, type);
    const std::vector<float> batched = run_attention(p);
    const int64_t row = c.q_heads * c.head_dim;
    for (int64_t t = 0; t < c.tokens; ++t) {
      Problem single = p;
      single.shape.tokens = 1;
      single.shape.position_offset = c.position_offset + t;
      single.q.assign(p.q.begin() + t * row, p.q.begin() + (t + 1) * row);
      const std::vector<float> alone = run_attention(single);
      ASSERT_EQ(0, std::memcmp(alone.data(), batched.data() + t * row, row * sizeof(float))) << "token " << t;
    }
  }
}

// A q8_0 key block is widened to exactly the floats the dequantized cache holds, and the
// rest is the f32 path: the results must be the same bits.
TEST(Attention, Q8_0MatchesF32OverDequantizedCache) {
  SeededRng rng;
  for (int count : {1, 2}) {
    ThreadCount scoped(count);
    for (const Case& c : kCases) {
      if (!supports(c, ElementType::q8_0)) continue;
      SCOPED_TRACE(describe(c, ElementType::q8_0) + " threads=" + std::to_string(count));
      const Problem quantized = make_problem(rng, c, ElementType::q8_0);
      Problem widened = quantized;
      widened.k = make_cache(ElementType::f32, quantized.k.decoded);
      widened.v = make_cache(ElementType::f32, quantized.v.decoded);
      const std::vector<float> from_blocks = run_attention(quantized), from_floats = run_attention(widened);
      EXPECT_EQ(0, std::memcmp(from_blocks.data(), from_floats.data(), from_blocks.size() * sizeof(float)));
    }
  }
}

// Against attention over the values before quantization, q8_0's own error shows: each
// value moves by at most half a step, amax/254 (about 0.004 here), and with random signs
// the score errors stay near 0.004 · |q| · scale while outputs, averages of values, stay
// within that too. 2e-2 leaves margin for unlucky draws; a block with a wrong scale or
// misread codes moves scores and outputs by O(1).
TEST(Attention, Q8_0NearUnquantizedReference) {
  SeededRng rng;
  for (const Case& c : kCases) {
    if (!supports(c, ElementType::q8_0)) continue;
    SCOPED_TRACE(describe(c, ElementType::q8_0));
    const Problem exact = make_problem(rng, c, ElementType::f32);
    Problem quantized = exact;
    quantized.k = make_cache(ElementType::q8_0, exact.k.decoded);
    quantized.v = make_cache(ElementType::q8_0, exact.v.decoded);
    const std::vector<float> actual = run_attention(quantized);
    const std::vector<double> expected = reference_attention(exact);
    double worst = 0.0;
    for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(actual[i] - expected[i]));
    EXPECT_LT(worst, 2e-2);
  }
}

}  // namespace
}  // namespace ember::cpu
