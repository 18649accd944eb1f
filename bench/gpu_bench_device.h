// The Vulkan device that bench-gpu's cases share (bench_gpu_linear.cpp,
// bench_gpu_row_ops.cpp), and how they upload their operands.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/vulkan_device.h"
#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"

namespace ember::bench {

inline constexpr int kIterations = 200;      // timed runs per repetition of a microsecond case
// Without untimed runs first, 200 timed runs on the H200 measured up to 5x slower than
// after many (most likely an idle GPU's lowered clocks; they were not read).
inline constexpr std::chrono::milliseconds kWarmUp{300};

// The device core/ opens for a model (its allocator, staging ring, kernels and descriptor
// sets), opened once for every case.
struct Gpu {
  std::shared_ptr<VulkanDevice> device;  // null when there is none
  std::string unavailable;               // why there is none
};

inline Gpu& shared_gpu() {
  static Gpu gpu = [] {
    Gpu made;
    auto device = VulkanDevice::open();
    if (device)
      made.device = std::move(device.value());
    else
      made.unavailable = device.status().message();
    return made;
  }();
  return gpu;
}

// The shared device, or null after skipping `state`'s case with the reason there is none.
inline Gpu* shared_gpu_or_skip(benchmark::State& state) {
  Gpu& gpu = shared_gpu();
  if (gpu.device) return &gpu;
  state.SkipWithError(("no Vulkan device: " + gpu.unavailable).c_str());
  return nullptr;
}

inline gpu::Result<gpu::DeviceBuffer> device_copy_of(Gpu& gpu, const void* host, uint64_t bytes) {
  auto buffer = gpu::DeviceBuffer::create(gpu.device->allocator(), bytes, gpu::MemoryUse::device);
  if (!buffer) return buffer.status();
  const gpu::Status uploaded = gpu.device->staging().upload(static_cast<const std::byte*>(host), buffer.value(), 0, bytes);
  if (!uploaded.ok()) return uploaded;
  return buffer;
}

// A case timed by the device's clock (or the host's, where the case says), in
// microseconds, kIterations runs per repetition.
template <class... Args>
void register_microsecond_case(const std::string& name, void (*run)(benchmark::State&, Args...), Args... args) {
  benchmark::RegisterBenchmark(name.c_str(), run, args...)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond)
      ->Iterations(kIterations);
}

// Warms the device with untimed batches for kWarmUp, then times one batch per iteration
// by the device's clock, divided by `per_batch` (cases that record several alike). A
// failure skips the case with its message.
template <class Record>
void time_batches(benchmark::State& state, Gpu& gpu, const Record& record, int per_batch = 1) {
  const auto warm_until = std::chrono::steady_clock::now() + kWarmUp;
  while (std::chrono::steady_clock::now() < warm_until) {
    gpu::CommandBatch batch(gpu.device->context(), gpu.device->descriptor_sets());
    if (!record(batch).ok() || !batch.run().ok()) break;
  }
  for (auto _ : state) {
    gpu::CommandBatch batch(gpu.device->context(), gpu.device->descriptor_sets());
    const gpu::Status recorded = record(batch);
    auto seconds = recorded.ok() ? batch.run_timed() : gpu::Result<double>(recorded);
    if (!seconds) {
      state.SkipWithError(seconds.status().message().c_str());
      return;
    }
    state.SetIterationTime(seconds.value() / per_batch);
    state.counters["dispatches"] = static_cast<double>(batch.dispatches()) / per_batch;
  }
}

inline std::vector<float> random_values(size_t count, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = dist(engine);
  return values;
}

}  // namespace ember::bench
