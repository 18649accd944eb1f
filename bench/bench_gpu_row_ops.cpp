// Pairs of row ops that a Llama layer runs back to back, recorded as two dispatches or as
// the one dispatch VulkanBackend records for them (issue #6): a residual add and the
// RMSNorm of its sum over M's 2048-wide rows, and the q and k ropes (16 and 4 heads of
// 128). Device time per pair, kPairsPerBatch pairs per command buffer, as a decoded token
// records one pair per layer into its one batch.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bench/gpu_bench_device.h"

namespace ember::bench {
namespace {

constexpr int kPairsPerBatch = 8;
constexpr uint32_t kCols = 2048, kHeadDim = 128, kQHeads = 16, kKHeads = 4;

enum class Pair { residual_norm, rope_qk };

void BM_RowOpPair(benchmark::State& state, Pair pair, bool fused, uint32_t rows) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const bool norm = pair == Pair::residual_norm;
  const uint32_t first_elements = rows * (norm ? kCols : kQHeads * kHeadDim);
  const uint32_t second_elements = rows * (norm ? kCols : kKHeads * kHeadDim);
  // The norm's weight, or the rope's (cos, sin) per token and pair.
  const uint32_t table_floats = norm ? kCols : rows * kHeadDim;
  const auto upload = [&](uint32_t floats, unsigned seed) {
    const std::vector<float> values = random_values(floats, seed);
    return device_copy_of(gpu, values.data(), uint64_t{floats} * 4);
  };
  auto first = upload(first_elements, 1), second = upload(second_elements, 2), table = upload(table_floats, 3);
  auto first_out = upload(first_elements, 4), second_out = upload(norm ? first_elements : second_elements, 5);
  for (const auto* buffer : {&first, &second, &table, &first_out, &second_out})
    if (!*buffer) {
      state.SkipWithError(("cannot allocate or upload an operand: " + buffer->status().message()).c_str());
      return;
    }
  const auto record = [&](gpu::CommandBatch& batch) {
    gpu::Status status;
    for (int p = 0; p < kPairsPerBatch && status.ok(); ++p) {
      if (norm && fused) {
        status = gpu.device->row_ops().record_rms_norm(batch, *first, *table, *second_out, rows, kCols, 1e-5f,
                                              gpu::RowOps::ResidualAdd{.delta = &*second, .sum = &*first_out});
      } else if (norm) {
        status = gpu.device->row_ops().record_elementwise(batch, gpu::ElementwiseOp::add, *first, &*second, *first_out,
                                                 first_elements);
        if (status.ok()) status = gpu.device->row_ops().record_rms_norm(batch, *first_out, *table, *second_out, rows, kCols, 1e-5f);
      } else {
        std::optional<gpu::RowOps::SecondRope> k;
        if (fused) k = gpu::RowOps::SecondRope{&*second, &*second_out, kKHeads};
        status = gpu.device->row_ops().record_rope(batch, *first, *table, *first_out, rows, kQHeads, kHeadDim, kHeadDim / 2,
                                          false, k);
        if (status.ok() && !fused)
          status = gpu.device->row_ops().record_rope(batch, *second, *table, *second_out, rows, kKHeads, kHeadDim, kHeadDim / 2,
                                            false);
      }
    }
    return status;
  };
  time_batches(state, gpu, record, kPairsPerBatch);
}

const bool kRegistered = [] {
  for (const auto& [name, pair] : {std::pair{"residual_norm", Pair::residual_norm}, std::pair{"rope_qk", Pair::rope_qk}})
    for (const bool fused : {false, true})
      for (const uint32_t rows : {1u, 512u})
        register_microsecond_case("BM_RowOpPair/" + std::string(name) + (fused ? "/fused" : "/separate") +
                                      "/rows:" + std::to_string(rows),
                                  BM_RowOpPair, pair, fused, rows);
  return true;
}();

}  // namespace
}  // namespace ember::bench
