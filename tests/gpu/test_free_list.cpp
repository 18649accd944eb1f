#include <gtest/gtest.h>

#include <vector>

#include "gpu/free_list.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

TEST(FreeList, AlignsEveryOffsetAndKeepsThePaddingFree) {
  FreeList list(4096);
  ASSERT_EQ(list.allocate(3, 1), 0u);
  const auto aligned = list.allocate(100, 256);
  ASSERT_TRUE(aligned);
  EXPECT_EQ(*aligned, 256u);
  EXPECT_EQ(list.used_bytes(), 103u);
  // The 253 bytes between the two are still there for a request that fits them.
  const auto small = list.allocate(200, 4);
  ASSERT_TRUE(small);
  EXPECT_EQ(*small, 4u);
}

TEST(FreeList, ReusesAReleasedRangeAndCoalescesNeighbours) {
  FreeList list(1000);
  const auto a = list.allocate(100, 1), b = list.allocate(100, 1), c = list.allocate(100, 1);
  ASSERT_TRUE(a && b && c);
  list.release(*b, 100);
  EXPECT_EQ(list.allocate(100, 1), b);  // best fit: the hole, not the tail
  list.release(*b, 100);
  list.release(*a, 100);
  EXPECT_EQ(list.free_range_count(), 2u);  // [0, 200) merged, and the tail
  list.release(*c, 100);
  EXPECT_EQ(list.free_range_count(), 1u);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.largest_free_range(), 1000u);
}

TEST(FreeList, RefusesWhatDoesNotFit) {
  FreeList list(256);
  EXPECT_FALSE(list.allocate(257, 1));
  ASSERT_TRUE(list.allocate(200, 1));
  EXPECT_FALSE(list.allocate(64, 64));  // 56 bytes free, but [200, 256) has no 64-aligned start with room
  EXPECT_TRUE(list.allocate(56, 8));
  EXPECT_EQ(list.free_bytes(), 0u);
}

// Random allocations and releases against a byte map: no range handed out twice, every
// offset aligned, and the books (free bytes, ranges) agree with the map.
TEST(FreeList, RandomTrafficMatchesAByteMap) {
  testing::SeededRng rng;
  constexpr uint64_t kCapacity = 1 << 16;
  FreeList list(kCapacity);
  std::vector<int> owner(kCapacity, -1);
  struct Live {
    uint64_t offset, size;
  };
  std::vector<Live> live;
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng.integer(0, 2) > 0) {
      const uint64_t size = static_cast<uint64_t>(rng.integer(1, 3000));
      const uint64_t alignment = uint64_t{1} << rng.integer(0, 9);
      const auto offset = list.allocate(size, alignment);
      if (!offset) continue;
      ASSERT_EQ(*offset % alignment, 0u);
      ASSERT_LE(*offset + size, kCapacity);
      for (uint64_t i = *offset; i < *offset + size; ++i) {
        ASSERT_EQ(owner[i], -1) << "byte " << i << " given out twice";
        owner[i] = step;
      }
      live.push_back({*offset, size});
    } else {
      const size_t pick = static_cast<size_t>(rng.integer(0, static_cast<int64_t>(live.size()) - 1));
      list.release(live[pick].offset, live[pick].size);
      for (uint64_t i = live[pick].offset; i < live[pick].offset + live[pick].size; ++i) owner[i] = -1;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
    }
    uint64_t free_bytes = 0, ranges = 0, largest = 0, run = 0;
    for (uint64_t i = 0; i < kCapacity; ++i) {
      if (owner[i] == -1) {
        ++free_bytes;
        if (run++ == 0) ++ranges;
        largest = std::max(largest, run);
      } else {
        run = 0;
      }
    }
    ASSERT_EQ(list.free_bytes(), free_bytes);
    ASSERT_EQ(list.free_range_count(), ranges) << "adjacent free ranges were not merged";
    ASSERT_EQ(list.largest_free_range(), largest);
  }
}

}  // namespace
}  // namespace ember::gpu
