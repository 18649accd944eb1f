// The tensor cores' rate through GL_NV_cooperative_matrix (gpu/coopmat_probe.h), the
// ceiling of the instrument the cooperative-matrix GEMM plays: with the fragments held in
// registers, and reloaded from shared memory every step as the GEMM's are. Compare with
// BM_FusedLinear/gemm_4096/f16 and with torch's fp16 rate (bench/gpu/ceilings.py).
#include <benchmark/benchmark.h>

#include "bench/gpu_bench_device.h"
#include "gpu/coopmat_probe.h"

namespace ember::bench {
namespace {

// Enough subgroups to fill an H100's 132 multiprocessors several times over, each long
// enough (a few ms per dispatch) that the dispatch's start is lost in it.
constexpr uint32_t kWorkgroups = 4096;
constexpr uint32_t kIterationsPerSubgroup = 512;

void BM_CoopmatProbe(benchmark::State& state, bool from_shared) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const gpu::CoopmatProbe probe{.workgroups = kWorkgroups, .iterations = kIterationsPerSubgroup, .from_shared = from_shared};
  auto sums = gpu::DeviceBuffer::create(gpu.device->allocator(), probe.sum_bytes(), gpu::MemoryUse::device);
  if (!sums) {
    state.SkipWithError(("cannot allocate the sums: " + sums.status().message()).c_str());
    return;
  }
  gpu::PipelineCache pipelines(gpu.device->context());
  time_batches(state, gpu, [&](gpu::CommandBatch& batch) {
    return gpu::record_coopmat_probe(batch, pipelines, sums.value(), probe);
  });
  state.counters["TFLOP/s"] =
      benchmark::Counter(probe.flops() * static_cast<double>(state.iterations()) / 1e12, benchmark::Counter::kIsRate);
}

const bool kRegistered = [] {
  register_microsecond_case("BM_CoopmatProbe/registers", BM_CoopmatProbe, false);
  register_microsecond_case("BM_CoopmatProbe/shared", BM_CoopmatProbe, true);
  return true;
}();

}  // namespace
}  // namespace ember::bench
