// Attention over a device KV cache (gpu/attention.h) against the CPU's tiled kernel on
// random data: f32 and f16 caches, grouped-query heads, two segments of one sequence (a
// prompt, then a token decoded after it) and a head size that is no multiple of 32. The
// new keys and values must land in the cache exactly as the CPU stores them (f16 rounded
// to nearest even), and the outputs agree to 1e-5 of the values' scale: the device sums
// the softmax in three passes, the CPU with a running maximum over tiles.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "gpu/attention.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/convert.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

struct Gpu {
  Allocator allocator;
  PipelineCache pipelines;
  std::unique_ptr<DescriptorSets> sets;
  DeviceAttention attention;
  explicit Gpu(Context& context) : allocator(context), pipelines(context), attention(pipelines) {
    auto created = DescriptorSets::create(context, 16);
    EXPECT_TRUE(created) << created.status().message();
    if (created) sets = std::move(created.value());
  }
};

TEST(GpuAttention, MatchesTheCpuOverF32AndF16Caches) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.sets, nullptr);
  Allocator& allocator = gpu.allocator;
  DeviceAttention& attention = gpu.attention;
  testing::SeededRng rng;
  constexpr uint32_t kQHeads = 6, kKvHeads = 2, kHeadDim = 40, kCacheRows = 160;
  constexpr uint32_t kRow = kKvHeads * kHeadDim;
  for (const CacheType type : {CacheType::f32, CacheType::f16}) {
    SCOPED_TRACE(type == CacheType::f16 ? "f16 cache" : "f32 cache");
    // Segment 0: 150 prompt tokens from position 0; segment 1: the next one, at 150.
    const std::vector<uint32_t> tokens = {150, 1}, positions = {0, 150};
    const uint32_t rows = tokens[0] + tokens[1];
    const std::vector<float> q = rng.uniform(size_t{rows} * kQHeads * kHeadDim);
    const std::vector<float> k_new = rng.uniform(size_t{rows} * kRow), v_new = rng.uniform(size_t{rows} * kRow);
    const size_t element_bytes = type == CacheType::f16 ? 2 : 4;
    const std::vector<uint8_t> empty_cache(size_t{kCacheRows} * kRow * element_bytes, 0x7f);
    DeviceBuffer q_buffer = mapped_buffer(allocator, q), k_buffer = mapped_buffer(allocator, k_new),
                 v_buffer = mapped_buffer(allocator, v_new);
    DeviceBuffer k_cache = mapped_buffer(allocator, empty_cache), v_cache = mapped_buffer(allocator, empty_cache);
    DeviceBuffer out = mapped_buffer(allocator, testing::poisoned(size_t{rows} * kQHeads * kHeadDim + 3));
    const uint32_t stride = positions[1] + tokens[1];
    auto scratch = DeviceBuffer::create(allocator, 4 * DeviceAttention::scratch_floats(rows, kQHeads, stride),
                                        MemoryUse::device);
    ASSERT_TRUE(scratch) << scratch.status().message();
    // Each segment in a batch of its own, as two forward passes would run them.
    uint32_t first_row = 0;
    for (size_t s = 0; s < tokens.size(); ++s) {
      const AttentionShape shape{.first_row = first_row, .tokens = tokens[s], .position = positions[s],
                                 .q_heads = kQHeads, .kv_heads = kKvHeads, .head_dim = kHeadDim,
                                 .cache_rows = kCacheRows, .cache_type = type, .scale = 0.158f};
      CommandBatch batch(context, *gpu.sets);
      ASSERT_TRUE(attention.record_store(batch, shape, k_buffer, k_cache, v_buffer, v_cache));
      EXPECT_EQ(batch.dispatches(), 1u) << "keys and values stored in one dispatch";
      const Status recorded = attention.record_attend(batch, shape, q_buffer, k_cache, v_cache, out, scratch.value(), stride);
      ASSERT_TRUE(recorded) << recorded.message();
      const Status ran = batch.run();
      ASSERT_TRUE(ran) << ran.message();
      first_row += tokens[s];
    }

    // The CPU's caches: the same rows stored the CPU's way, bytes compared.
    std::vector<uint8_t> k_expected(size_t{rows} * kRow * element_bytes), v_expected(k_expected.size());
    if (type == CacheType::f16) {
      quant::f32_to_f16_row(k_new.data(), reinterpret_cast<uint16_t*>(k_expected.data()), int64_t{rows} * kRow);
      quant::f32_to_f16_row(v_new.data(), reinterpret_cast<uint16_t*>(v_expected.data()), int64_t{rows} * kRow);
    } else {
      std::memcpy(k_expected.data(), k_new.data(), k_expected.size());
      std::memcpy(v_expected.data(), v_new.data(), v_expected.size());
    }
    const std::vector<uint8_t> k_stored = read_mapped<uint8_t>(k_cache, empty_cache.size());
    const std::vector<uint8_t> v_stored = read_mapped<uint8_t>(v_cache, empty_cache.size());
    EXPECT_TRUE(std::equal(k_expected.begin(), k_expected.end(), k_stored.begin())) << "keys stored differently";
    EXPECT_TRUE(std::equal(v_expected.begin(), v_expected.end(), v_stored.begin())) << "values stored differently";
    EXPECT_EQ(k_stored[k_expected.size()], 0x7f) << "stored past the new rows";

    std::vector<float> expected(size_t{rows} * kQHeads * kHeadDim);
    first_row = 0;
    for (size_t s = 0; s < tokens.size(); ++s) {
      cpu::AttentionArgs args;
      args.q = q.data() + size_t{first_row} * kQHeads * kHeadDim;
      args.k = k_expected.data();
      args.v = v_expected.data();
      args.kv_type = type == CacheType::f16 ? cpu::ElementType::f16 : cpu::ElementType::f32;
      args.out = expected.data() + size_t{first_row} * kQHeads * kHeadDim;
      args.tokens = tokens[s];
      args.q_heads = kQHeads;
      args.kv_heads = kKvHeads;
      args.head_dim = kHeadDim;
      args.kv_length = positions[s] + tokens[s];
      args.position_offset = positions[s];
      args.scale = 0.158f;
      cpu::attention(args);
      first_row += tokens[s];
    }
    const std::vector<float> actual = read_mapped<float>(out, expected.size() + 3);
    for (size_t i = expected.size(); i < actual.size(); ++i) ASSERT_TRUE(std::isnan(actual[i])) << "wrote past the output";
    int failures = 0;
    for (size_t i = 0; i < expected.size(); ++i)
      if (!(std::fabs(actual[i] - expected[i]) <= 1e-5) && ++failures <= 5)
        ADD_FAILURE() << "output " << i << ": " << actual[i] << ", expected " << expected[i];
    EXPECT_EQ(failures, 0);
  }
}

TEST(GpuAttention, RejectsShapesItCannotRunWithTheReason) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.sets, nullptr);
  DeviceAttention& attention = gpu.attention;
  DeviceBuffer buffer = mapped_buffer(gpu.allocator, std::vector<float>(4096));
  CommandBatch batch(context, *gpu.sets);
  AttentionShape shape{.tokens = 2, .position = 9, .q_heads = 4, .kv_heads = 2, .head_dim = 8, .cache_rows = 10};
  Status status = attention.record_store(batch, shape, buffer, buffer, buffer, buffer);
  EXPECT_NE(status.message().find("positions 9..10 past the cache's 10 rows"), std::string::npos) << status.message();
  shape.position = 0;
  shape.kv_heads = 3;
  status = attention.record_attend(batch, shape, buffer, buffer, buffer, buffer, buffer, 2);
  EXPECT_NE(status.message().find("4 query heads do not share 3 kv heads evenly"), std::string::npos)
      << status.message();
  shape.kv_heads = 2;
  shape.head_dim = 300;
  status = attention.record_store(batch, shape, buffer, buffer, buffer, buffer);
  EXPECT_NE(status.message().find("head size 300"), std::string::npos) << status.message();
  EXPECT_EQ(batch.dispatches(), 0u);
}

}  // namespace
}  // namespace ember::gpu
