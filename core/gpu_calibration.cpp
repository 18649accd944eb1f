#include "ember/gpu_calibration.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ember/atomic_file.h"
#include "ember/executor.h"
#include "ember/graph.h"
#include "quant/quantize.h"
#if EMBER_HAVE_VULKAN
#include "core/vulkan_backend.h"
#endif

namespace ember {
namespace {

constexpr int kFileVersion = 1;

#if EMBER_HAVE_VULKAN
Result<Tensor> random_q4_0(int64_t n, int64_t k, std::mt19937& engine) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(n * k));
  for (float& v : values) v = dist(engine);
  auto tensor = Tensor::empty(Shape{n, k}, DType::q4_0);
  if (!tensor) return tensor.status();
  auto bytes = tensor->write<std::byte>();
  if (!bytes) return bytes.status();
  quant::quantize_row_reference(DType::q4_0, values.data(), bytes.value(), n * k);
  return tensor;
}

// The median seconds of `repetitions` runs of the one-node graph, after a warm-up run
// (weights uploaded, pipelines created). Before each run the host rewrites x, so a device
// uploads it every time, and after it the host reads y, so a device downloads it: the
// round trip of a linear node between two CPU nodes.
Result<double> time_linear(Executor& executor, const Graph& graph, const Tensor& x, int repetitions,
                           std::string_view expected_backend) {
  std::vector<double> seconds;
  for (int run = -1; run < repetitions; ++run) {
    auto host_x = x.write<float>();
    if (!host_x) return host_x.status();
    const auto start = std::chrono::steady_clock::now();
    auto outputs = executor.run(graph, std::span<const Tensor>(&x, 1));
    if (!outputs) return outputs.status();
    auto y = outputs->front().read<float>();
    if (!y) return y.status();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    const bool expected = std::any_of(executor.last_timings().begin(), executor.last_timings().end(),
                                      [&](const NodeTiming& t) { return t.op == Op::linear && t.backend == expected_backend; });
    if (!expected) return unsupported(fmt::format("calibration: the {} backend did not run the linear node", expected_backend));
    if (run >= 0) seconds.push_back(elapsed.count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}
#endif

}  // namespace

uint64_t crossover_flops(std::span<const CalibrationCase> cases) {
  std::vector<CalibrationCase> sorted(cases.begin(), cases.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.flops() < b.flops(); });
  uint64_t crossover = kNeverOffload;
  // From the largest down, while the device keeps winning; cases of equal size must all win.
  for (size_t i = sorted.size(); i > 0;) {
    const uint64_t flops = sorted[i - 1].flops();
    bool all_won = true;
    for (; i > 0 && sorted[i - 1].flops() == flops; --i) all_won = all_won && sorted[i - 1].gpu_seconds < sorted[i - 1].cpu_seconds;
    if (!all_won) break;
    crossover = flops;
  }
  return crossover;
}

Result<GpuCalibration> calibrate_gpu(const CalibrationOptions& options) {
  if (options.rows.empty() || options.sizes.empty() || options.repetitions < 1)
    return invalid_argument("calibration: no rows, sizes or repetitions to time");
  for (const int64_t size : options.sizes)
    if (size <= 0 || size % 32 != 0) return invalid_argument(fmt::format("calibration: size {} is not a positive multiple of 32", size));
  for (const int64_t rows : options.rows)
    if (rows <= 0) return invalid_argument(fmt::format("calibration: {} rows", rows));
#if EMBER_HAVE_VULKAN
  auto device = VulkanDevice::open({.device_index = options.device_index});
  if (!device) return unsupported(fmt::format("calibration: no usable Vulkan device ({})", device.status().message()));
  GpuCalibration calibration;
  calibration.device = device.value()->context().capabilities().name;
  auto gpu = std::make_shared<VulkanBackend>(device.value(), VulkanRouting{});
  std::mt19937 engine(20261203);
  for (const int64_t size : options.sizes) {
    auto weight = random_q4_0(size, size, engine);
    if (!weight) return weight.status();
    for (const int64_t rows : options.rows) {
      Graph graph;
      graph.mark_output(graph.linear(graph.input("x", Shape{rows, size}), graph.constant("w", weight.value()), kInvalidNode));
      if (!graph.ok()) return graph.status();
      auto x = Tensor::empty(Shape{rows, size}, DType::f32);
      if (!x) return x.status();
      EMBER_RETURN_IF_ERROR(x->fill(0.5f));
      // Each executor its own pool, so the two never share an output buffer's device copy.
      Executor cpu_executor;
      Executor gpu_executor;
      gpu_executor.prefer_backend(gpu);
      auto cpu_seconds = time_linear(cpu_executor, graph, x.value(), options.repetitions, "cpu");
      if (!cpu_seconds) return cpu_seconds.status();
      auto gpu_seconds = time_linear(gpu_executor, graph, x.value(), options.repetitions, "vulkan");
      if (!gpu_seconds) return gpu_seconds.status();
      calibration.cases.push_back({rows, size, size, cpu_seconds.value(), gpu_seconds.value()});
    }
  }
  calibration.min_flops = crossover_flops(calibration.cases);
  return calibration;
#else
  return unsupported("calibration: this build of ember has no Vulkan module (configured without Vulkan or glslc)");
#endif
}

std::filesystem::path calibration_path() {
  constexpr const char* kFile = "gpu-calibration.json";
  if (const char* dir = std::getenv("EMBER_CACHE_DIR"); dir != nullptr && *dir != '\0') return std::filesystem::path(dir) / kFile;
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir != nullptr && *dir != '\0')
    return std::filesystem::path(dir) / "ember" / kFile;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : ".") / ".cache" / "ember" / kFile;
}

Status save_calibration(const GpuCalibration& calibration, const std::filesystem::path& path) {
  nlohmann::json cases = nlohmann::json::array();
  for (const CalibrationCase& c : calibration.cases)
    cases.push_back({{"rows", c.rows}, {"k", c.k}, {"n", c.n}, {"cpu_seconds", c.cpu_seconds}, {"gpu_seconds", c.gpu_seconds}});
  const nlohmann::json root = {{"version", kFileVersion}, {"device", calibration.device},
                               {"min_flops", calibration.min_flops}, {"cases", cases}};
  std::error_code error;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  if (error) return Status(ErrorCode::io_error, fmt::format("{}: cannot create the folder ({})", path.parent_path().string(), error.message()));
  return write_file_atomically(path, root.dump(2) + "\n");
}

Result<std::optional<GpuCalibration>> load_calibration(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::optional<GpuCalibration>();
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  if (!stream) return Status(ErrorCode::io_error, fmt::format("{}: cannot read the GPU calibration", path.string()));
  const auto bad = [&](std::string_view why) {
    return Status(ErrorCode::corrupt_file,
                  fmt::format("{}: not a GPU calibration file ({}); run `run-model --calibrate` again", path.string(), why));
  };
  const auto root = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) return bad("not a JSON object");
  const auto version = root.find("version");
  const auto device = root.find("device");
  const auto min_flops = root.find("min_flops");
  const auto cases = root.find("cases");
  if (version == root.end() || !version->is_number_integer() || version->get<int64_t>() != kFileVersion)
    return bad(fmt::format("version is not {}", kFileVersion));
  if (device == root.end() || !device->is_string()) return bad("no device name");
  if (min_flops == root.end() || !min_flops->is_number_unsigned()) return bad("no min_flops");
  if (cases == root.end() || !cases->is_array()) return bad("no cases");
  GpuCalibration calibration{device->get<std::string>(), min_flops->get<uint64_t>(), {}};
  for (const auto& item : *cases) {
    if (!item.is_object()) return bad("a case is not an object");
    CalibrationCase c;
    for (auto [key, field] : {std::pair{"rows", &c.rows}, {"k", &c.k}, {"n", &c.n}}) {
      const auto value = item.find(key);
      if (value == item.end() || !value->is_number_integer() || value->get<int64_t>() <= 0) return bad(fmt::format("a case's {}", key));
      *field = value->get<int64_t>();
    }
    for (auto [key, field] : {std::pair{"cpu_seconds", &c.cpu_seconds}, {"gpu_seconds", &c.gpu_seconds}}) {
      const auto value = item.find(key);
      if (value == item.end() || !value->is_number() || !(value->get<double>() >= 0)) return bad(fmt::format("a case's {}", key));
      *field = value->get<double>();
    }
    calibration.cases.push_back(c);
  }
  return std::optional<GpuCalibration>(std::move(calibration));
}

}  // namespace ember
