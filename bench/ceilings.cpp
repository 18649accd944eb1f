// Ceiling probes: the peak f32 FMA, bf16 pair and int8 dot-product rates and the sustained read
// bandwidth, on 1 and 2 threads. Kernel numbers in docs/PERFORMANCE.md are fractions of
// these, measured in the same run.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>

#include "bench/ceilings.h"
#include "cpu/isa.h"
#include "ember/buffer.h"

namespace ember::bench {
namespace {

// Runs `probe(rounds, threads)` (rounds of independent chains of one instruction) and
// reports ops per second under `counter`, when the CPU runs the instruction
// (`cpu_has`).
template <class Probe>
void peak_rate(benchmark::State& state, bool cpu_has, Probe probe, int64_t ops_per_round, const char* counter) {
  if (!cpu_has) {
    state.SkipWithError("the CPU lacks this instruction set");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  constexpr int64_t kRounds = 1 << 22;
  for (auto _ : state) benchmark::DoNotOptimize(probe(kRounds, threads));
  state.counters[counter] = benchmark::Counter(static_cast<double>(kRounds * ops_per_round * threads),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CeilingFmaAvx512(benchmark::State& state) {
  peak_rate(state, __builtin_cpu_supports("avx512f") != 0, fma_avx512_chains, kFlopsPerFmaRound, "FLOP/s");
}
BENCHMARK(BM_CeilingFmaAvx512)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_CeilingInt8DotAvx512Vnni(benchmark::State& state) {
  peak_rate(state, __builtin_cpu_supports("avx512vnni") != 0, int8_dot_avx512vnni_chains, kOpsPerDotRound, "OP/s");
}
BENCHMARK(BM_CeilingInt8DotAvx512Vnni)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_CeilingBf16DotAvx512Bf16(benchmark::State& state) {
  peak_rate(state, cpu::isa_supported(cpu::Isa::avx512_bf16), bf16_dot_avx512bf16_chains, kFlopsPerBf16DotRound,
            "FLOP/s");
}
BENCHMARK(BM_CeilingBf16DotAvx512Bf16)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

// Sums `bytes` of floats: far past every cache (the L3 of this machine kind is 32 MiB),
// so the rate is DRAM read bandwidth.
void BM_CeilingReadBandwidth(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("CPU lacks AVX-512F");
    return;
  }
  const int64_t kFloats = state.range(0) / static_cast<int64_t>(sizeof(float));
  const int threads = static_cast<int>(state.range(1));
  auto memory = Buffer::allocate(kFloats * sizeof(float)).value();
  auto* data = reinterpret_cast<float*>(memory->host_write().value());
  // First touch by the threads that will read, as the kernels' buffers are.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < kFloats; ++i) data[i] = static_cast<float>(i & 7);
  for (auto _ : state) benchmark::DoNotOptimize(read_sum_avx512(data, kFloats, threads));
  state.SetBytesProcessed(state.iterations() * kFloats * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_CeilingReadBandwidth)
    ->ArgNames({"bytes", "threads"})
    ->ArgsProduct({{int64_t{256} << 20, int64_t{1} << 30}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ember::bench
