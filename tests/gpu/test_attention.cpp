// Attention over a device KV cache (gpu/attention.h) against the CPU's tiled kernel on
// random data: f32 and f16 caches, grouped-query heads, segments of one sequence that run
// tiled (prompts) and a workgroup per query row (short segments). The new keys and values
// must land in the cache exactly as the CPU stores them (f16 rounded to nearest even), and
// the outputs agree to 1e-5 of the values' scale: the row shader sums the softmax in three
// passes, the tiled one and the CPU with a running maximum over key tiles. With a rotary
// embedding, the segments on the row shader turn q and the keys themselves
// (AttentionRope) and the others take them turned by the CPU; the turned values then
// differ from the CPU's where the device fuses a multiply-add (1e-6), so the caches are
// compared within one f16 step instead of bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/attention.h"
#include "cpu/rope.h"
#include "gpu/attention.h"
#include "gpu/linear.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/convert.h"
#include "quant/quantize.h"
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

// Segments of one sequence, run as consecutive forward passes would run them.
struct Sequence {
  uint32_t q_heads, kv_heads, head_dim;
  std::vector<uint32_t> tokens, positions;
  std::optional<cpu::RopeParams> rope;  // q and keys turned, row r at position r
};

// Whether stored and expected caches hold the same values: bit for bit, or within one
// f16 step (f32: 1e-6) where the device turned the keys itself.
void expect_same_cache(const std::vector<uint8_t>& stored, const std::vector<uint8_t>& expected, CacheType type,
                       bool turned_here, const char* what) {
  if (!turned_here) {
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), stored.begin())) << what << " stored differently";
    return;
  }
  const size_t count = expected.size() / (type == CacheType::f16 ? 2 : 4);
  std::vector<float> stored_values(count), expected_values(count);
  if (type == CacheType::f16) {
    quant::f16_to_f32_row(reinterpret_cast<const uint16_t*>(stored.data()), stored_values.data(), int64_t(count));
    quant::f16_to_f32_row(reinterpret_cast<const uint16_t*>(expected.data()), expected_values.data(), int64_t(count));
  } else {
    std::memcpy(stored_values.data(), stored.data(), 4 * count);
    std::memcpy(expected_values.data(), expected.data(), 4 * count);
  }
  const float relative = type == CacheType::f16 ? 1.0f / 1024 : 0.0f;
  int failures = 0;
  for (size_t i = 0; i < count; ++i)
    if (!(std::fabs(stored_values[i] - expected_values[i]) <= relative * std::fabs(expected_values[i]) + 1e-6f) &&
        ++failures <= 5)
      ADD_FAILURE() << what << " " << i << ": " << stored_values[i] << ", expected " << expected_values[i];
  EXPECT_EQ(failures, 0);
}

void expect_attention_matches_the_cpu(Context& context, const Sequence& sequence) {
  Gpu gpu(context);
  ASSERT_NE(gpu.sets, nullptr);
  Allocator& allocator = gpu.allocator;
  DeviceAttention& attention = gpu.attention;
  testing::SeededRng rng;
  const uint32_t q_heads = sequence.q_heads, kv_heads = sequence.kv_heads, head_dim = sequence.head_dim;
  const uint32_t kv_row = kv_heads * head_dim;
  const uint32_t rows = sequence.positions.back() + sequence.tokens.back();
  const uint32_t cache_rows = rows + 9;
  for (const CacheType type : {CacheType::f32, CacheType::f16}) {
    SCOPED_TRACE(type == CacheType::f16 ? "f16 cache" : "f32 cache");
    const std::vector<float> unturned_q = rng.uniform(size_t{rows} * q_heads * head_dim);
    const std::vector<float> unturned_k = rng.uniform(size_t{rows} * kv_row), v_new = rng.uniform(size_t{rows} * kv_row);
    // What attends: q and the keys after the rotary embedding, if any, turned by the CPU.
    std::vector<float> q = unturned_q, k_new = unturned_k;
    std::vector<float> angles(2);
    if (sequence.rope) {
      angles.resize(size_t{rows} * sequence.rope->rotary_dims);
      cpu::rope_angles(rows, nullptr, *sequence.rope, angles.data());
      cpu::rope(unturned_q.data(), q.data(), rows, q_heads, head_dim, nullptr, *sequence.rope);
      cpu::rope(unturned_k.data(), k_new.data(), rows, kv_heads, head_dim, nullptr, *sequence.rope);
    }
    const DeviceBuffer unturned_q_buffer = mapped_buffer(allocator, unturned_q),
                       unturned_k_buffer = mapped_buffer(allocator, unturned_k),
                       angle_buffer = mapped_buffer(allocator, angles);
    const DeviceBuffer turned_q = mapped_buffer(allocator, testing::poisoned(q.size())),
                       turned_k = mapped_buffer(allocator, testing::poisoned(k_new.size()));
    bool turned_here = false;
    const size_t element_bytes = type == CacheType::f16 ? 2 : 4;
    const std::vector<uint8_t> empty_cache(size_t{cache_rows} * kv_row * element_bytes, 0x7f);
    DeviceBuffer q_buffer = mapped_buffer(allocator, q), k_buffer = mapped_buffer(allocator, k_new),
                 v_buffer = mapped_buffer(allocator, v_new);
    DeviceBuffer k_cache = mapped_buffer(allocator, empty_cache), v_cache = mapped_buffer(allocator, empty_cache);
    DeviceBuffer out = mapped_buffer(allocator, testing::poisoned(size_t{rows} * q_heads * head_dim + 3));
    std::vector<AttentionShape> shapes;
    uint64_t scratch_floats = 1;
    for (size_t s = 0; s < sequence.tokens.size(); ++s) {
      shapes.push_back({.first_row = sequence.positions[s], .tokens = sequence.tokens[s],
                        .position = sequence.positions[s], .q_heads = q_heads, .kv_heads = kv_heads,
                        .head_dim = head_dim, .cache_rows = cache_rows, .cache_type = type, .scale = 0.158f});
      scratch_floats = std::max(scratch_floats, DeviceAttention::scratch_floats(shapes.back(), context.capabilities()));
    }
    auto scratch = DeviceBuffer::create(allocator, 4 * scratch_floats, MemoryUse::device);
    ASSERT_TRUE(scratch) << scratch.status().message();
    for (const AttentionShape& shape : shapes) {
      CommandBatch batch(context, *gpu.sets);
      const bool turns = sequence.rope && DeviceAttention::turns_inside(shape, context.capabilities());
      turned_here = turned_here || turns;
      std::optional<AttentionRope> rope;
      if (turns)
        rope = AttentionRope{.angles = &angle_buffer,
                             .turned_q = &turned_q,
                             .turned_keys = &turned_k,
                             .pairs = static_cast<uint32_t>(sequence.rope->rotary_dims / 2),
                             .neox = sequence.rope->style == cpu::RopeStyle::neox};
      const Status recorded = attention.record(batch, shape,
                                               {.q = turns ? &unturned_q_buffer : &q_buffer,
                                                .new_keys = turns ? &unturned_k_buffer : &k_buffer,
                                                .new_values = &v_buffer, .key_cache = &k_cache,
                                                .value_cache = &v_cache, .out = &out, .scratch = &scratch.value()},
                                               std::nullopt, rope);
      ASSERT_TRUE(recorded) << recorded.message();
      const bool tiled = DeviceAttention::tile_keys(shape, context.capabilities()) != 0;
      EXPECT_EQ(batch.dispatches(), tiled ? 2u : 1u) << "a prompt stores, then attends; a short segment does both at once";
      const Status ran = batch.run();
      ASSERT_TRUE(ran) << ran.message();
    }

    // The CPU's caches: the same rows stored the CPU's way, bytes compared.
    std::vector<uint8_t> k_expected(size_t{rows} * kv_row * element_bytes), v_expected(k_expected.size());
    if (type == CacheType::f16) {
      quant::f32_to_f16_row(k_new.data(), reinterpret_cast<uint16_t*>(k_expected.data()), int64_t{rows} * kv_row);
      quant::f32_to_f16_row(v_new.data(), reinterpret_cast<uint16_t*>(v_expected.data()), int64_t{rows} * kv_row);
    } else {
      std::memcpy(k_expected.data(), k_new.data(), k_expected.size());
      std::memcpy(v_expected.data(), v_new.data(), v_expected.size());
    }
    const std::vector<uint8_t> k_stored = read_mapped<uint8_t>(k_cache, empty_cache.size());
    const std::vector<uint8_t> v_stored = read_mapped<uint8_t>(v_cache, empty_cache.size());
    expect_same_cache(k_stored, k_expected, type, turned_here, "key");
    expect_same_cache(v_stored, v_expected, type, false, "value");
    EXPECT_EQ(k_stored[k_expected.size()], 0x7f) << "stored past the new rows";
    if (sequence.rope) {
      // The rows the device turned, as the rope nodes' outputs; no others written.
      const std::vector<float> q_out = read_mapped<float>(turned_q, q.size()),
                               k_out = read_mapped<float>(turned_k, k_new.size());
      for (const AttentionShape& shape : shapes) {
        const bool turns = DeviceAttention::turns_inside(shape, context.capabilities());
        for (const auto& [actual, expected, width, what] :
             {std::tuple(&q_out, &q, q_heads * head_dim, "turned q"), std::tuple(&k_out, &k_new, kv_row, "turned key")})
          for (size_t i = size_t{shape.first_row} * width; i < size_t{shape.first_row + shape.tokens} * width; ++i) {
            if (!turns) {
              ASSERT_TRUE(std::isnan((*actual)[i])) << what << " " << i << " written by a segment that did not turn it";
              continue;
            }
            ASSERT_NEAR((*actual)[i], (*expected)[i], 1e-6) << what << " " << i;
          }
      }
    }

    std::vector<float> expected(size_t{rows} * q_heads * head_dim);
    for (const AttentionShape& shape : shapes) {
      cpu::AttentionArgs args;
      args.q = q.data() + size_t{shape.first_row} * q_heads * head_dim;
      args.k = k_expected.data();
      args.v = v_expected.data();
      args.kv_type = type == CacheType::f16 ? cpu::ElementType::f16 : cpu::ElementType::f32;
      args.out = expected.data() + size_t{shape.first_row} * q_heads * head_dim;
      args.tokens = shape.tokens;
      args.q_heads = q_heads;
      args.kv_heads = kv_heads;
      args.head_dim = head_dim;
      args.kv_length = shape.position + shape.tokens;
      args.position_offset = shape.position;
      args.scale = shape.scale;
      cpu::attention(args);
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

// A prompt of 150 tokens (tiled: 9 full query tiles and a partial one, 32-key tiles),
// then one decoded token (a workgroup per row), grouped-query heads, and a head size that
// is no multiple of 32.
TEST(GpuAttention, MatchesTheCpuForAPromptThenADecodedToken) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  expect_attention_matches_the_cpu(context, {.q_heads = 6, .kv_heads = 2, .head_dim = 40,
                                             .tokens = {150, 1}, .positions = {0, 150}});
}

// A prompt in two chunks, the second attending over the first's keys too, with a head
// size whose 32-key tile outgrows lavapipe's 32 KiB of shared memory (16-key tiles there).
TEST(GpuAttention, MatchesTheCpuForAPromptInTwoChunksOfWideHeads) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  expect_attention_matches_the_cpu(context, {.q_heads = 4, .kv_heads = 1, .head_dim = 200,
                                             .tokens = {37, 20}, .positions = {0, 37}});
}

// A head size that is no multiple of 4 keeps prompts on the row shader.
TEST(GpuAttention, MatchesTheCpuWhereAHeadCannotBeReadInFours) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  expect_attention_matches_the_cpu(context, {.q_heads = 2, .kv_heads = 2, .head_dim = 42,
                                             .tokens = {30, 3}, .positions = {0, 30}});
}

// Decoded tokens after 140 rows, with heads of 136 (68 pairs: the row shader reads a key
// in three bursts) and then a segment of 3 on the row shader too: more keys than its
// threads, each new row read from the new rows while it is stored.
TEST(GpuAttention, MatchesTheCpuForTokensAfterALongPromptOfWideHeads) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  expect_attention_matches_the_cpu(context, {.q_heads = 8, .kv_heads = 2, .head_dim = 136,
                                             .tokens = {140, 1, 3}, .positions = {0, 140, 141}});
}

// Decoded tokens that turn q and the keys inside the attention, after a prompt turned
// by the CPU: adjacent pairs and neox pairs, a rotary part shorter than the head (the
// rest stays), grouped-query heads whose first head stores the turned keys.
TEST(GpuAttention, ADecodedTokenTurnsItsQueryAndKeysAsRopeDoes) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  for (const cpu::RopeStyle style : {cpu::RopeStyle::normal, cpu::RopeStyle::neox})
    for (const int64_t rotary : {64, 48}) {
      SCOPED_TRACE(std::string(style == cpu::RopeStyle::neox ? "neox" : "adjacent") + " pairs, rotary " +
                   std::to_string(rotary));
      const cpu::RopeParams params{.style = style, .rotary_dims = rotary, .base = 10000.0f, .position_scale = 0.5f};
      expect_attention_matches_the_cpu(context, {.q_heads = 6, .kv_heads = 2, .head_dim = 64,
                                                 .tokens = {40, 1, 2}, .positions = {0, 40, 41}, .rope = params});
    }
}

TEST(GpuAttention, PicksTiledKeysThatFitTheSharedMemory) {
  DeviceCapabilities caps;
  caps.max_shared_memory_bytes = 32 * 1024;
  AttentionShape shape{.tokens = 512, .q_heads = 16, .kv_heads = 4, .head_dim = 128};
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 32u);
  EXPECT_EQ(DeviceAttention::scratch_floats(shape, caps), 0u) << "a tiled segment needs no scratch";
  shape.head_dim = 200;
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 16u);
  shape.head_dim = 256;
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 0u);
  caps.max_shared_memory_bytes = 48 * 1024;
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 16u);
  shape.head_dim = 42;
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 0u) << "a head read in fours";
  shape.head_dim = 128;
  shape.tokens = DeviceAttention::kTiledFromTokens - 1;
  shape.position = 100;
  EXPECT_EQ(DeviceAttention::tile_keys(shape, caps), 0u) << "a short segment";
  EXPECT_EQ(DeviceAttention::scratch_floats(shape, caps), uint64_t{7} * 16 * 107);
}

// A decoded token's attention can leave its output rounded to q8_0 for the output
// projection's block GEMV after it (FusedLinear::prepare_rounded_x): that GEMV then
// records no rounding pass, and the attention output and the product are exactly those
// of the same batch with the pass. A head size of no whole blocks is refused.
TEST(GpuAttention, ADecodedTokenRoundsItsOutputForTheProjection) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.sets, nullptr);
  auto linear = FusedLinear::create(context, gpu.pipelines, gpu.allocator);
  ASSERT_TRUE(linear) << linear.status().message();
  testing::SeededRng rng;
  constexpr uint32_t kQHeads = 6, kKvHeads = 2, kHeadDim = 64, kPosition = 11, kCacheRows = 16, kOut = 40;
  constexpr uint32_t kIn = kQHeads * kHeadDim;
  const AttentionShape shape{.tokens = 1, .position = kPosition, .q_heads = kQHeads, .kv_heads = kKvHeads,
                             .head_dim = kHeadDim, .cache_rows = kCacheRows, .scale = 0.125f};
  ASSERT_EQ(DeviceAttention::tile_keys(shape, context.capabilities()), 0u);
  const DeviceBuffer q = mapped_buffer(gpu.allocator, rng.uniform(kIn));
  const DeviceBuffer k_new = mapped_buffer(gpu.allocator, rng.uniform(kKvHeads * kHeadDim));
  const DeviceBuffer v_new = mapped_buffer(gpu.allocator, rng.uniform(kKvHeads * kHeadDim));
  const std::vector<float> weight_values = rng.uniform(size_t{kOut} * kIn);
  std::vector<uint8_t> weight_bytes(weight_row_bytes(WeightType::q4_0, kIn) * kOut);
  quant::quantize_row_reference(DType::q4_0, weight_values.data(), weight_bytes.data(), int64_t{kOut} * kIn);
  const DeviceBuffer weights = mapped_buffer(gpu.allocator, weight_bytes);
  auto scratch = DeviceBuffer::create(gpu.allocator, 4 * DeviceAttention::scratch_floats(shape, context.capabilities()),
                                      MemoryUse::device);
  ASSERT_TRUE(scratch) << scratch.status().message();
  const std::vector<float> keys = rng.uniform(size_t{kCacheRows} * kKvHeads * kHeadDim);
  const std::vector<float> values = rng.uniform(keys.size());
  std::vector<std::vector<float>> results;  // attention output, product; without, then with the rounding
  for (const bool attention_rounds : {false, true}) {
    const DeviceBuffer k_cache = mapped_buffer(gpu.allocator, keys), v_cache = mapped_buffer(gpu.allocator, values);
    DeviceBuffer out = mapped_buffer(gpu.allocator, testing::poisoned(kIn));
    DeviceBuffer y = mapped_buffer(gpu.allocator, testing::poisoned(kOut));
    CommandBatch batch(context, *gpu.sets);
    std::optional<RoundedX> rounded;
    if (attention_rounds) {
      auto prepared = linear.value()->prepare_rounded_x(batch, out, 1, kIn, WeightType::q4_0);
      ASSERT_TRUE(prepared && prepared->has_value());
      rounded = prepared->value();
    }
    Status status = gpu.attention.record(batch, shape,
                                         {.q = &q, .new_keys = &k_new, .new_values = &v_new, .key_cache = &k_cache,
                                          .value_cache = &v_cache, .out = &out, .scratch = &scratch.value()},
                                         rounded);
    ASSERT_TRUE(status) << status.message();
    status = linear.value()->record(batch, {.x = &out, .rows = 1, .k = kIn, .weights = &weights,
                                            .weight_type = WeightType::q4_0, .n = kOut, .y = &y});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.dispatches(), attention_rounds ? 2u : 3u) << "store and attend, (rounding,) GEMV";
    status = batch.run();
    ASSERT_TRUE(status) << status.message();
    results.push_back(read_mapped<float>(out, kIn));
    results.push_back(read_mapped<float>(y, kOut));
  }
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(std::memcmp(results[i].data(), results[2 + i].data(), results[i].size() * sizeof(float)), 0)
        << (i == 0 ? "the attention output" : "the product") << " differs with the attention's rounding";

  CommandBatch batch(context, *gpu.sets);
  AttentionShape odd = shape;
  odd.head_dim = 40;
  const DeviceBuffer buffer = mapped_buffer(gpu.allocator, std::vector<float>(4096));
  const AttentionBuffers all_one{.q = &buffer, .new_keys = &buffer, .new_values = &buffer, .key_cache = &buffer,
                                 .value_cache = &buffer, .out = &buffer, .scratch = &buffer};
  const Status refused = gpu.attention.record(batch, odd, all_one, RoundedX{.buffer = &buffer, .layout = 2});
  EXPECT_NE(refused.message().find("whole blocks of 32 (head_dim 40)"), std::string::npos) << refused.message();
  EXPECT_EQ(batch.dispatches(), 0u);
}

TEST(GpuAttention, RejectsShapesItCannotRunWithTheReason) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.sets, nullptr);
  DeviceAttention& attention = gpu.attention;
  DeviceBuffer buffer = mapped_buffer(gpu.allocator, std::vector<float>(4096));
  CommandBatch batch(context, *gpu.sets);
  const AttentionBuffers all_one{.q = &buffer, .new_keys = &buffer, .new_values = &buffer, .key_cache = &buffer,
                                 .value_cache = &buffer, .out = &buffer, .scratch = &buffer};
  AttentionShape shape{.tokens = 2, .position = 9, .q_heads = 4, .kv_heads = 2, .head_dim = 8, .cache_rows = 10};
  Status status = attention.record(batch, shape, all_one);
  EXPECT_NE(status.message().find("positions 9..10 past the cache's 10 rows"), std::string::npos) << status.message();
  shape.position = 0;
  shape.kv_heads = 3;
  status = attention.record(batch, shape, all_one);
  EXPECT_NE(status.message().find("4 query heads do not share 3 kv heads evenly"), std::string::npos)
      << status.message();
  shape.kv_heads = 2;
  shape.head_dim = 300;
  status = attention.record(batch, shape, all_one);
  EXPECT_NE(status.message().find("head size 300"), std::string::npos) << status.message();
  shape.head_dim = 8;
  AttentionBuffers no_new_keys = all_one;
  no_new_keys.new_keys = nullptr;
  status = attention.record(batch, shape, no_new_keys);
  EXPECT_NE(status.message().find("the new keys and values"), std::string::npos) << status.message();
  const DeviceBuffer small = mapped_buffer(gpu.allocator, std::vector<float>(8));
  AttentionBuffers small_new_values = all_one;
  small_new_values.new_values = &small;
  status = attention.record(batch, shape, small_new_values);
  EXPECT_NE(status.message().find("new rows buffer too small"), std::string::npos) << status.message();
  // A rotary embedding inside: pairs that fit the head, its buffers, the row shader only.
  AttentionRope rope{.angles = &buffer, .turned_q = &buffer, .turned_keys = &buffer, .pairs = 5};
  status = attention.record(batch, shape, all_one, std::nullopt, rope);
  EXPECT_NE(status.message().find("5 rotary pairs for heads of 8"), std::string::npos) << status.message();
  rope.pairs = 4;
  rope.angles = &small;
  status = attention.record(batch, shape, all_one, std::nullopt, rope);
  EXPECT_NE(status.message().find("angle table too small"), std::string::npos) << status.message();
  rope.angles = nullptr;
  status = attention.record(batch, shape, all_one, std::nullopt, rope);
  EXPECT_NE(status.message().find("needs its angles"), std::string::npos) << status.message();
  rope.angles = &buffer;
  AttentionShape prompt{.tokens = 16, .q_heads = 4, .kv_heads = 2, .head_dim = 8, .cache_rows = 16};
  if (!DeviceAttention::turns_inside(prompt, context.capabilities())) {
    status = attention.record(batch, prompt, all_one, std::nullopt, rope);
    EXPECT_NE(status.message().find("only the row shader turns"), std::string::npos) << status.message();
  }
  EXPECT_EQ(batch.dispatches(), 0u);
}

}  // namespace
}  // namespace ember::gpu
