// Attention over a device KV cache as M runs it (16 query heads sharing 4 kv heads of
// 128, f16 cache): a 512-token prompt from position 0 (attention_tiled.comp) and one
// decoded token after 511 cached rows (attention.comp), each storing its new keys and
// values as the model does (kv_store.comp, then the tiled shader, for the prompt; the
// row shader alone for the token). Device time per batch, with
// the causal product's FLOP/s (2 multiply-adds per query, key and dimension: scores and
// values).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/gpu_bench_device.h"
#include "gpu/attention.h"

namespace ember::bench {
namespace {

constexpr uint32_t kQHeads = 16, kKvHeads = 4, kHeadDim = 128, kCacheRows = 1024;

void BM_Attention(benchmark::State& state, uint32_t tokens, uint32_t position) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const gpu::AttentionShape shape{.tokens = tokens, .position = position, .q_heads = kQHeads, .kv_heads = kKvHeads,
                                  .head_dim = kHeadDim, .cache_rows = kCacheRows,
                                  .cache_type = gpu::CacheType::f16, .scale = 0.0884f};
  const std::vector<float> queries = random_values(size_t{tokens} * kQHeads * kHeadDim, 1);
  // Random f16 bit patterns would hold infinities and NaNs: the cache is f16 copies of
  // values in [-1, 1], two to a word.
  std::vector<uint32_t> cache(size_t{kCacheRows} * kKvHeads * kHeadDim / 2);
  for (size_t i = 0; i < cache.size(); ++i) cache[i] = 0x3c00bc00u ^ static_cast<uint32_t>(i % 1021);
  auto q = device_copy_of(gpu, queries.data(), queries.size() * 4);
  auto k_cache = device_copy_of(gpu, cache.data(), cache.size() * 4);
  auto v_cache = device_copy_of(gpu, cache.data(), cache.size() * 4);
  auto out = device_copy_of(gpu, queries.data(), queries.size() * 4);
  const std::vector<float> new_rows = random_values(size_t{tokens} * kKvHeads * kHeadDim, 2);
  auto new_keys = device_copy_of(gpu, new_rows.data(), new_rows.size() * 4);
  auto new_values = device_copy_of(gpu, new_rows.data(), new_rows.size() * 4);
  const uint64_t scratch_floats =
      std::max<uint64_t>(1, gpu::DeviceAttention::scratch_floats(shape, gpu.device->context().capabilities()));
  auto scratch = gpu::DeviceBuffer::create(gpu.device->allocator(), 4 * scratch_floats, gpu::MemoryUse::device);
  for (const auto* buffer : {&q, &k_cache, &v_cache, &out, &new_keys, &new_values})
    if (!*buffer) {
      state.SkipWithError(("cannot allocate or upload an operand: " + buffer->status().message()).c_str());
      return;
    }
  if (!scratch) {
    state.SkipWithError(("cannot allocate the scratch: " + scratch.status().message()).c_str());
    return;
  }
  const auto record = [&](gpu::CommandBatch& batch) {
    return gpu.device->attention().record(batch, shape,
                                          {.q = &q.value(), .new_keys = &new_keys.value(),
                                           .new_values = &new_values.value(), .key_cache = &k_cache.value(),
                                           .value_cache = &v_cache.value(), .out = &out.value(),
                                           .scratch = &scratch.value()});
  };
  time_batches(state, gpu, record);
  double keys_attended = 0;
  for (uint32_t t = 0; t < tokens; ++t) keys_attended += position + t + 1;
  state.counters["tiled"] = gpu::DeviceAttention::tile_keys(shape, gpu.device->context().capabilities()) != 0;
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * kQHeads * kHeadDim * keys_attended * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

const bool kRegistered = [] {
  register_microsecond_case("BM_Attention/prompt/tokens:512", BM_Attention, 512u, 0u);
  register_microsecond_case("BM_Attention/decode/position:511", BM_Attention, 1u, 511u);
  return true;
}();

}  // namespace
}  // namespace ember::bench
