// Quantize and dequantize throughput per type: MB/s of f32 on the float side, for a
// 4096×4096 matrix (64 MiB of f32: past every cache).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "cpu/quantize.h"
#include "cpu/threads.h"
#include "ember/dtype.h"

namespace ember::bench {
namespace {

constexpr int64_t kRows = 4096, kRowLength = 4096;

const std::vector<float>& matrix() {
  static const std::vector<float> values = [] {
    std::vector<float> v(kRows * kRowLength);
    std::mt19937 engine(7);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    for (float& x : v) x = dist(engine);
    return v;
  }();
  return values;
}

void BM_Quantize(benchmark::State& state) {
  const auto type = static_cast<DType>(state.range(0));
  cpu::set_threads(static_cast<int>(state.range(1)));
  std::vector<std::byte> out(static_cast<size_t>(row_bytes(type, kRows * kRowLength)));
  for (auto _ : state) {
    cpu::quantize_rows(type, matrix().data(), kRows, kRowLength, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kRowLength * 4);
  state.SetLabel(std::string(dtype_name(type)));
}

void BM_Dequantize(benchmark::State& state) {
  const auto type = static_cast<DType>(state.range(0));
  cpu::set_threads(static_cast<int>(state.range(1)));
  std::vector<std::byte> blocks(static_cast<size_t>(row_bytes(type, kRows * kRowLength)));
  cpu::quantize_rows(type, matrix().data(), kRows, kRowLength, blocks.data());
  std::vector<float> out(kRows * kRowLength);
  for (auto _ : state) {
    cpu::dequantize_rows(type, blocks.data(), kRows, kRowLength, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kRowLength * 4);
  state.SetLabel(std::string(dtype_name(type)));
}

#define EMBER_QUANT_TYPES                                                                                   \
  {static_cast<int64_t>(DType::f16), static_cast<int64_t>(DType::bf16), static_cast<int64_t>(DType::q8_0), \
   static_cast<int64_t>(DType::q4_0), static_cast<int64_t>(DType::q4_1), static_cast<int64_t>(DType::q4_k),  \
   static_cast<int64_t>(DType::q6_k), static_cast<int64_t>(DType::q8_k)}
BENCHMARK(BM_Quantize)->ArgNames({"type", "threads"})->ArgsProduct({EMBER_QUANT_TYPES, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Dequantize)->ArgNames({"type", "threads"})->ArgsProduct({EMBER_QUANT_TYPES, {2}})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ember::bench
