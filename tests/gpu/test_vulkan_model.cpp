// The committed demo model (q8_0 weights) end to end with every linear layer on the
// Vulkan device (all layers offloaded, thresholds 0) against the CPU alone: the prompt's
// logits agree to 1e-3 of their largest magnitude and 16 greedy tokens are the same ids,
// with every linear node of each pass, and every node of a decoded token's pass, counted
// as run by the Vulkan backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/logit_compare.h"
#include "ember/session.h"

namespace ember {
namespace {

constexpr int kGeneratedTokens = 16;

ModelOptions options_for(DeviceChoice device) {
  ModelOptions options;
  options.context_length = 64;
  options.offload = {.device = device, .gpu_layers = kAllLayers, .min_flops = 0, .min_weight_bytes = 0};
  return options;
}

int32_t greedy(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// How many of the last pass's `op` nodes ran on `backend`, and how many there were.
std::pair<size_t, size_t> nodes_on(const Model& model, std::string_view backend, Op op) {
  size_t on_backend = 0, of_op = 0;
  for (const NodeTiming& timing : model.last_timings())
    if (timing.op == op) {
      ++of_op;
      on_backend += timing.backend == backend ? 1 : 0;
    }
  return {on_backend, of_op};
}

// The nodes of the last pass that did not run on `backend`, by name.
std::vector<std::string> nodes_off(const Model& model, std::string_view backend) {
  std::vector<std::string> off;
  for (const NodeTiming& timing : model.last_timings())
    if (timing.backend != backend) off.emplace_back(op_name(timing.op));
  return off;
}

TEST(VulkanModel, DemoModelMatchesTheCpuWithEveryLinearOnTheGpu) {
  auto gpu = Session::load(EMBER_DEMO_MODEL, options_for(DeviceChoice::vulkan));
  if (!gpu && gpu.status().code() == ErrorCode::unsupported) GTEST_SKIP() << gpu.status().message();
  ASSERT_TRUE(gpu) << gpu.status().message();
  auto cpu = Session::load(EMBER_DEMO_MODEL, options_for(DeviceChoice::cpu));
  ASSERT_TRUE(cpu) << cpu.status().message();

  auto prompt = cpu->tokenize("You will be surrounded by luxury.");
  ASSERT_TRUE(prompt) << prompt.status().message();
  auto expected = cpu->eval_all_logits(*prompt);
  ASSERT_TRUE(expected) << expected.status().message();
  auto actual = gpu->eval_all_logits(*prompt);
  ASSERT_TRUE(actual) << actual.status().message();
  const auto [prompt_on_gpu, prompt_linear] = nodes_on(gpu->model(), "vulkan", Op::linear);
  EXPECT_GT(prompt_linear, 0u);
  EXPECT_EQ(prompt_on_gpu, prompt_linear);
  const double error = testing::relative_error(actual.value(), expected.value());
  RecordProperty("prompt_logits_relative_error", testing::scientific(error));
  EXPECT_LT(error, 1e-3);

  std::vector<int32_t> cpu_ids, gpu_ids;
  for (int step = 0; step < kGeneratedTokens; ++step) {
    cpu_ids.push_back(greedy(cpu->logits()));
    gpu_ids.push_back(greedy(gpu->logits()));
    ASSERT_EQ(gpu_ids, cpu_ids) << "step " << step;
    ASSERT_TRUE(cpu->eval(std::span<const int32_t>(&cpu_ids.back(), 1)).ok());
    ASSERT_TRUE(gpu->eval(std::span<const int32_t>(&gpu_ids.back(), 1)).ok());
    const auto [decode_on_gpu, decode_linear] = nodes_on(gpu->model(), "vulkan", Op::linear);
    EXPECT_EQ(decode_on_gpu, decode_linear) << "step " << step;
    // The token's embedding and the logits' row gather too: the whole pass is one batch,
    // one round trip per token.
    EXPECT_EQ(nodes_off(gpu->model(), "vulkan"), std::vector<std::string>{}) << "step " << step;
  }
}

}  // namespace
}  // namespace ember
