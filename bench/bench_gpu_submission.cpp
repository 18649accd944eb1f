// The host's cost of one command batch (issue #6): a decoded token of M is one batch of
// about 141 dispatches, and on the H200 the host's part of a token measured longer than
// the device's. A batch of `dispatches` tiny dispatches (elementwise adds of 64 floats, so
// the device's share is as small as a dispatch gets) is built, run and freed as
// VulkanBackend does per token; the iteration time is the host's wall time of all of it,
// and the counters split it:
// - prepare_us: descriptor sets and the dispatch list (CommandBatch::descriptor_set, add);
// - record_us: the vkCmd* recording inside run (CommandBatch::recording_time), pieces
//   of it overlapped with the device's work on earlier pieces (CommandBatch::run);
// - first_piece_us: the part of record_us before the device could start;
// - device_us: the device's busy time from its timestamps, from the start of the first
//   piece to the end of the last;
// - wait_us: the rest of run: submitting, the device's start and the host's wake-up;
// - free_us: destroying the batch (its descriptor sets go back to the pool).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "bench/gpu_bench_device.h"

namespace ember::bench {
namespace {

constexpr uint32_t kElements = 64;

void BM_BatchHostCost(benchmark::State& state, int dispatches) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const std::vector<float> values = random_values(kElements, 1);
  auto a = device_copy_of(gpu, values.data(), kElements * 4), b = device_copy_of(gpu, values.data(), kElements * 4);
  auto out = device_copy_of(gpu, values.data(), kElements * 4);
  for (const auto* buffer : {&a, &b, &out})
    if (!*buffer) {
      state.SkipWithError(("cannot allocate or upload an operand: " + buffer->status().message()).c_str());
      return;
    }
  using Clock = std::chrono::steady_clock;
  const auto micros = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  double prepare = 0, record = 0, first_piece = 0, device = 0, wait = 0, free = 0;
  const auto run_one = [&](bool timed) {
    const Clock::time_point start = Clock::now();
    Clock::time_point prepared, ran;
    gpu::Result<double> busy = 0.0;
    {
      gpu::CommandBatch batch(gpu.device->context(), gpu.device->descriptor_sets());
      gpu::Status status;
      for (int d = 0; d < dispatches && status.ok(); ++d)
        status = gpu.device->row_ops().record_elementwise(batch, gpu::ElementwiseOp::add, *a, &*b, *out, kElements);
      prepared = Clock::now();
      busy = status.ok() ? batch.run_timed() : gpu::Result<double>(status);
      ran = Clock::now();
      if (timed && busy) {
        prepare += micros(prepared - start);
        record += micros(batch.recording_time());
        first_piece += micros(batch.recording_before_submission());
        device += busy.value() * 1e6;
        wait += micros(ran - prepared - batch.recording_before_submission()) - busy.value() * 1e6;
      }
    }
    if (timed) free += micros(Clock::now() - ran);
    if (!busy) state.SkipWithError(busy.status().message().c_str());
    return busy.ok() ? std::chrono::duration<double>(Clock::now() - start).count() : -1.0;
  };
  const auto warm_until = Clock::now() + kWarmUp;
  while (Clock::now() < warm_until)
    if (run_one(false) < 0) return;
  for (auto _ : state) {
    const double seconds = run_one(true);
    if (seconds < 0) return;
    state.SetIterationTime(seconds);
  }
  const auto per_batch = [&](double total) {
    return benchmark::Counter(total / static_cast<double>(state.iterations()));
  };
  state.counters["prepare_us"] = per_batch(prepare);
  state.counters["record_us"] = per_batch(record);
  state.counters["first_piece_us"] = per_batch(first_piece);
  state.counters["device_us"] = per_batch(device);
  state.counters["wait_us"] = per_batch(wait);
  state.counters["free_us"] = per_batch(free);
}

const bool kRegistered = [] {
  for (const int dispatches : {1, 141})
    register_microsecond_case("BM_BatchHostCost/dispatches:" + std::to_string(dispatches), BM_BatchHostCost, dispatches);
  return true;
}();

}  // namespace
}  // namespace ember::bench
