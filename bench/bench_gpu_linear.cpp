// The Vulkan fused-linear shaders (issue #6) at the shapes the issue names: the decode
// GEMV, one row through a 4096×14336 weight (4096 outputs of 14336 inputs), reported as
// GB/s of weight bytes; the 4096³ GEMM, reported as TFLOP/s; and the prefill shape, 512
// rows through the same 4096×14336 weight. Times are the device's own (timestamps around
// the recorded commands, gpu::Context::run_and_time), so they leave out submission; the
// `call_us` counter is the host's wall time of one whole run() beside them. Weights
// rotate through copies larger than the L2 cache together. One-row cases also time their
// dispatches apart (`x_rounding_us`, `product_us`). BM_DeviceCopy
// measures the device's copy bandwidth in the same binary: the ceiling for the GEMVs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/gpu_bench_device.h"
#include "ember/dtype.h"
#include "gpu/linear.h"
#include "quant/quantize.h"

namespace ember::bench {
namespace {

DType dtype_of(gpu::WeightType type) {
  switch (type) {
    case gpu::WeightType::f32: return DType::f32;
    case gpu::WeightType::f16: return DType::f16;
    case gpu::WeightType::q8_0: return DType::q8_0;
    case gpu::WeightType::q4_0: return DType::q4_0;
  }
  return DType::f32;
}


// Times `batched` products per command buffer, each with its own weights and, alternately,
// one of two x buffers (so block weights round x each time, as for a layer's first
// product), and reports the device time per product: a decoded token records its GEMVs
// this way, one batch per token, so the buffer's own start and end are shared.
// A cooperative-matrix tile shape and its stages (gpu::LinearArgs); 0 lets FusedLinear choose.
struct CoopmatTile {
  uint32_t rows = 0, columns = 0, stages = 0;
};

void BM_FusedLinear(benchmark::State& state, gpu::WeightType type, uint32_t rows, uint32_t k, uint32_t n,
                    gpu::LinearPath path, uint32_t gemv_columns, uint32_t batched, CoopmatTile tile,
                    gpu::BlockLayout layout) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const std::vector<float> x = random_values(size_t{rows} * k, 11);
  const std::vector<float> w = random_values(size_t{n} * k, 7);
  std::vector<uint8_t> w_bytes(gpu::weight_row_bytes(type, k) * n);
  quant::quantize_row_reference(dtype_of(type), w.data(), w_bytes.data(), int64_t{n} * k);
  if (layout == gpu::BlockLayout::split) {
    const std::vector<uint8_t> file_layout = w_bytes;
    gpu::split_blocks(type, reinterpret_cast<const std::byte*>(file_layout.data()),
                      file_layout.size() / gpu::block_bytes(type), reinterpret_cast<std::byte*>(w_bytes.data()));
  }
  auto x_buffer = device_copy_of(gpu, x.data(), x.size() * sizeof(float));
  auto other_x_buffer = device_copy_of(gpu, x.data(), x.size() * sizeof(float));
  auto y_buffer = gpu::DeviceBuffer::create(gpu.device->allocator(), uint64_t{rows} * n * sizeof(float), gpu::MemoryUse::device);
  // Successive runs take successive copies of the weights, together far larger than the
  // GPU's L2 cache (50 MiB on an H100/H200), so each run reads its weights from device
  // memory, as a model's layers do; one 33 MB q4_0 matrix alone would stay in L2.
  constexpr uint64_t kRotatedBytes = uint64_t{512} << 20;
  const size_t copies = std::clamp<size_t>(kRotatedBytes / w_bytes.size() + 1, 1, 16);
  std::vector<gpu::DeviceBuffer> w_buffers;
  gpu::Status w_status;
  while (w_buffers.size() < copies && w_status.ok()) {
    auto copy = device_copy_of(gpu, w_bytes.data(), w_bytes.size());
    if (copy)
      w_buffers.push_back(std::move(copy.value()));
    else
      w_status = copy.status();
  }
  const auto failed = [&](const char* what, const gpu::Status& status) {
    state.SkipWithError(("cannot allocate or upload " + std::string(what) + ": " + status.message()).c_str());
  };
  if (!x_buffer) return failed("x", x_buffer.status());
  if (!other_x_buffer) return failed("the second x", other_x_buffer.status());
  if (!y_buffer) return failed("y", y_buffer.status());
  if (!w_status.ok())
    return failed(("weight copy " + std::to_string(w_buffers.size() + 1) + " of " + std::to_string(copies)).c_str(),
                  w_status);
  gpu::LinearArgs args{.x = &x_buffer.value(), .rows = rows, .k = k, .weights = &w_buffers.front(),
                       .weight_type = type, .weight_layout = layout, .n = n, .y = &y_buffer.value(), .path = path,
                       .gemv_columns = gemv_columns, .tile_rows = tile.rows, .tile_columns = tile.columns,
                       .stages = tile.stages};
  // The first run creates the pipeline; it is not timed.
  if (const gpu::Status first = gpu.device->linear().run(args); !first.ok()) {
    state.SkipWithError(first.message().c_str());
    return;
  }
  size_t next_copy = 0;  // kWarmUp's untimed runs first

  const auto warm_until = std::chrono::steady_clock::now() + kWarmUp;
  while (std::chrono::steady_clock::now() < warm_until) {
    args.weights = &w_buffers[next_copy++ % copies];
    if (!gpu.device->linear().run(args).ok()) break;
  }
  double device_seconds = 0;
  for (auto _ : state) {
    gpu::CommandBatch batch(gpu.device->context(), gpu.device->descriptor_sets());
    gpu::Status recorded;
    for (uint32_t product = 0; product < batched && recorded.ok(); ++product) {
      args.weights = &w_buffers[next_copy++ % copies];
      args.x = product % 2 == 0 ? &x_buffer.value() : &other_x_buffer.value();
      recorded = gpu.device->linear().record(batch, args);
    }
    auto seconds = recorded.ok() ? batch.run_timed() : gpu::Result<double>(recorded);
    if (!seconds) {
      state.SkipWithError(seconds.status().message().c_str());
      return;
    }
    state.SetIterationTime(seconds.value() / batched);
    device_seconds += seconds.value() / batched;
  }
  // One product's dispatches timed apart (medians of kSplitRuns): for block weights the
  // rounding of x, then the product itself.
  if (rows == 1 && batched == 1) {
    constexpr int kSplitRuns = 21;
    std::vector<std::vector<double>> runs;
    for (int run = 0; run < kSplitRuns; ++run) {
      gpu::CommandBatch batch(gpu.device->context(), gpu.device->descriptor_sets());
      args.weights = &w_buffers[next_copy++ % copies];
      const gpu::Status recorded = gpu.device->linear().record(batch, args);
      auto seconds = recorded.ok() ? batch.run_timed_each() : gpu::Result<std::vector<double>>(recorded);
      if (!seconds) {
        state.SkipWithError(seconds.status().message().c_str());
        return;
      }
      runs.push_back(std::move(seconds.value()));
    }
    const auto median_of = [&](size_t dispatch) {
      std::vector<double> each;
      for (const auto& run : runs) each.push_back(dispatch < run.size() ? run[dispatch] : 0.0);
      std::nth_element(each.begin(), each.begin() + each.size() / 2, each.end());
      return each[each.size() / 2] * 1e6;
    };
    const size_t dispatches = runs.front().size();
    if (dispatches == 2) state.counters["x_rounding_us"] = median_of(0);
    state.counters["product_us"] = median_of(dispatches - 1);
  }
  args.x = &x_buffer.value();
  constexpr int kWallRuns = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int run = 0; run < kWallRuns; ++run) {
    args.weights = &w_buffers[next_copy++ % copies];
    if (!gpu.device->linear().run(args).ok()) break;
  }
  const std::chrono::duration<double, std::micro> wall = std::chrono::steady_clock::now() - start;

  const double iterations = static_cast<double>(state.iterations());
  state.counters["TFLOP/s"] = 2.0 * rows * k * n * iterations / device_seconds / 1e12;
  state.counters["weight_GB/s"] = static_cast<double>(w_bytes.size()) * iterations / device_seconds / 1e9;
  state.counters["call_us"] = wall.count() / kWallRuns;
}

// One device buffer copied to another: each byte read once and written once.
void BM_DeviceCopy(benchmark::State& state) {
  Gpu* const opened = shared_gpu_or_skip(state);
  if (opened == nullptr) return;
  Gpu& gpu = *opened;
  const uint64_t bytes = uint64_t(state.range(0)) << 20;
  auto from = gpu::DeviceBuffer::create(gpu.device->allocator(), bytes, gpu::MemoryUse::device);
  auto to = gpu::DeviceBuffer::create(gpu.device->allocator(), bytes, gpu::MemoryUse::device);
  if (!from || !to) {
    state.SkipWithError(("cannot allocate the buffers: " + (!from ? from : to).status().message()).c_str());
    return;
  }
  const gpu::VulkanFunctions& vk = gpu.device->context().vk();
  double device_seconds = 0;
  for (auto _ : state) {
    auto seconds = gpu.device->context().run_and_time([&](VkCommandBuffer commands) {
      const VkBufferCopy region{0, 0, bytes};
      vk.vkCmdCopyBuffer(commands, from->handle(), to->handle(), 1, &region);
    });
    if (!seconds) {
      state.SkipWithError(seconds.status().message().c_str());
      return;
    }
    state.SetIterationTime(seconds.value());
    device_seconds += seconds.value();
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["copied_GB/s"] = static_cast<double>(bytes) * iterations / device_seconds / 1e9;
  state.counters["read+write_GB/s"] = 2.0 * static_cast<double>(bytes) * iterations / device_seconds / 1e9;
}

struct Case {
  const char* name;
  gpu::WeightType type;
  uint32_t rows, k, n;
  gpu::LinearPath path = gpu::LinearPath::automatic;  // automatic: the tensor cores for f16 where the device has them
  uint32_t gemv_columns = 0;                          // 0: gpu::gemv_columns(n)
  uint32_t batched = 1;                               // products per timed command buffer
  CoopmatTile tile{};                                 // 0s: FusedLinear's choice
  gpu::BlockLayout layout = gpu::BlockLayout::file;   // of block weights (gpu/block_layout.h)
};

constexpr auto kAuto = gpu::LinearPath::automatic;
constexpr auto kGemv = gpu::LinearPath::gemv;
constexpr auto kSplit = gpu::BlockLayout::split;

constexpr Case kCases[] = {
    {"decode_gemv/q4_0", gpu::WeightType::q4_0, 1, 14336, 4096},
    {"decode_gemv/q8_0", gpu::WeightType::q8_0, 1, 14336, 4096},
    {"decode_gemv/f16", gpu::WeightType::f16, 1, 14336, 4096},
    {"decode_gemv/f32", gpu::WeightType::f32, 1, 14336, 4096},
    // The same, 8 per command buffer (per product; see BM_FusedLinear).
    {"decode_gemv/q4_0/batched:8", gpu::WeightType::q4_0, 1, 14336, 4096, gpu::LinearPath::automatic, 0, 8},
    {"decode_gemv/q8_0/batched:8", gpu::WeightType::q8_0, 1, 14336, 4096, gpu::LinearPath::automatic, 0, 8},
    {"decode_gemv/f16/batched:8", gpu::WeightType::f16, 1, 14336, 4096, gpu::LinearPath::automatic, 0, 8},
    {"decode_gemv/f32/batched:8", gpu::WeightType::f32, 1, 14336, 4096, gpu::LinearPath::automatic, 0, 8},
    // The block GEMV with one output column per workgroup, against the two the automatic
    // choice takes here (docs/PERFORMANCE.md has the sweep that chose it).
    {"decode_gemv/q4_0/columns:1", gpu::WeightType::q4_0, 1, 14336, 4096, gpu::LinearPath::gemv, 1},
    {"decode_gemv/q8_0/columns:1", gpu::WeightType::q8_0, 1, 14336, 4096, gpu::LinearPath::gemv, 1},
    {"decode_gemv/q4_0/columns:4", gpu::WeightType::q4_0, 1, 14336, 4096, gpu::LinearPath::gemv, 4},
    {"decode_gemv/q8_0/columns:4", gpu::WeightType::q8_0, 1, 14336, 4096, gpu::LinearPath::gemv, 4},
    // Block weights split as the Vulkan backend keeps them (each block's codes apart from
    // its scale), against the file's layout above, at each column count.
    {"decode_gemv/q4_0/split", gpu::WeightType::q4_0, 1, 14336, 4096, kAuto, 0, 1, {}, kSplit},
    {"decode_gemv/q8_0/split", gpu::WeightType::q8_0, 1, 14336, 4096, kAuto, 0, 1, {}, kSplit},
    {"decode_gemv/q4_0/split/batched:8", gpu::WeightType::q4_0, 1, 14336, 4096, kAuto, 0, 8, {}, kSplit},
    {"decode_gemv/q8_0/split/batched:8", gpu::WeightType::q8_0, 1, 14336, 4096, kAuto, 0, 8, {}, kSplit},
    {"decode_gemv/q4_0/split/columns:1/batched:8", gpu::WeightType::q4_0, 1, 14336, 4096, kGemv, 1, 8, {}, kSplit},
    {"decode_gemv/q8_0/split/columns:1/batched:8", gpu::WeightType::q8_0, 1, 14336, 4096, kGemv, 1, 8, {}, kSplit},
    {"decode_gemv/q4_0/split/columns:4/batched:8", gpu::WeightType::q4_0, 1, 14336, 4096, kGemv, 4, 8, {}, kSplit},
    {"decode_gemv/q8_0/split/columns:4/batched:8", gpu::WeightType::q8_0, 1, 14336, 4096, kGemv, 4, 8, {}, kSplit},
    {"decode_gemv/q4_0/split/columns:8/batched:8", gpu::WeightType::q4_0, 1, 14336, 4096, kGemv, 8, 8, {}, kSplit},
    {"logits_gemv/q4_0/split", gpu::WeightType::q4_0, 1, 2048, 32000, kAuto, 0, 1, {}, kSplit},
    {"prefill_512/q4_0/split", gpu::WeightType::q4_0, 512, 14336, 4096, kAuto, 0, 1, {}, kSplit},
    {"prefill_512/q4_0_tiled/split", gpu::WeightType::q4_0, 512, 14336, 4096, gpu::LinearPath::gemm, 0, 1, {}, kSplit},
    // Almost no weights: what a GEMV call costs besides streaming them. One dispatch (f32),
    // two with a barrier between (x rounded first), then the same for a long row of x.
    {"gemv_overhead/f32/k:32/n:64", gpu::WeightType::f32, 1, 32, 64},
    {"gemv_overhead/q4_0/k:32/n:64", gpu::WeightType::q4_0, 1, 32, 64},
    {"gemv_overhead/f32/k:14336/n:64", gpu::WeightType::f32, 1, 14336, 64},
    {"gemv_overhead/q4_0/k:14336/n:64", gpu::WeightType::q4_0, 1, 14336, 64},
    // The same inside a batch of 8: a dispatch's cost without the command buffer's own
    // start and end, which a decoded token pays once.
    {"gemv_overhead/f32/k:32/n:64/batched:8", gpu::WeightType::f32, 1, 32, 64, gpu::LinearPath::automatic, 0, 8},
    {"gemv_overhead/q4_0/k:32/n:64/batched:8", gpu::WeightType::q4_0, 1, 32, 64, gpu::LinearPath::automatic, 0, 8},
    {"logits_gemv/q4_0", gpu::WeightType::q4_0, 1, 2048, 32000},
    {"logits_gemv/q4_0/columns:1", gpu::WeightType::q4_0, 1, 2048, 32000, gpu::LinearPath::gemv, 1},
    {"gemm_4096/f32", gpu::WeightType::f32, 4096, 4096, 4096},
    {"gemm_4096/f16", gpu::WeightType::f16, 4096, 4096, 4096},
    {"gemm_4096/f16_tiled", gpu::WeightType::f16, 4096, 4096, 4096, gpu::LinearPath::gemm},
    // The tensor cores' tile shapes and stages (the automatic choice above).
    {"gemm_4096/f16/tile:128x128/stages:1", gpu::WeightType::f16, 4096, 4096, 4096, kAuto, 0, 1, {128, 128, 1}},
    {"gemm_4096/f16/tile:128x128/stages:2", gpu::WeightType::f16, 4096, 4096, 4096, kAuto, 0, 1, {128, 128, 2}},
    {"gemm_4096/f16/tile:128x256/stages:1", gpu::WeightType::f16, 4096, 4096, 4096, kAuto, 0, 1, {128, 256, 1}},
    {"gemm_4096/f16/tile:64x128/stages:2", gpu::WeightType::f16, 4096, 4096, 4096, kAuto, 0, 1, {64, 128, 2}},
    {"gemm_4096/f16/tile:64x256/stages:1", gpu::WeightType::f16, 4096, 4096, 4096, kAuto, 0, 1, {64, 256, 1}},
    {"prefill_512/f16/tile:128x128/stages:1", gpu::WeightType::f16, 512, 14336, 4096, kAuto, 0, 1, {128, 128, 1}},
    {"prefill_512/f16/tile:128x128/stages:2", gpu::WeightType::f16, 512, 14336, 4096, kAuto, 0, 1, {128, 128, 2}},
    {"prefill_512/f16/tile:128x256/stages:1", gpu::WeightType::f16, 512, 14336, 4096, kAuto, 0, 1, {128, 256, 1}},
    {"prefill_512/f16/tile:64x256/stages:1", gpu::WeightType::f16, 512, 14336, 4096, kAuto, 0, 1, {64, 256, 1}},
    {"prefill_512/q4_0/split/tile:128x128/stages:2", gpu::WeightType::q4_0, 512, 14336, 4096, kAuto, 0, 1, {128, 128, 2}, kSplit},
    {"prefill_512/q4_0/split/tile:128x256/stages:1", gpu::WeightType::q4_0, 512, 14336, 4096, kAuto, 0, 1, {128, 256, 1}, kSplit},
    {"prompt_m/gate:2048x5632/split/tile:64x256", gpu::WeightType::q4_0, 512, 2048, 5632, kAuto, 0, 1, {64, 256, 1}, kSplit},
    {"prompt_m/gate:2048x5632/split/tile:128x128", gpu::WeightType::q4_0, 512, 2048, 5632, kAuto, 0, 1, {128, 128, 2}, kSplit},
    {"prefill_512/q4_0", gpu::WeightType::q4_0, 512, 14336, 4096},
    {"prefill_512/q4_0_tiled", gpu::WeightType::q4_0, 512, 14336, 4096, gpu::LinearPath::gemm},
    {"prefill_512/q8_0", gpu::WeightType::q8_0, 512, 14336, 4096},
    {"prefill_512/q8_0_tiled", gpu::WeightType::q8_0, 512, 14336, 4096, gpu::LinearPath::gemm},
    {"prefill_512/f16", gpu::WeightType::f16, 512, 14336, 4096},
    {"prefill_512/f16_tiled", gpu::WeightType::f16, 512, 14336, 4096, gpu::LinearPath::gemm},
    {"prefill_512/q4_0/tile_rows:128", gpu::WeightType::q4_0, 512, 14336, 4096, gpu::LinearPath::automatic, 0, 1, {128}},
    // A 512-token prompt through M's layer in q4_0 (q and o, k and v, gate and up, down),
    // on the tensor cores with each tile height and the automatic one.
    {"prompt_m/q:2048x2048", gpu::WeightType::q4_0, 512, 2048, 2048},
    {"prompt_m/q:2048x2048/tile_rows:128", gpu::WeightType::q4_0, 512, 2048, 2048, gpu::LinearPath::automatic, 0, 1, {128}},
    {"prompt_m/q:2048x2048/tile_rows:64", gpu::WeightType::q4_0, 512, 2048, 2048, gpu::LinearPath::automatic, 0, 1, {64}},
    {"prompt_m/k:2048x512", gpu::WeightType::q4_0, 512, 2048, 512},
    {"prompt_m/k:2048x512/tile_rows:128", gpu::WeightType::q4_0, 512, 2048, 512, gpu::LinearPath::automatic, 0, 1, {128}},
    {"prompt_m/k:2048x512/tile_rows:64", gpu::WeightType::q4_0, 512, 2048, 512, gpu::LinearPath::automatic, 0, 1, {64}},
    {"prompt_m/gate:2048x5632", gpu::WeightType::q4_0, 512, 2048, 5632},
    {"prompt_m/gate:2048x5632/tile_rows:128", gpu::WeightType::q4_0, 512, 2048, 5632, gpu::LinearPath::automatic, 0, 1, {128}},
    {"prompt_m/gate:2048x5632/tile_rows:32", gpu::WeightType::q4_0, 512, 2048, 5632, gpu::LinearPath::automatic, 0, 1, {32}},
    {"prompt_m/down:5632x2048", gpu::WeightType::q4_0, 512, 5632, 2048},
    {"prompt_m/down:5632x2048/tile_rows:128", gpu::WeightType::q4_0, 512, 5632, 2048, gpu::LinearPath::automatic, 0, 1, {128}},
    {"prompt_m/down:5632x2048/tile_rows:64", gpu::WeightType::q4_0, 512, 5632, 2048, gpu::LinearPath::automatic, 0, 1, {64}},
};

// A decoded token's q4_0 GEMVs at M's shapes (q and o, k and v, gate and up, down,
// logits), 8 to a batch, in each layout at 1 and 2 columns per workgroup.
struct MShape {
  const char* name;
  uint32_t k, n;
};
constexpr MShape kMShapes[] = {
    {"q:2048x2048", 2048, 2048}, {"k:2048x512", 2048, 512}, {"gate:2048x5632", 2048, 5632},
    {"down:5632x2048", 5632, 2048}, {"logits:2048x32000", 2048, 32000}};

}  // namespace
}  // namespace ember::bench

int main(int argc, char** argv) {
  using namespace ember::bench;
  benchmark::RegisterBenchmark("BM_DeviceCopy", BM_DeviceCopy)->Arg(512)->UseManualTime()->Unit(benchmark::kMillisecond);
  for (const Case& c : kCases) {
    auto* registered = benchmark::RegisterBenchmark(("BM_FusedLinear/" + std::string(c.name)).c_str(), BM_FusedLinear,
                                                    c.type, c.rows, c.k, c.n, c.path, c.gemv_columns, c.batched, c.tile,
                                                    c.layout);
    registered->UseManualTime()->Unit(benchmark::kMicrosecond);
    // A fixed count for the one-row cases: with manual time, a minimum time would take a
    // million host round trips for the microsecond ones.
    if (c.rows == 1) registered->Iterations(kIterations);
  }
  for (const MShape& shape : kMShapes)
    for (const auto layout : {ember::gpu::BlockLayout::file, kSplit})
      for (const uint32_t columns : {1u, 2u}) {
        const std::string name = std::string("BM_FusedLinear/gemv_m/") + shape.name +
                                 (layout == kSplit ? "/split" : "") + "/columns:" + std::to_string(columns) +
                                 "/batched:8";
        benchmark::RegisterBenchmark(name.c_str(), BM_FusedLinear, ember::gpu::WeightType::q4_0, 1u, shape.k, shape.n,
                                     kGemv, columns, 8u, CoopmatTile{}, layout)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond)
            ->Iterations(kIterations);
      }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
