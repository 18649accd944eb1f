// What a phase boundary costs a decoded token's device work, two ways
// (gpu/grid_barrier_probe.h): a barrier across one dispatch's workgroups (an atomic
// counter they wait on, BM_GridBarrier, per phase), and a near-empty dispatch behind a
// pipeline barrier (BM_DependentDispatch, per dispatch), as a token's ~75 dependent
// dispatches each wait now. Device time per phase or dispatch, 64 to a batch; the
// workgroup counts are about one to eight workgroups per multiprocessor of an H100.
// Only a GPU that runs them all side by side gives a meaningful barrier figure (lavapipe
// does not: gpu/grid_barrier_probe.h).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench/gpu_bench_device.h"
#include "gpu/grid_barrier_probe.h"

namespace ember::bench {
namespace {

constexpr uint32_t kPhases = 64;

void BM_GridBarrierProbe(benchmark::State& state, uint32_t workgroups, bool one_dispatch) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  gpu::GridBarrierProbe probe{.workgroups = workgroups};
  const std::vector<uint32_t> zeros(workgroups, 0);
  auto counter = device_copy_of(gpu, zeros.data(), gpu::GridBarrierProbe::kCounterBytes);
  auto slots = device_copy_of(gpu, zeros.data(), probe.slot_bytes());
  if (!counter || !slots) {
    state.SkipWithError("cannot allocate the probe's counter and slots");
    return;
  }
  gpu::PipelineCache pipelines(gpu.device->context());
  time_batches(
      state, gpu,
      [&](gpu::CommandBatch& batch) {
        // One dispatch of kPhases phases, or kPhases dispatches of none.
        for (uint32_t dispatch = 0; dispatch < (one_dispatch ? 1 : kPhases); ++dispatch) {
          probe.phases = one_dispatch ? kPhases : 0;
          if (gpu::Status recorded = gpu::record_grid_barrier_probe(batch, pipelines, counter.value(), slots.value(), probe);
              !recorded.ok())
            return recorded;
          probe.counter_base = probe.counter_after();
        }
        return gpu::Status{};
      },
      static_cast<int>(kPhases));
}

const bool kRegistered = [] {
  for (const uint32_t workgroups : {132u, 264u, 528u, 1056u}) {
    const std::string suffix = "/workgroups:" + std::to_string(workgroups);
    register_microsecond_case("BM_GridBarrier" + suffix, BM_GridBarrierProbe, workgroups, true);
    register_microsecond_case("BM_DependentDispatch" + suffix, BM_GridBarrierProbe, workgroups, false);
  }
  return true;
}();

}  // namespace
}  // namespace ember::bench
