// What running dependent products inside one dispatch would gain a decoded token
// (gpu/gemv_chain_probe.h): a chain of f16 GEMVs, v[p + 1] = W[p] · v[p], 128 MiB of
// weights in all (more than an H100's L2, as a token's weights are), as one dispatch
// whose workgroups meet at a grid barrier (grid_barrier.glsl) between phases, or as one
// dispatch per phase behind a pipeline barrier. Device time per phase. The grid form
// runs about one or two workgroups of 256 invocations per multiprocessor of an H100 (all
// must run at once); the per-phase form also runs one row per subgroup, as many
// workgroups as that takes.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/gpu_bench_device.h"
#include "gpu/gemv_chain_probe.h"
#include "quant/convert.h"

namespace ember::bench {
namespace {

constexpr uint64_t kChainWeightBytes = uint64_t{128} << 20;

void BM_GemvChain(benchmark::State& state, uint32_t n, uint32_t workgroups, bool one_dispatch) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  gpu::GemvChainProbe probe{.n = n,
                            .phases = static_cast<uint32_t>(kChainWeightBytes / (uint64_t{2} * n * n)),
                            .workgroups = workgroups,
                            .one_dispatch = one_dispatch};
  // Weights of about 1 / sqrt(n) keep the vectors' size along the chain.
  std::vector<float> w = random_values(probe.weight_bytes() / 2, 1);
  const float scale = 1.7f / std::sqrt(static_cast<float>(n));
  for (float& value : w) value *= scale;
  std::vector<uint16_t> halves(w.size());
  quant::f32_to_f16_row(w.data(), halves.data(), static_cast<int64_t>(halves.size()));
  const std::vector<float> v = random_values(probe.vector_bytes() / 4, 2);
  const uint32_t zero = 0;
  auto counter = device_copy_of(gpu, &zero, gpu::GemvChainProbe::kCounterBytes);
  auto weights = device_copy_of(gpu, halves.data(), probe.weight_bytes());
  auto vectors = device_copy_of(gpu, v.data(), probe.vector_bytes());
  if (!counter || !weights || !vectors) {
    state.SkipWithError("cannot allocate the chain's counter, weights and vectors");
    return;
  }
  gpu::PipelineCache pipelines(gpu.device->context());
  time_batches(
      state, gpu,
      [&](gpu::CommandBatch& batch) {
        const gpu::Status recorded =
            gpu::record_gemv_chain_probe(batch, pipelines, counter.value(), weights.value(), vectors.value(), probe);
        probe.counter_base = probe.counter_after();
        return recorded;
      },
      static_cast<int>(probe.phases));
  state.counters["phases"] = probe.phases;
}

const bool kRegistered = [] {
  for (const uint32_t n : {1024u, 2048u, 4096u}) {
    const std::string prefix = "BM_GemvChain/n:" + std::to_string(n);
    for (const uint32_t workgroups : {132u, 264u})
      register_microsecond_case(prefix + "/one_dispatch/workgroups:" + std::to_string(workgroups), BM_GemvChain, n,
                                workgroups, true);
    for (const uint32_t workgroups : {132u, n / 8})
      register_microsecond_case(prefix + "/dispatch_per_phase/workgroups:" + std::to_string(workgroups), BM_GemvChain,
                                n, workgroups, false);
  }
  return true;
}();

}  // namespace
}  // namespace ember::bench
