#include <gtest/gtest.h>

#include <array>
#include <set>
#include <vector>

#include "ember/buffer_pool.h"

namespace ember {
namespace {

TEST(BufferPool, BucketsWasteAtMostAnEighth) {
  for (size_t bytes : {1ul, 255ul, 256ul, 257ul, 1000ul, 4096ul, 4097ul, 1000000ul, 123456789ul}) {
    const size_t bucket = BufferPool::bucket_size(bytes);
    EXPECT_GE(bucket, bytes);
    if (bytes > 256) {
      EXPECT_LE(bucket - bytes, bytes / 8 + 1) << bytes;
    }
  }
  EXPECT_EQ(BufferPool::bucket_size(4096), 4096u);
  EXPECT_EQ(BufferPool::bucket_size(4097), 4608u);
}

TEST(BufferPool, ReusesReleasedBuffersOfTheSameBucket) {
  BufferPool pool;
  std::byte* first_address;
  {
    auto first = pool.acquire(1000).value();
    first_address = first->host_write().value();
    EXPECT_EQ(pool.stats().bytes_live, BufferPool::bucket_size(1000));
  }
  PoolStats after_release = pool.stats();
  EXPECT_EQ(after_release.bytes_live, 0u);
  EXPECT_EQ(after_release.bytes_cached, BufferPool::bucket_size(1000));
  auto again = pool.acquire(990).value();  // same bucket
  EXPECT_EQ(again->host_write().value(), first_address);
  PoolStats stats = pool.stats();
  EXPECT_EQ(stats.allocations, 1u);
  EXPECT_EQ(stats.reuses, 1u);
  EXPECT_EQ(stats.bytes_cached, 0u);
  auto other = pool.acquire(100000).value();  // different bucket: fresh
  EXPECT_EQ(pool.stats().allocations, 2u);
}

TEST(BufferPool, TracksPeakOfLiveBytes) {
  BufferPool pool;
  {
    auto a = pool.acquire(4096).value();
    auto b = pool.acquire(4096).value();
    auto c = pool.acquire(4096).value();
  }
  EXPECT_EQ(pool.stats().bytes_peak, 3u * 4096);
  pool.reset_peak();
  EXPECT_EQ(pool.stats().bytes_peak, 0u);
  auto d = pool.acquire(4096).value();
  EXPECT_EQ(pool.stats().bytes_peak, 4096u);
}

TEST(BufferPool, CapTrimsLeastRecentlyReleasedFirst) {
  BufferPool pool(3 * 4096);
  std::byte* addresses[4];
  {
    std::vector<std::shared_ptr<Buffer>> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(pool.acquire(4096).value());
      addresses[i] = held.back()->host_write().value();
    }
    // Released in order 0, 1, 2, 3: buffer 0 is the oldest and must go first.
  }
  PoolStats stats = pool.stats();
  EXPECT_EQ(stats.bytes_cached, 3u * 4096);
  EXPECT_EQ(stats.trimmed, 1u);
  // The three kept are the most recently released: 1, 2 and 3.
  std::vector<std::shared_ptr<Buffer>> reacquired;
  std::set<std::byte*> kept;
  for (int i = 0; i < 3; ++i) {
    reacquired.push_back(pool.acquire(4096).value());
    kept.insert(reacquired.back()->host_write().value());
  }
  EXPECT_EQ(kept, (std::set<std::byte*>{addresses[1], addresses[2], addresses[3]}));
  pool.trim(0);
  EXPECT_EQ(pool.stats().bytes_cached, 0u);
}

// A pass that asks for the same sizes in the same order gets the same buffers back,
// whatever order the pass before released them in.
TEST(BufferPool, ARepeatedPassGetsTheSameBuffers) {
  BufferPool pool;
  const auto pass = [&pool](std::array<int, 4> release_order) {
    std::array<std::shared_ptr<Buffer>, 4> held;
    std::vector<const Buffer*> got;
    for (auto& buffer : held) {
      buffer = pool.acquire(1000).value();
      got.push_back(buffer.get());
    }
    for (int i : release_order) held[static_cast<size_t>(i)].reset();
    return got;
  };
  pass({0, 1, 2, 3});  // makes the buffers
  const std::vector<const Buffer*> second = pass({3, 1, 0, 2});
  EXPECT_EQ(pass({2, 3, 1, 0}), second);
  EXPECT_EQ(pass({0, 1, 2, 3}), second);
  EXPECT_EQ(pass({1, 0, 3, 2}), second);
}

TEST(BufferPool, BuffersOutliveThePool) {
  std::shared_ptr<Buffer> survivor;
  {
    BufferPool pool;
    survivor = pool.acquire(512).value();
  }
  survivor->host_write().value()[511] = std::byte{7};  // still valid memory (ASan would flag otherwise)
  EXPECT_EQ(survivor->host_read().value()[511], std::byte{7});
}

}  // namespace
}  // namespace ember
