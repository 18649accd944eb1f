#include "cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::poisoned;
using testing::SeededRng;

// Element indices of pair i within a head: adjacent for normal, split halves for neox.
std::pair<int64_t, int64_t> pair_indices(RopeStyle style, int64_t rotary_dims, int64_t i) {
  return style == RopeStyle::normal ? std::pair{2 * i, 2 * i + 1} : std::pair{i, i + rotary_dims / 2};
}

std::vector<float> reference_rope(const std::vector<float>& x, int64_t tokens, int64_t heads, int64_t head_dim,
                                  const int32_t* positions, const RopeParams& params) {
  std::vector<float> y = x;  // the dims past rotary_dims are copied
  for (int64_t t = 0; t < tokens; ++t) {
    const double position = positions ? positions[t] : params.position_offset + t;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t head = (t * heads + h) * head_dim;
      for (int64_t i = 0; i < params.rotary_dims / 2; ++i) {
        const double theta = position * std::pow(static_cast<double>(params.base), -2.0 * i / params.rotary_dims);
        const auto [first, second] = pair_indices(params.style, params.rotary_dims, i);
        const double a = x[head + first], b = x[head + second];
        y[head + first] = static_cast<float>(a * std::cos(theta) - b * std::sin(theta));
        y[head + second] = static_cast<float>(a * std::sin(theta) + b * std::cos(theta));
      }
    }
  }
  return y;
}

double max_absolute_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  double worst = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double error = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (!(error <= worst)) worst = error;  // NaN sticks
  }
  return worst;
}

struct Case {
  RopeStyle style;
  int64_t tokens, heads, head_dim, rotary_dims;
};
constexpr Case kCases[] = {
    {RopeStyle::normal, 7, 3, 38, 38},   {RopeStyle::neox, 7, 3, 38, 38},
    {RopeStyle::normal, 5, 3, 37, 22},   {RopeStyle::neox, 5, 3, 37, 22},  // partial rotary, odd head_dim
    {RopeStyle::normal, 37, 13, 66, 34}, {RopeStyle::neox, 37, 13, 66, 34},
    {RopeStyle::normal, 1, 1, 2, 2},     {RopeStyle::neox, 3, 2, 9, 0},  // single pair; nothing rotated
};

TEST(Rope, MatchesReferenceWithPositionOffset) {
  SeededRng rng;
  for (const Case& c : kCases) {
    const std::vector<float> x = rng.uniform(c.tokens * c.heads * c.head_dim);
    const RopeParams params{c.style, c.rotary_dims, 10000.0f, rng.integer(0, 5000)};
    std::vector<float> y = poisoned(x.size());
    rope(x.data(), y.data(), c.tokens, c.heads, c.head_dim, nullptr, params);
    // |x| ≤ 1; float cos/sin and two float products per output: 1e-6 absolute.
    EXPECT_LE(max_absolute_error(y, reference_rope(x, c.tokens, c.heads, c.head_dim, nullptr, params)), 1e-6)
        << "style " << static_cast<int>(c.style) << " head_dim " << c.head_dim << " rotary " << c.rotary_dims;
    for (int64_t row = 0; row < c.tokens * c.heads; ++row) {
      for (int64_t d = c.rotary_dims; d < c.head_dim; ++d) {
        EXPECT_EQ(y[row * c.head_dim + d], x[row * c.head_dim + d]);  // exact copy past rotary_dims
      }
    }
  }
}

TEST(Rope, ExplicitPositionsOverrideTheOffset) {
  SeededRng rng;
  for (const Case& c : kCases) {
    const std::vector<float> x = rng.uniform(c.tokens * c.heads * c.head_dim);
    std::vector<int32_t> positions(c.tokens);
    for (int32_t& p : positions) p = static_cast<int32_t>(rng.integer(0, 500000));  // unordered, long context
    const RopeParams params{c.style, c.rotary_dims, 500000.0f, 777};
    std::vector<float> y = poisoned(x.size());
    rope(x.data(), y.data(), c.tokens, c.heads, c.head_dim, positions.data(), params);
    // As above: 1e-6 absolute, which holds only if the large angles are formed in double.
    EXPECT_LE(max_absolute_error(y, reference_rope(x, c.tokens, c.heads, c.head_dim, positions.data(), params)),
              1e-6)
        << "style " << static_cast<int>(c.style) << " head_dim " << c.head_dim;
  }
}

TEST(Rope, OffsetEqualsTheSamePositionsGivenExplicitly) {
  SeededRng rng;
  const int64_t tokens = 13, heads = 5, head_dim = 42;
  const std::vector<float> x = rng.uniform(tokens * heads * head_dim);
  const int64_t offset = rng.integer(1, 100000);
  std::vector<int32_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(offset + t);
  for (RopeStyle style : {RopeStyle::normal, RopeStyle::neox}) {
    std::vector<float> from_offset = poisoned(x.size());
    std::vector<float> from_positions = poisoned(x.size());
    rope(x.data(), from_offset.data(), tokens, heads, head_dim, nullptr, {style, 30, 10000.0f, offset});
    rope(x.data(), from_positions.data(), tokens, heads, head_dim, positions.data(), {style, 30, 10000.0f, 0});
    EXPECT_EQ(from_offset, from_positions);  // bit-identical: the same angles either way
  }
}

TEST(Rope, RotationPreservesPairNorms) {
  SeededRng rng;
  for (const Case& c : kCases) {
    const std::vector<float> x = rng.uniform(c.tokens * c.heads * c.head_dim);
    const RopeParams params{c.style, c.rotary_dims, 10000.0f, rng.integer(1, 5000)};
    std::vector<float> y = poisoned(x.size());
    rope(x.data(), y.data(), c.tokens, c.heads, c.head_dim, nullptr, params);
    for (int64_t row = 0; row < c.tokens * c.heads; ++row) {
      for (int64_t i = 0; i < c.rotary_dims / 2; ++i) {
        const auto [first, second] = pair_indices(c.style, c.rotary_dims, i);
        const float* in = x.data() + row * c.head_dim;
        const float* out = y.data() + row * c.head_dim;
        // |x| ≤ 1: a few float roundings in the rotated pair, 1e-6 absolute on the norm.
        EXPECT_NEAR(std::hypot(out[first], out[second]), std::hypot(in[first], in[second]), 1e-6)
            << "row " << row << " pair " << i;
      }
    }
  }
}

TEST(Rope, PositionZeroIsTheIdentity) {
  SeededRng rng;
  const std::vector<float> x = rng.uniform(3 * 38);
  for (RopeStyle style : {RopeStyle::normal, RopeStyle::neox}) {
    std::vector<float> y = poisoned(x.size());
    rope(x.data(), y.data(), 1, 3, 38, nullptr, {style, 38, 10000.0f, 0});
    EXPECT_EQ(y, x);  // exact: cos 0 = 1 and sin 0 = 0
  }
}

TEST(Rope, InPlaceEqualsOutOfPlace) {
  SeededRng rng;
  const int64_t tokens = 37, heads = 9, head_dim = 70;  // enough work to run on several threads
  for (RopeStyle style : {RopeStyle::normal, RopeStyle::neox}) {
    std::vector<float> x = rng.uniform(tokens * heads * head_dim);
    const RopeParams params{style, 46, 10000.0f, rng.integer(0, 5000)};
    std::vector<float> y = poisoned(x.size());
    rope(x.data(), y.data(), tokens, heads, head_dim, nullptr, params);
    rope(x.data(), x.data(), tokens, heads, head_dim, nullptr, params);
    EXPECT_EQ(x, y);  // bit-identical
  }
}

}  // namespace
}  // namespace ember::cpu
