// The executor routing fused linear nodes to the Vulkan backend: results equal the CPU
// backend's, weights get one device copy that later runs reuse, an activation passed from
// one GPU node to the next never comes back to the host, and nodes the backend must not
// take (too small, a layer not offloaded, an op or activation it lacks) run on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <span>
#include <utility>

#include "core/logit_compare.h"
#include "offload_fixtures.h"

namespace ember {
namespace {

using testing::nodes_run_by;
using testing::relative_error;
using testing::TwoLinears;

class VulkanBackendTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    device_ = testing::open_device_or_null(&why_not_);
    if (!device_) GTEST_SKIP() << "no Vulkan device: " << why_not_;
  }

  Executor gpu_executor(VulkanRouting routing = {}) {
    Executor executor;
    executor.prefer_backend(std::make_shared<VulkanBackend>(device_, std::move(routing)));
    return executor;
  }

  // Every node of a batch with its own device time (VulkanBackend::set_time_each_node).
  Executor timed_gpu_executor() {
    auto backend = std::make_shared<VulkanBackend>(device_, VulkanRouting{});
    backend->set_time_each_node(true);
    Executor executor;
    executor.prefer_backend(std::move(backend));
    return executor;
  }

  // Runs cpu_graph on the CPU and gpu_graph (the same nodes, over caches of its own where
  // a node writes one) on the device, timed node by node: every node ran on the device
  // and the outputs agree, output i within tolerances[i] (kCpuTolerance past its end).
  // Returns the device's run (empty where a run failed).
  struct DeviceRun {
    std::vector<NodeTiming> timings;
    std::vector<Tensor> outputs;
  };
  DeviceRun expect_device_matches_the_cpu(const Graph& cpu_graph, const Graph& gpu_graph,
                                                        std::span<const Tensor> inputs,
                                                        std::span<const double> tolerances = {}) {
    Executor cpu;
    auto expected = cpu.run(cpu_graph, inputs);
    EXPECT_TRUE(expected) << expected.status().message();
    Executor gpu = timed_gpu_executor();
    auto actual = gpu.run(gpu_graph, inputs);
    EXPECT_TRUE(actual) << actual.status().message();
    if (!expected || !actual) return {};
    for (const NodeTiming& timing : gpu.last_timings()) EXPECT_EQ(timing.backend, "vulkan") << op_name(timing.op);
    EXPECT_EQ(actual->size(), expected->size());
    for (size_t i = 0; i < std::min(actual->size(), expected->size()); ++i)
      EXPECT_LT(relative_error((*actual)[i], (*expected)[i]),
                i < tolerances.size() ? tolerances[i] : testing::kCpuTolerance)
          << "output " << i;
    return {gpu.last_timings(), std::move(actual.value())};
  }

  // The same for one graph, whose two nodes after its two linears, of `ops`, were
  // recorded as one dispatch (the first has device time, the second none of its own).
  void expect_one_dispatch_for(const Graph& graph, std::span<const Tensor> inputs, std::array<Op, 2> ops) {
    const std::vector<NodeTiming> timings = expect_device_matches_the_cpu(graph, graph, inputs).timings;
    ASSERT_EQ(timings.size(), 4u);  // two linears, then the pair (reshapes are views)
    EXPECT_EQ(timings[2].op, ops[0]);
    EXPECT_EQ(timings[3].op, ops[1]);
    if (device_->context().capabilities().timestamp_valid_bits > 0) {
      EXPECT_GT(timings[2].device.count(), 0);
      EXPECT_EQ(timings[3].device.count(), 0) << "the second node ran a dispatch of its own";
    }
  }

  std::shared_ptr<VulkanDevice> device_;
  std::string why_not_;
};

TEST_P(VulkanBackendTest, MatchesTheCpuKeepsWeightsResidentAndSubmitsOnce) {
  testing::SeededRng rng;
  const TwoLinears graph(GetParam(), 5, 64, 96, 32, rng);
  Executor cpu;
  const std::vector<Tensor> expected = graph.run(cpu);
  Executor gpu = gpu_executor();
  const std::vector<Tensor> actual = graph.run(gpu);
  ASSERT_EQ(actual.size(), 2u);
  EXPECT_EQ(nodes_run_by(gpu, "vulkan"), 2u);
  EXPECT_EQ(nodes_run_by(gpu, "cpu"), 0u);
  // Both results are graph outputs: they came back to the host within the submission.
  for (const Tensor& output : actual) EXPECT_EQ(output.buffer()->residency(), Residency::both);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_LT(relative_error(actual[i], expected[i]), testing::cpu_tolerance(GetParam(), *device_)) << "output " << i;

  const DeviceMirror* weight_copy = graph.w1.buffer()->device();
  ASSERT_NE(weight_copy, nullptr);
  EXPECT_EQ(graph.w1.buffer()->residency(), Residency::both);
  // With x and the weights already up, the two GPU nodes in a row are one submission.
  const uint64_t before = device_->context().submissions();
  const std::vector<Tensor> again = graph.run(gpu);
  EXPECT_EQ(device_->context().submissions() - before, 1u) << "two GPU nodes in a row make one submission";
  EXPECT_EQ(nodes_run_by(gpu, "vulkan"), 2u);
  EXPECT_EQ(graph.w1.buffer()->device(), weight_copy) << "the second run gave the weight a new device copy";
  // The submission's device time, from its timestamps, lands on the batch's first node
  // and is part of that node's wall time.
  const std::vector<NodeTiming>& timings = gpu.last_timings();
  ASSERT_EQ(timings.size(), 2u);
  if (device_->context().capabilities().timestamp_valid_bits > 0) {
    EXPECT_GT(timings[0].device.count(), 0);
    EXPECT_LE(timings[0].device, timings[0].elapsed);
  }
  EXPECT_EQ(timings[1].device.count(), 0);
  // So does the host's time before the submission, another part of that wall time.
  EXPECT_GT(timings[0].preparation.count(), 0);
  EXPECT_LE(timings[0].preparation + timings[0].device, timings[0].elapsed);
  EXPECT_EQ(timings[1].preparation.count(), 0);
  // Timed node by node (per-op profiles), each node of the batch carries its own part.
  Executor timed = timed_gpu_executor();
  const std::vector<Tensor> timed_outputs = graph.run(timed);
  const std::vector<NodeTiming>& apart = timed.last_timings();
  ASSERT_EQ(apart.size(), 2u);
  if (device_->context().capabilities().timestamp_valid_bits > 0) {
    EXPECT_GT(apart[0].device.count(), 0);
    EXPECT_GT(apart[1].device.count(), 0);
    EXPECT_LE(apart[0].device + apart[1].device, apart[0].elapsed);
  }
  ASSERT_EQ(timed_outputs.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_LT(relative_error(timed_outputs[i], expected[i]), testing::cpu_tolerance(GetParam(), *device_)) << "output " << i;
  ASSERT_EQ(again.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_LT(relative_error(again[i], expected[i]), testing::cpu_tolerance(GetParam(), *device_)) << "output " << i;
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, VulkanBackendTest,
                         ::testing::Values(DType::f32, DType::f16, DType::q8_0, DType::q4_0),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

using VulkanRoutingTest = VulkanBackendTest;

TEST_F(VulkanRoutingTest, ThresholdsKeepSmallProductsOnTheCpu) {
  testing::SeededRng rng;
  const TwoLinears graph(DType::q8_0, 2, 64, 96, 32, rng);
  // First node: 2·2·64·96 = 24576 FLOPs; second: 2·2·96·32 = 12288. The second is below
  // each threshold, but its input is made on the device: it follows it there, in the same
  // submission, rather than bring it back (the thresholds price a round trip of its own).
  Executor by_flops = gpu_executor({.min_flops = 20000});
  graph.run(by_flops);
  ASSERT_EQ(by_flops.last_timings().size(), 2u);
  EXPECT_EQ(by_flops.last_timings()[0].backend, "vulkan");
  EXPECT_EQ(by_flops.last_timings()[1].backend, "vulkan");
  // W1 holds 96 rows of 2 q8_0 blocks (6528 bytes), W2 32 rows of 3 (3264).
  Executor by_bytes = gpu_executor({.min_weight_bytes = 6528});
  graph.run(by_bytes);
  EXPECT_EQ(by_bytes.last_timings()[0].backend, "vulkan");
  EXPECT_EQ(by_bytes.last_timings()[1].backend, "vulkan");
  Executor below_both = gpu_executor({.min_flops = 24577});
  graph.run(below_both);
  EXPECT_EQ(nodes_run_by(below_both, "vulkan"), 0u);
  // Small with its input on the host (8192 FLOPs): the CPU; then large (12288): the device.
  const TwoLinears narrow(DType::q8_0, 2, 64, 32, 96, rng);
  Executor small_first = gpu_executor({.min_flops = 10000});
  narrow.run(small_first);
  EXPECT_EQ(small_first.last_timings()[0].backend, "cpu");
  EXPECT_EQ(small_first.last_timings()[1].backend, "vulkan");
}

TEST_F(VulkanRoutingTest, OnlyOffloadedWeightsGoToTheGpu) {
  testing::SeededRng rng;
  const TwoLinears graph(DType::q4_0, 3, 64, 64, 64, rng);
  Executor cpu;
  const std::vector<Tensor> expected = graph.run(cpu);
  Executor executor = gpu_executor({.weights = std::unordered_set<const Buffer*>{graph.w2.buffer().get()}});
  const std::vector<Tensor> actual = graph.run(executor);
  EXPECT_EQ(executor.last_timings()[0].backend, "cpu");
  EXPECT_EQ(executor.last_timings()[1].backend, "vulkan");
  EXPECT_EQ(graph.w1.buffer()->device(), nullptr);
  EXPECT_LT(relative_error(actual[1], expected[1]), testing::kCpuTolerance);
}

TEST_F(VulkanRoutingTest, WhatTheShadersLackRunsOnTheCpu) {
  testing::SeededRng rng;
  Graph graph;
  const Tensor x = testing::f32_tensor(Shape{2, 64}, rng.uniform(128));
  const Tensor w = testing::weight_tensor(DType::f32, 32, 64, rng);
  const NodeId input = graph.input("x", Shape{2, 64});
  const NodeId weight = graph.constant("w", w);
  graph.mark_output(graph.linear(input, weight, kInvalidNode, Activation::gelu_erf));  // no erf GELU shader
  graph.mark_output(graph.matmul(input, weight, /*transpose_b=*/true));              // not a linear node
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  Executor executor = gpu_executor();
  auto outputs = executor.run(graph, std::span<const Tensor>(&x, 1));
  ASSERT_TRUE(outputs) << outputs.status().message();
  EXPECT_EQ(nodes_run_by(executor, "vulkan"), 0u);
  EXPECT_EQ(nodes_run_by(executor, "cpu"), 2u);
}

// A token's embedding runs on the device when its table is routed there (an offloaded
// first layer), feeding the linear after it in the same submission with the CPU's
// values; a table not routed stays on the CPU. Picking rows of an activation the device
// holds (the rows whose logits are wanted) runs there too. Ids outside the table fail
// with the CPU's message.
TEST_F(VulkanRoutingTest, EmbeddingsRunWhereTheirTableIsRoutedOrHeld) {
  testing::SeededRng rng;
  constexpr int64_t kVocab = 40, kWidth = 64;
  const Tensor table = testing::weight_tensor(DType::q4_0, kVocab, kWidth, rng);
  const Tensor w = testing::weight_tensor(DType::q8_0, 32, kWidth, rng);
  Graph graph;
  const NodeId ids = graph.input("ids", Shape{3}, DType::i32);
  const NodeId rows = graph.input("rows", Shape{1}, DType::i32);
  const NodeId embedded = graph.embedding(graph.constant("table", table), ids);
  const NodeId hidden = graph.linear(embedded, graph.constant("w", w), kInvalidNode);
  graph.mark_output(graph.embedding(hidden, rows));
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  const auto i32_tensor = [](std::vector<int32_t> values) {
    auto tensor = Tensor::empty(Shape{static_cast<int64_t>(values.size())}, DType::i32);
    EXPECT_TRUE(tensor) << tensor.status().message();
    std::copy(values.begin(), values.end(), tensor->write<int32_t>().value());
    return std::move(tensor.value());
  };
  const std::vector<Tensor> inputs = {i32_tensor({39, 0, 7}), i32_tensor({2})};
  Executor cpu;
  auto expected = cpu.run(graph, inputs);
  ASSERT_TRUE(expected) << expected.status().message();

  Executor routed = gpu_executor({.tables = std::unordered_set<const Buffer*>{table.buffer().get()}});
  ASSERT_TRUE(routed.run(graph, inputs));  // uploads the table and the weight, which stay
  // As a model's tokens, the ids are new tensors each pass: neither they nor the result
  // cost a transfer of their own, so the pass and the read of its result are one
  // submission.
  const std::vector<Tensor> fresh_ids = {i32_tensor({39, 0, 7}), i32_tensor({2})};
  const uint64_t before = device_->context().submissions();
  auto actual = routed.run(graph, fresh_ids);
  ASSERT_TRUE(actual) << actual.status().message();
  ASSERT_TRUE((*actual)[0].read<float>());
  EXPECT_EQ(device_->context().submissions() - before, 1u);
  EXPECT_EQ(fresh_ids[0].buffer()->device(), nullptr) << "the ids got a device copy";
  EXPECT_EQ(nodes_run_by(routed, "vulkan"), 3u);
  EXPECT_LT(relative_error((*actual)[0], (*expected)[0]), testing::kCpuTolerance);

  Executor not_routed = gpu_executor({.tables = std::unordered_set<const Buffer*>{}});
  actual = not_routed.run(graph, inputs);
  ASSERT_TRUE(actual) << actual.status().message();
  ASSERT_EQ(not_routed.last_timings().size(), 3u);
  EXPECT_EQ(not_routed.last_timings()[0].backend, "cpu");
  EXPECT_EQ(not_routed.last_timings()[2].backend, "vulkan");  // the rows of the device's result
  EXPECT_LT(relative_error((*actual)[0], (*expected)[0]), testing::kCpuTolerance);

  const std::vector<Tensor> bad = {i32_tensor({3, 40, 1}), i32_tensor({0})};
  auto cpu_error = cpu.run(graph, bad);
  auto gpu_error = routed.run(graph, bad);
  ASSERT_FALSE(cpu_error);
  ASSERT_FALSE(gpu_error);
  EXPECT_EQ(gpu_error.status().code(), ErrorCode::out_of_range);
  EXPECT_EQ(gpu_error.status().message(), cpu_error.status().message());
}

// The cheap ops of a layer after a GPU linear (rms_norm, add, swiglu, reshape, rope at
// given positions) follow its output onto the device within the same submission and
// give the CPU's results; an add of two host tensors stays on the CPU.
TEST_F(VulkanRoutingTest, CheapOpsFollowTheirInputOntoTheDevice) {
  testing::SeededRng rng;
  constexpr int64_t kRows = 3, kIn = 64, kHidden = 96;
  Graph graph;
  const Tensor x = testing::f32_tensor(Shape{kRows, kIn}, rng.uniform(kRows * kIn));
  auto positions = Tensor::empty(Shape{kRows}, DType::i32);
  ASSERT_TRUE(positions) << positions.status().message();
  for (int64_t i = 0; i < kRows; ++i) positions->write<int32_t>().value()[i] = static_cast<int32_t>(100 * i + 7);
  const NodeId input = graph.input("x", Shape{kRows, kIn});
  const NodeId position_input = graph.input("positions", Shape{kRows}, DType::i32);
  const NodeId h = graph.linear(input, graph.constant("w", testing::weight_tensor(DType::q8_0, kHidden, kIn, rng)),
                                kInvalidNode);
  const NodeId normed =
      graph.rms_norm(h, graph.constant("g", testing::f32_tensor(Shape{kHidden}, rng.uniform(kHidden))), 1e-5f);
  const NodeId gated = graph.swiglu(graph.add(normed, h), h);
  const NodeId turned = graph.rope(graph.reshape(gated, Shape{kRows, 6, 16}), position_input, RopeStyle::normal, 0,
                                   10000.0f, 1.0f);
  graph.mark_output(turned);
  graph.mark_output(graph.add(input, input));
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  const std::vector<Tensor> inputs = {x, positions.value()};

  Executor cpu;
  auto expected = cpu.run(graph, inputs);
  ASSERT_TRUE(expected) << expected.status().message();
  Executor gpu = gpu_executor();
  ASSERT_TRUE(gpu.run(graph, inputs));  // uploads x and the weights, which stay
  const uint64_t before = device_->context().submissions();
  auto actual = gpu.run(graph, inputs);
  ASSERT_TRUE(actual) << actual.status().message();
  EXPECT_EQ(device_->context().submissions() - before, 1u);
  std::vector<std::string_view> ran_on;
  for (const NodeTiming& timing : gpu.last_timings()) ran_on.push_back(timing.backend);
  // linear, rms_norm, add, swiglu, rope (the reshape is a view, which nothing runs); then
  // the host add.
  EXPECT_EQ(ran_on, (std::vector<std::string_view>{"vulkan", "vulkan", "vulkan", "vulkan", "vulkan", "cpu"}));
  for (size_t i = 0; i < 2; ++i)
    EXPECT_LT(relative_error((*actual)[i], (*expected)[i]), testing::kCpuTolerance) << "output " << i;
}

// The Vulkan backend under another name, which notes the device's submissions so far each
// time the executor asks whether a node joins the batch (as it walks the graph for it).
class WatchedVulkanBackend final : public Backend {
 public:
  WatchedVulkanBackend(std::shared_ptr<VulkanDevice> device, VulkanRouting routing)
      : device_(device), inner_(std::make_shared<VulkanBackend>(std::move(device), std::move(routing))) {}
  mutable std::vector<uint64_t> submissions_when_asked;

  std::string_view name() const override { return inner_->name(); }
  bool supports(const Node& node, std::span<const Tensor> inputs) const override {
    return inner_->supports(node, inputs);
  }
  bool joins_batch(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const override {
    submissions_when_asked.push_back(device_->context().submissions());
    return inner_->joins_batch(node, inputs, from_batch);
  }
  Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) override {
    return inner_->run(node, inputs, output);
  }
  size_t max_batch() const override { return inner_->max_batch(); }
  Status run_batch(std::span<const BatchItem> items) override { return inner_->run_batch(items); }
  Status run_fed_batch(BatchFeed& feed) override { return inner_->run_fed_batch(feed); }

 private:
  std::shared_ptr<VulkanDevice> device_;
  std::shared_ptr<VulkanBackend> inner_;
};

// A batch is recorded as the executor gathers it, and goes to the device in pieces: the
// first piece is submitted before the executor has walked to the batch's last nodes, so
// a device starts on a token while the host still walks the graph. The output still
// matches the CPU's.
TEST_F(VulkanRoutingTest, TheDeviceStartsOnABatchWhileTheExecutorStillGathersIt) {
  testing::SeededRng rng;
  constexpr int64_t kWidth = 64, kLinears = 24;  // a dispatch each: three times the first piece
  const Tensor x = testing::f32_tensor(Shape{1, kWidth}, rng.uniform(kWidth));
  Graph graph;
  NodeId chain = graph.input("x", Shape{1, kWidth});
  for (int64_t i = 0; i < kLinears; ++i)
    chain = graph.linear(
        chain, graph.constant("w" + std::to_string(i), testing::weight_tensor(DType::f32, kWidth, kWidth, rng)),
        kInvalidNode);
  graph.mark_output(chain);
  ASSERT_TRUE(graph.ok()) << graph.status().message();

  Executor cpu;
  auto expected = cpu.run(graph, std::span(&x, 1));
  ASSERT_TRUE(expected) << expected.status().message();
  auto watched = std::make_shared<WatchedVulkanBackend>(device_, VulkanRouting{});
  Executor gpu;
  gpu.prefer_backend(watched);
  ASSERT_TRUE(gpu.run(graph, std::span(&x, 1)));  // uploads x and the weights, which stay
  watched->submissions_when_asked.clear();
  const uint64_t before = device_->context().submissions();
  auto actual = gpu.run(graph, std::span(&x, 1));
  ASSERT_TRUE(actual) << actual.status().message();
  EXPECT_EQ(nodes_run_by(gpu, "vulkan"), static_cast<size_t>(kLinears));
  const std::vector<uint64_t>& asked = watched->submissions_when_asked;
  ASSERT_EQ(asked.size(), static_cast<size_t>(kLinears - 1));  // every linear after the first
  EXPECT_EQ(asked.front(), before);
  EXPECT_GT(asked.back(), before) << "nothing went to the device before the walk ended";
  EXPECT_GT(device_->context().submissions(), asked.back()) << "the last piece went before the walk ended";
  EXPECT_LT(relative_error((*actual)[0], (*expected)[0]), testing::kCpuTolerance);
}

// A residual add and the norm of its sum, back to back on the device, are one dispatch:
// timed node by node, the norm's node has no device time of its own. Both results still
// match the CPU's.
TEST_F(VulkanRoutingTest, AResidualAddAndTheNormOfItsSumAreOneDispatch) {
  testing::SeededRng rng;
  constexpr int64_t kRows = 3, kIn = 64, kHidden = 96;
  const Tensor x = testing::f32_tensor(Shape{kRows, kIn}, rng.uniform(kRows * kIn));
  Graph graph;
  const NodeId input = graph.input("x", Shape{kRows, kIn});
  const NodeId h = graph.linear(input, graph.constant("w", testing::weight_tensor(DType::f32, kHidden, kIn, rng)),
                                kInvalidNode);
  const NodeId g = graph.linear(input, graph.constant("v", testing::weight_tensor(DType::f32, kHidden, kIn, rng)),
                                kInvalidNode);
  const NodeId sum = graph.add(h, g);
  const NodeId normed =
      graph.rms_norm(sum, graph.constant("n", testing::f32_tensor(Shape{kHidden}, rng.uniform(kHidden))), 1e-5f);
  graph.mark_output(sum);
  graph.mark_output(normed);
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  expect_one_dispatch_for(graph, std::span(&x, 1), {Op::add, Op::rms_norm});
}

// A decoded token's norm and swiglu leave their output rounded to q8_0 for the block
// GEMVs that read it next (gate and up; down), which then record no rounding pass of
// their own: 6 dispatches, not 8. Two rows take the GEMM, which rounds x itself. Either
// way the outputs match the CPU's.
TEST_F(VulkanRoutingTest, ANormAndASwigluRoundTheirOutputForTheGemvsAfterThem) {
  testing::SeededRng rng;
  constexpr int64_t kIn = 64, kHidden = 96, kFfn = 160;
  for (const DType type : {DType::q4_0, DType::q8_0})
    for (const auto& [rows, dispatches] : {std::pair{int64_t{1}, size_t{6}}, std::pair{int64_t{2}, size_t{8}}}) {
      SCOPED_TRACE(std::string(dtype_name(type)) + ", " + std::to_string(rows) + " rows");
      const Tensor x = testing::f32_tensor(Shape{rows, kIn}, rng.uniform(rows * kIn));
      Graph graph;
      const NodeId input = graph.input("x", Shape{rows, kIn});
      const NodeId hidden = graph.linear(
          input, graph.constant("w", testing::weight_tensor(DType::f32, kHidden, kIn, rng)), kInvalidNode);
      const NodeId normed = graph.rms_norm(
          hidden, graph.constant("n", testing::f32_tensor(Shape{kHidden}, rng.uniform(kHidden))), 1e-5f);
      const NodeId gate =
          graph.linear(normed, graph.constant("g", testing::weight_tensor(type, kFfn, kHidden, rng)), kInvalidNode);
      const NodeId up =
          graph.linear(normed, graph.constant("u", testing::weight_tensor(type, kFfn, kHidden, rng)), kInvalidNode);
      const NodeId down = graph.linear(graph.swiglu(gate, up),
                                       graph.constant("d", testing::weight_tensor(type, kIn, kFfn, rng)), kInvalidNode);
      graph.mark_output(down);
      ASSERT_TRUE(graph.ok()) << graph.status().message();
      Executor cpu;
      auto expected = cpu.run(graph, std::span(&x, 1));
      ASSERT_TRUE(expected) << expected.status().message();
      auto backend = std::make_shared<VulkanBackend>(device_, VulkanRouting{});
      Executor gpu;
      gpu.prefer_backend(backend);
      auto actual = gpu.run(graph, std::span(&x, 1));
      ASSERT_TRUE(actual) << actual.status().message();
      EXPECT_EQ(nodes_run_by(gpu, "vulkan"), 6u);
      EXPECT_EQ(backend->last_batch_dispatches(), dispatches);
      EXPECT_LT(relative_error((*actual)[0], (*expected)[0]), testing::kCpuTolerance);
    }
}

// A layer's q and k ropes, back to back by the same angles, are one dispatch.
TEST_F(VulkanRoutingTest, TwoRopesByTheSameAnglesAreOneDispatch) {
  testing::SeededRng rng;
  constexpr int64_t kRows = 3, kIn = 64, kHeadDim = 16;
  const Tensor x = testing::f32_tensor(Shape{kRows, kIn}, rng.uniform(kRows * kIn));
  auto positions = Tensor::empty(Shape{kRows}, DType::i32);
  ASSERT_TRUE(positions) << positions.status().message();
  for (int64_t i = 0; i < kRows; ++i) positions->write<int32_t>().value()[i] = static_cast<int32_t>(31 * i + 5);
  Graph graph;
  const NodeId input = graph.input("x", Shape{kRows, kIn});
  const NodeId position_input = graph.input("positions", Shape{kRows}, DType::i32);
  const NodeId q = graph.linear(input, graph.constant("wq", testing::weight_tensor(DType::f32, 6 * kHeadDim, kIn, rng)),
                                kInvalidNode);
  const NodeId k = graph.linear(input, graph.constant("wk", testing::weight_tensor(DType::f32, 2 * kHeadDim, kIn, rng)),
                                kInvalidNode);
  for (const auto& [flat, heads] : {std::pair{q, int64_t{6}}, std::pair{k, int64_t{2}}})
    graph.mark_output(graph.rope(graph.reshape(flat, Shape{kRows, heads, kHeadDim}), position_input,
                                 RopeStyle::normal, 0, 10000.0f, 1.0f));
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  const std::vector<Tensor> inputs = {x, positions.value()};
  expect_one_dispatch_for(graph, inputs, {Op::rope, Op::rope});
}

// A decoded token's q and k ropes, with its attention right after them, run inside the
// attention's dispatch: timed node by node, neither rope has device time of its own. The
// attention's output, the turned q and k (graph outputs too) and the caches still match
// the CPU's, in both pair styles and with a rotary part shorter than the head.
TEST_F(VulkanRoutingTest, ADecodedTokensRopesRunInsideItsAttention) {
  testing::SeededRng rng;
  constexpr int64_t kIn = 64, kHeadDim = 32, kQHeads = 4, kKvHeads = 2, kPosition = 9, kCacheRows = 16;
  for (const auto& [style_case, rotary_case] :
       {std::pair{RopeStyle::normal, int64_t{0}}, std::pair{RopeStyle::neox, int64_t{24}}}) {
    // Plain copies: a lambda below reads them, and clang before 16 cannot capture a structured binding.
    const RopeStyle style = style_case;
    const int64_t rotary = rotary_case;
    SCOPED_TRACE(style == RopeStyle::neox ? "neox, 24 of 32 dims" : "adjacent pairs");
    const Tensor x = testing::f32_tensor(Shape{1, kIn}, rng.uniform(kIn));
    auto positions = Tensor::empty(Shape{1}, DType::i32);
    ASSERT_TRUE(positions) << positions.status().message();
    positions->write<int32_t>().value()[0] = kPosition;
    const std::vector<float> cached = rng.uniform(kCacheRows * kKvHeads * kHeadDim);
    const Tensor wq = testing::weight_tensor(DType::f32, kQHeads * kHeadDim, kIn, rng);
    const Tensor wk = testing::weight_tensor(DType::f32, kKvHeads * kHeadDim, kIn, rng);
    const Tensor wv = testing::weight_tensor(DType::f32, kKvHeads * kHeadDim, kIn, rng);
    // Each run writes its own caches, which start equal.
    const auto make_caches = [&] {
      std::array<Tensor, 2> caches;
      for (Tensor& cache : caches) {
        auto made = Tensor::empty(Shape{kCacheRows, kKvHeads, kHeadDim}, DType::f16);
        EXPECT_TRUE(made) << made.status().message();
        cache = made.value();
        for (int64_t i = 0; i < cache.elements(); ++i) cache.set_flat(i, cached[static_cast<size_t>(i)]);
      }
      return caches;
    };
    const auto build = [&](Graph& graph, const std::array<Tensor, 2>& caches) {
      const NodeId input = graph.input("x", Shape{1, kIn});
      const NodeId position_input = graph.input("positions", Shape{1}, DType::i32);
      const auto heads = [&](const char* name, const Tensor& weight, int64_t count) {
        return graph.reshape(graph.linear(input, graph.constant(name, weight), kInvalidNode),
                             Shape{1, count, kHeadDim});
      };
      // In a layer's order: the three products, then the ropes, then the attention.
      const NodeId q_heads = heads("wq", wq, kQHeads), k_heads = heads("wk", wk, kKvHeads),
                   v_heads = heads("wv", wv, kKvHeads);
      const NodeId q = graph.rope(q_heads, position_input, style, rotary, 10000.0f, 1.0f);
      const NodeId k = graph.rope(k_heads, position_input, style, rotary, 10000.0f, 1.0f);
      const Graph::CacheSegment segment{graph.constant("k_cache", caches[0]), graph.constant("v_cache", caches[1]),
                                        {1, kPosition}};
      graph.mark_output(graph.cached_attention(q, k, v_heads, std::span(&segment, 1), 0.25f));
      graph.mark_output(q);
      graph.mark_output(k);
    };
    const std::vector<Tensor> inputs = {x, positions.value()};
    const std::array<Tensor, 2> cpu_caches = make_caches(), gpu_caches = make_caches();
    Graph cpu_graph, gpu_graph;
    build(cpu_graph, cpu_caches);
    build(gpu_graph, gpu_caches);
    ASSERT_TRUE(gpu_graph.ok()) << gpu_graph.status().message();
    // The attention reads the new key and value rows back from the f16 caches. Each side
    // computed them in its own sum order, so a value within 1e-7 of an f16 rounding
    // boundary takes the neighbouring code on one side: 2^-11 of that element (a CI seed
    // gave 3.2e-4 of the output). The turned q and k are never rounded and stay at 1e-5;
    // a wrongly turned pair is off by the whole rotation.
    constexpr std::array<double, 3> kTolerances = {2e-3, testing::kCpuTolerance, testing::kCpuTolerance};
    const DeviceRun run = expect_device_matches_the_cpu(cpu_graph, gpu_graph, inputs, kTolerances);
    ASSERT_EQ(run.outputs.size(), 3u);
    std::vector<Op> ran;
    for (const NodeTiming& timing : run.timings) {
      ran.push_back(timing.op);
      if (timing.op == Op::rope && device_->context().capabilities().timestamp_valid_bits > 0) {
        EXPECT_EQ(timing.device.count(), 0) << "a rope ran a dispatch of its own";
      }
    }
    EXPECT_EQ(std::count(ran.begin(), ran.end(), Op::rope), 2);
    // Decoded again and again by one executor, the token gets the same buffers, its angle
    // table among them (VulkanBackend's spares), and binds them through the descriptor
    // sets kept from the pass before: a repeat writes none.
    Executor repeating = gpu_executor();
    for (int pass = 0; pass < 2; ++pass) ASSERT_TRUE(repeating.run(gpu_graph, inputs).ok());
    const uint64_t written = device_->descriptor_sets().written();
    const auto repeated = repeating.run(gpu_graph, inputs);
    ASSERT_TRUE(repeated) << repeated.status().message();
    EXPECT_EQ(device_->descriptor_sets().written(), written) << "a repeated token wrote descriptor sets anew";
    EXPECT_LT(relative_error(repeated->front(), run.outputs.front()), 2e-3);
    for (size_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < kCacheRows * kKvHeads * kHeadDim; ++i)
        ASSERT_NEAR(gpu_caches[c].get_flat(i), cpu_caches[c].get_flat(i), 2e-3) << (c == 0 ? "key" : "value")
                                                                                << " cache element " << i;
  }
}

}  // namespace
}  // namespace ember
