#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "gpu/allocator.h"
#include "gpu/device_buffer.h"
#include "gpu_test_context.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

VkMemoryRequirements request(uint64_t size, uint64_t alignment) {
  return {size, alignment, UINT32_MAX};
}

TEST(GpuAllocator, PicksMemoryTypesByUse) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context);
  const auto& types = context.capabilities().memory_types;
  const auto device = allocator.memory_type_for(MemoryUse::device);
  ASSERT_TRUE(device);
  EXPECT_TRUE(types[*device].device_local);
  const auto staging = allocator.memory_type_for(MemoryUse::staging);
  ASSERT_TRUE(staging);
  EXPECT_TRUE(types[*staging].host_visible && types[*staging].host_coherent);
  if (const auto mapped = allocator.memory_type_for(MemoryUse::device_mapped)) {
    EXPECT_TRUE(types[*mapped].device_local && types[*mapped].host_visible);
  }
  EXPECT_FALSE(allocator.memory_type_for(MemoryUse::device, 0u));  // no allowed type at all
}

TEST(GpuAllocator, HonoursAlignmentAndSharesOneBlock) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = 4 * kMiB});
  std::vector<Allocation> held;
  for (uint64_t alignment : {1u, 16u, 256u, 4096u, 65536u}) {
    auto allocation = allocator.allocate(request(1000 + alignment, alignment), MemoryUse::device);
    ASSERT_TRUE(allocation) << allocation.status().message();
    EXPECT_EQ(allocation->offset % alignment, 0u) << "alignment " << alignment;
    held.push_back(allocation.value());
  }
  for (size_t i = 1; i < held.size(); ++i) EXPECT_EQ(held[i].memory, held[0].memory);
  const AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.blocks, 1u);
  EXPECT_EQ(stats.allocations, held.size());
  EXPECT_EQ(stats.reserved_bytes, 4 * kMiB);
  uint64_t requested = 0;
  for (const Allocation& a : held) requested += a.size;
  EXPECT_EQ(stats.used_bytes, requested);
  for (const Allocation& a : held) allocator.release(a);
  EXPECT_EQ(allocator.stats().used_bytes, 0u);
}

TEST(GpuAllocator, ReusesReleasedRangesAndKeepsOneSpareBlock) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = kMiB});
  auto first = allocator.allocate(request(300 * 1024, 256), MemoryUse::device);
  ASSERT_TRUE(first);
  allocator.release(first.value());
  EXPECT_EQ(allocator.stats().blocks, 1u);  // the spare stays
  auto again = allocator.allocate(request(300 * 1024, 256), MemoryUse::device);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->memory, first->memory);
  EXPECT_EQ(again->offset, first->offset);

  // Larger than a block: a dedicated block, freed as soon as it is released.
  auto big = allocator.allocate(request(3 * kMiB, 256), MemoryUse::device);
  ASSERT_TRUE(big) << big.status().message();
  EXPECT_NE(big->memory, first->memory);
  EXPECT_EQ(allocator.stats().blocks, 2u);
  EXPECT_EQ(allocator.stats().reserved_bytes, 4 * kMiB);
  allocator.release(big.value());
  EXPECT_EQ(allocator.stats().blocks, 1u);
  EXPECT_EQ(allocator.stats().reserved_bytes, kMiB);

  // A second ordinary block, emptied while the first is empty too: only one spare remains.
  auto fill = allocator.allocate(request(900 * 1024, 1), MemoryUse::device);
  ASSERT_TRUE(fill);
  EXPECT_EQ(allocator.stats().blocks, 2u);
  allocator.release(again.value());
  allocator.release(fill.value());
  EXPECT_EQ(allocator.stats().blocks, 1u);
}

TEST(GpuAllocator, TrimFreesOnlyEmptyBlocks) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = kMiB});
  auto held = allocator.allocate(request(900 * 1024, 256), MemoryUse::device);
  auto spare = allocator.allocate(request(900 * 1024, 256), MemoryUse::device);
  ASSERT_TRUE(held && spare);
  allocator.release(spare.value());
  ASSERT_EQ(allocator.stats().blocks, 2u);
  EXPECT_EQ(allocator.trim(), kMiB);
  EXPECT_EQ(allocator.stats().blocks, 1u);
  EXPECT_EQ(allocator.stats().reserved_bytes, kMiB);
  allocator.release(held.value());
  EXPECT_EQ(allocator.trim(), kMiB);
  EXPECT_EQ(allocator.stats().blocks, 0u);
}

TEST(GpuAllocator, InjectedOutOfMemoryIsAnErrorValueForTheArmedCallsOnly) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = kMiB});
  context.faults().arm(gpu::InjectedFault::out_of_device_memory, 2);
  for (int call = 0; call < 2; ++call) {
    auto refused = allocator.allocate(request(1024, 256), MemoryUse::device);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.status().kind(), gpu::ErrorKind::out_of_memory);
    EXPECT_NE(refused.status().message().find("VK_ERROR_OUT_OF_DEVICE_MEMORY"), std::string::npos)
        << refused.status().message();
  }
  auto granted = allocator.allocate(request(1024, 256), MemoryUse::device);
  ASSERT_TRUE(granted) << granted.status().message();
  allocator.release(granted.value());
}

TEST(GpuAllocator, CoalescesAndReportsFragmentation) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = 8 * kMiB});
  std::vector<Allocation> quarters;
  for (int i = 0; i < 4; ++i) {
    auto allocation = allocator.allocate(request(2 * kMiB, 256), MemoryUse::device);
    ASSERT_TRUE(allocation);
    quarters.push_back(allocation.value());
  }
  EXPECT_EQ(allocator.stats().fragmentation, 0.0);  // nothing free
  allocator.release(quarters[0]);
  allocator.release(quarters[2]);
  AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.largest_free_range, 2 * kMiB);
  EXPECT_DOUBLE_EQ(stats.fragmentation, 0.5);  // 4 MiB free in two 2 MiB pieces
  allocator.release(quarters[1]);  // merges [0, 6 MiB)
  stats = allocator.stats();
  EXPECT_EQ(stats.largest_free_range, 6 * kMiB);
  EXPECT_DOUBLE_EQ(stats.fragmentation, 0.0);
  auto merged = allocator.allocate(request(6 * kMiB, 256), MemoryUse::device);
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->memory, quarters[0].memory);
  EXPECT_EQ(merged->offset, quarters[0].offset);
}

TEST(GpuAllocator, ExhaustedBudgetIsAnErrorValue) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context, {.block_bytes = kMiB, .budget_bytes = 3 * kMiB});
  std::vector<Allocation> held;
  for (int i = 0; i < 3; ++i) {
    auto allocation = allocator.allocate(request(kMiB, 256), MemoryUse::device);
    ASSERT_TRUE(allocation) << allocation.status().message();
    held.push_back(allocation.value());
  }
  auto refused = allocator.allocate(request(kMiB, 256), MemoryUse::device);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().kind(), ErrorKind::out_of_memory);
  EXPECT_NE(refused.status().message().find("budget of 3 MiB"), std::string::npos) << refused.status().message();
  auto too_big = allocator.allocate(request(64 * kMiB, 256), MemoryUse::device);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.status().kind(), ErrorKind::out_of_memory);
  allocator.release(held.back());
  held.pop_back();
  auto after_release = allocator.allocate(request(kMiB, 256), MemoryUse::device);
  EXPECT_TRUE(after_release) << after_release.status().message();
  EXPECT_LE(allocator.stats().reserved_bytes, 3 * kMiB);
}

TEST(GpuAllocator, HeapLimitRefusesAnImpossibleBlock) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context);
  const auto type = allocator.memory_type_for(MemoryUse::device);
  ASSERT_TRUE(type);
  const uint64_t heap_bytes = context.capabilities().heaps[context.capabilities().memory_types[*type].heap].bytes;
  auto refused = allocator.allocate(request(heap_bytes + kMiB, 256), MemoryUse::device);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().kind(), ErrorKind::out_of_memory);
  EXPECT_EQ(allocator.stats().blocks, 0u);
}

// Buffers really bound to their memory: bytes written through one buffer's mapping,
// copied by the device into a second buffer, come back through the second's mapping.
TEST(GpuDeviceBuffer, DeviceCopyBetweenSubAllocatedBuffers) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  testing::SeededRng rng;
  Allocator allocator(context, {.block_bytes = kMiB});
  const uint64_t bytes = static_cast<uint64_t>(rng.integer(1, 200000));
  auto source = DeviceBuffer::create(allocator, bytes, MemoryUse::staging);
  auto target = DeviceBuffer::create(allocator, bytes, MemoryUse::staging);
  ASSERT_TRUE(source && target);
  ASSERT_NE(source->mapped(), nullptr);
  EXPECT_EQ(source->allocation().memory, target->allocation().memory);  // one block
  std::vector<std::byte> pattern(bytes);
  for (auto& b : pattern) b = static_cast<std::byte>(rng.integer(0, 255));
  std::memcpy(source->mapped(), pattern.data(), bytes);
  std::memset(target->mapped(), 0xAB, bytes);
  const Status status = context.run_and_wait([&](VkCommandBuffer commands) {
    const VkBufferCopy region{0, 0, bytes};
    context.vk().vkCmdCopyBuffer(commands, source->handle(), target->handle(), 1, &region);
  });
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(std::memcmp(target->mapped(), pattern.data(), bytes), 0);
  const uint64_t used = allocator.stats().used_bytes;
  { DeviceBuffer gone = std::move(source.value()); }
  EXPECT_LT(allocator.stats().used_bytes, used);
}

}  // namespace
}  // namespace ember::gpu
