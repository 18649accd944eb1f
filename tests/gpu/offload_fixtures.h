// A small graph for the Vulkan backend's tests: two fused linear layers in a row, x f32
// [rows, k] -> act(x·W1ᵀ + b1) -> ·W2ᵀ, both results marked as outputs, with W1 and W2
// in any weight type, and the same graph's result from the CPU backend alone.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/vulkan_backend.h"
#include "ember/executor.h"
#include "ember/graph.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::testing {

inline Tensor f32_tensor(const Shape& shape, const std::vector<float>& values) {
  auto tensor = Tensor::empty(shape, DType::f32);
  EXPECT_TRUE(tensor) << tensor.status().message();
  for (int64_t i = 0; i < shape.elements(); ++i) tensor->set_flat(i, values[static_cast<size_t>(i)]);
  return tensor.value();
}

// [n, k] in `type`, from values in [-1, 1) rounded to that type.
inline Tensor weight_tensor(DType type, int64_t n, int64_t k, SeededRng& rng) {
  const std::vector<float> values = rng.uniform(static_cast<size_t>(n * k));
  if (type == DType::f32) return f32_tensor(Shape{n, k}, values);
  auto tensor = Tensor::empty(Shape{n, k}, type);
  EXPECT_TRUE(tensor) << tensor.status().message();
  auto bytes = tensor->write<std::byte>();
  EXPECT_TRUE(bytes) << bytes.status().message();
  quant::quantize_row_reference(type, values.data(), bytes.value(), n * k);
  return tensor.value();
}

// max|GPU - CPU| / max|CPU| allowed: the shaders take x as the CPU kernels do (f32, or
// rounded to q8_0 against block weights) and differ only in the order of their sums.
inline constexpr double kCpuTolerance = 1e-5;
// Except for f16 weights over several rows where the device has the tensor-core GEMM,
// which rounds x to f16 (gpu/linear.h): 2^-11 of each term. And for block weights in
// chained layers: the second layer rounds to q8_0 an x that the first computed in another
// sum order, and a value within 1e-7 of a rounding boundary then takes the neighbouring
// code on one side (a CI seed gave 1.6e-3 of the output); two such codes stay under
// 1e-2, while a misplaced block or nibble is off by the whole product.
inline double cpu_tolerance(DType weight_type, VulkanDevice& device) {
  if (weight_type == DType::q8_0 || weight_type == DType::q4_0) return 1e-2;
  return weight_type == DType::f16 && device.context().capabilities().fp16_cooperative_matrix() ? 2e-3
                                                                                                : kCpuTolerance;
}

struct TwoLinears {
  Graph graph;
  Tensor x, w1, b1, w2;
  NodeId first = kInvalidNode, second = kInvalidNode;

  TwoLinears(DType weight_type, int64_t rows, int64_t k, int64_t hidden, int64_t n, SeededRng& rng)
      : x(f32_tensor(Shape{rows, k}, rng.uniform(static_cast<size_t>(rows * k)))),
        w1(weight_tensor(weight_type, hidden, k, rng)),
        b1(f32_tensor(Shape{hidden}, rng.uniform(static_cast<size_t>(hidden)))),
        w2(weight_tensor(weight_type, n, hidden, rng)) {
    const NodeId input = graph.input("x", Shape{rows, k});
    first = graph.linear(input, graph.constant("w1", w1), graph.constant("b1", b1), Activation::silu);
    second = graph.linear(first, graph.constant("w2", w2), kInvalidNode);
    graph.mark_output(first);
    graph.mark_output(second);
    EXPECT_TRUE(graph.ok()) << graph.status().message();
  }

  std::vector<Tensor> run(Executor& executor) const {
    auto outputs = executor.run(graph, std::span<const Tensor>(&x, 1));
    EXPECT_TRUE(outputs) << outputs.status().message();
    return outputs ? outputs.value() : std::vector<Tensor>{};
  }
};

// How many of the last run's nodes `backend` ran.
inline size_t nodes_run_by(const Executor& executor, std::string_view backend) {
  size_t count = 0;
  for (const NodeTiming& timing : executor.last_timings()) count += timing.backend == backend ? 1 : 0;
  return count;
}

inline std::shared_ptr<VulkanDevice> open_device_or_null(std::string* why_not) {
  auto device = VulkanDevice::open();
  if (!device) {
    *why_not = device.status().message();
    return nullptr;
  }
  return device.value();
}

}  // namespace ember::testing
