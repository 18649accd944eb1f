// The kept rope table gives cpu::rope_angles' bits for every position, grows as positions
// reach further, keeps a table per (rotary dims, base, scale), and leaves positions it
// cannot hold (negative, or past kMostRows) to a direct computation.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/rope_angle_cache.h"

namespace ember {
namespace {

std::vector<float> direct(int64_t tokens, const int32_t* positions, const cpu::RopeParams& params) {
  std::vector<float> table(static_cast<size_t>(tokens * params.rotary_dims), -1.0f);
  cpu::rope_angles(tokens, positions, params, table.data());
  return table;
}

std::vector<float> kept(RopeAngleCache& cache, int64_t tokens, const int32_t* positions,
                        const cpu::RopeParams& params) {
  std::vector<float> table(static_cast<size_t>(tokens * params.rotary_dims), -1.0f);
  cache.fill(tokens, positions, params, table.data());
  return table;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(RopeAngleCache, GivesTheDirectTableBitForBitAndGrowsAsPositionsReachFurther) {
  RopeAngleCache cache;
  const cpu::RopeParams params{.rotary_dims = 96, .base = 500000.0f, .position_scale = 0.25f};
  std::mt19937 engine(std::random_device{}());
  std::uniform_int_distribution<int32_t> near(0, 200);
  std::vector<int32_t> positions(37);
  for (int32_t& position : positions) position = near(engine);
  EXPECT_TRUE(same_bits(kept(cache, 37, positions.data(), params), direct(37, positions.data(), params)));
  EXPECT_EQ(cache.rows_kept(params), 256) << "the smallest table";

  positions[5] = 1000;  // past the table: it doubles, or grows to reach the position
  EXPECT_TRUE(same_bits(kept(cache, 37, positions.data(), params), direct(37, positions.data(), params)));
  EXPECT_EQ(cache.rows_kept(params), 1001);

  cpu::RopeParams offset = params;
  offset.position_offset = 990;  // positions 990 .. 1019, without a positions tensor
  EXPECT_TRUE(same_bits(kept(cache, 30, nullptr, offset), direct(30, nullptr, offset)));
  EXPECT_EQ(cache.rows_kept(params), 2002);

  cpu::RopeParams other_base = params;
  other_base.base = 10000.0f;
  EXPECT_TRUE(same_bits(kept(cache, 37, positions.data(), other_base), direct(37, positions.data(), other_base)));
  EXPECT_EQ(cache.rows_kept(other_base), 1001) << "a table of its own";
}

TEST(RopeAngleCache, LeavesPositionsItCannotHoldToTheDirectComputation) {
  RopeAngleCache cache;
  const cpu::RopeParams params{.rotary_dims = 64};
  const std::vector<int32_t> negative = {3, -2, 7};
  EXPECT_TRUE(same_bits(kept(cache, 3, negative.data(), params), direct(3, negative.data(), params)));
  const std::vector<int32_t> far = {1, static_cast<int32_t>(RopeAngleCache::kMostRows)};
  EXPECT_TRUE(same_bits(kept(cache, 2, far.data(), params), direct(2, far.data(), params)));
  EXPECT_EQ(cache.rows_kept(params), 0) << "no table kept for either";
}

}  // namespace
}  // namespace ember
