// Small random models of every family, in every weight type quantize-model writes, run
// with all layers offloaded to the Vulkan device (thresholds 0) against the CPU alone: a
// prompt's logits, then a few greedily decoded tokens' logits, agree to a stated share of
// their largest magnitude, and so do their greedy ids wherever the CPU's best two logits
// lie further apart than that. The float cases hold the device's own ops (norms, rope,
// attention and its cache, swiglu, GELU, embeddings) to 2e-3; the block cases hold its
// block products and the routing of weight types it lacks to a bound that allows for a
// rounding step of x (kBlockTolerance). Models in weight types the device's linears take
// (f32, q8_0, q4_0) must run every linear node there, GPT-2's three projections out of
// its fused attn_qkv matrix among them; the other types run some products on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/logit_compare.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "model_builder.h"
#include "model_families.h"

namespace ember {
namespace {

using testing::HfModelSpec;
using testing::ScratchDir;
using testing::SeededRng;

constexpr int kDecodedTokens = 4;
constexpr size_t kPromptTokens = 7;
// Float weights: the two sides differ by f32 rounding alone, grown through the layers
// (at most 4.5e-4 in 140 runs of each case, fresh seeds, on lavapipe).
constexpr double kFloatTolerance = 2e-3;
// Block weights: both sides round x to q8_0 before a product, but x comes from sums taken
// in other orders (the norms, the attention, the products' blocks) that may differ in
// their last bit, so now and then one value rounds to the neighbouring step. In 140 runs
// of each case that moved the logits by up to 1.3e-2 of their largest magnitude, about
// one run in ten; a wrong product or a wrong cache row moves them by far more.
constexpr double kBlockTolerance = 5e-2;

struct OffloadCase {
  std::string name;
  HfModelSpec spec;
  std::optional<QuantizeTarget> target;  // unset: the Hugging Face folder itself (f32)
  bool linears_on_device = true;         // whether the device takes every product

  double tolerance() const {
    const bool float_weights =
        !target || *target == QuantizeTarget::f32 || *target == QuantizeTarget::f16 || *target == QuantizeTarget::bf16;
    return float_weights ? kFloatTolerance : kBlockTolerance;
  }
};

void PrintTo(const OffloadCase& c, std::ostream* out) { *out << c.name; }

// Every family's f32 folder (odd sizes: head sizes 6 to 12, vocabularies and FFNs off
// every tile), then GGUF files whose widths are multiples of 32 so that the block types
// apply, with an FFN (320) not a multiple of 256 so that the k-quant files mix in their
// fallback type.
std::vector<OffloadCase> offload_cases() {
  std::vector<OffloadCase> cases;
  for (const testing::FamilyCase& family : testing::family_cases())
    cases.push_back({family.name, family.spec, std::nullopt});
  const HfModelSpec llama = testing::make_spec(Architecture::llama, 67, 256, 4, 2, 320);
  const struct {
    QuantizeTarget target;
    bool on_device;
  } types[] = {{QuantizeTarget::q8_0, true},    {QuantizeTarget::q4_0, true},  {QuantizeTarget::q4_1, false},
               {QuantizeTarget::q4_k_m, false}, {QuantizeTarget::q6_k, false}, {QuantizeTarget::bf16, false}};
  for (const auto& type : types)
    cases.push_back({"llama_" + std::string(quantize_target_name(type.target)), llama, type.target, type.on_device});
  HfModelSpec gpt2 = testing::make_spec(Architecture::gpt2, 71, 64, 2, 2, 256);
  gpt2.context_length = 32;
  cases.push_back({"gpt2_q8_0", gpt2, QuantizeTarget::q8_0});
  // Matrices of a trained model's scale: drawn in ±1, activations grow from layer to layer
  // and a rounding step of x reached 4.1e-2 of the logits.
  for (OffloadCase& c : cases) c.spec.matrix_range = 1.0f / std::sqrt(static_cast<float>(c.spec.hidden_size));
  return cases;
}

ModelOptions options_for(DeviceChoice device) {
  ModelOptions options;
  options.context_length = 16;
  options.offload = {.device = device, .gpu_layers = kAllLayers, .min_flops = 0, .min_weight_bytes = 0};
  return options;
}

// The last row's best id, and how far its logit lies above the second best.
std::pair<int32_t, float> best_of_last_row(const Tensor& logits) {
  const int64_t last = logits.shape()[0] - 1, vocab = logits.shape()[1];
  int64_t best = 0;
  float runner_up = -INFINITY;
  for (int64_t i = 1; i < vocab; ++i) {
    const float value = logits.get_flat(last * vocab + i), best_value = logits.get_flat(last * vocab + best);
    if (value > best_value) {
      runner_up = best_value;
      best = i;
    } else {
      runner_up = std::max(runner_up, value);
    }
  }
  return {static_cast<int32_t>(best), logits.get_flat(last * vocab + best) - runner_up};
}

float largest_magnitude(const Tensor& tensor) {
  float largest = 0.0f;
  for (int64_t i = 0; i < tensor.elements(); ++i) largest = std::max(largest, std::fabs(tensor.get_flat(i)));
  return largest;
}

// The ops of the last pass's nodes that did not run on the device.
std::vector<std::string> ops_off_device(const Model& model) {
  std::vector<std::string> off;
  for (const NodeTiming& timing : model.last_timings())
    if (timing.backend != "vulkan") off.emplace_back(op_name(timing.op));
  return off;
}

// How many of the last pass's linear nodes ran on the device, and how many there were.
std::pair<size_t, size_t> linears_on_device(const Model& model) {
  size_t on_device = 0, linears = 0;
  for (const NodeTiming& timing : model.last_timings())
    if (timing.op == Op::linear) {
      ++linears;
      on_device += timing.backend == "vulkan" ? 1 : 0;
    }
  return {on_device, linears};
}

class VulkanModelFamilies : public ::testing::TestWithParam<OffloadCase> {};

TEST_P(VulkanModelFamilies, EveryLayerOffloadedMatchesTheCpu) {
  const OffloadCase& param = GetParam();
  SeededRng rng;
  ScratchDir scratch;
  const auto hf = testing::write_random_hf_model(scratch / param.name, param.spec, rng);
  std::filesystem::path path = hf.folder;
  if (param.target) {
    QuantizeOptions quantize;
    quantize.input = hf.folder;
    quantize.output = path = scratch / "model.gguf";
    quantize.target = *param.target;
    auto report = quantize_model(quantize);
    ASSERT_TRUE(report.ok()) << report.status().message();
  }

  auto gpu = Model::load(path, options_for(DeviceChoice::vulkan));
  if (!gpu && gpu.status().code() == ErrorCode::unsupported) GTEST_SKIP() << gpu.status().message();
  ASSERT_TRUE(gpu) << gpu.status().message();
  auto cpu = Model::load(path, options_for(DeviceChoice::cpu));
  ASSERT_TRUE(cpu) << cpu.status().message();

  std::vector<int32_t> tokens(kPromptTokens);
  for (int32_t& token : tokens) token = static_cast<int32_t>(rng.integer(0, param.spec.vocab_size - 1));
  int64_t position = 0;
  std::span<const int32_t> pass = tokens;
  for (int step = 0; step <= kDecodedTokens; ++step) {
    auto expected = cpu->forward(pass, position);
    ASSERT_TRUE(expected.ok()) << expected.status().message();
    auto actual = gpu->forward(pass, position);
    ASSERT_TRUE(actual.ok()) << "step " << step << ": " << actual.status().message();
    const double error = testing::relative_error(actual.value(), expected.value());
    EXPECT_LT(error, param.tolerance()) << "step " << step;
    RecordProperty("relative_error_step_" + std::to_string(step), testing::scientific(error));
    const auto [on_device, linears] = linears_on_device(gpu.value());
    EXPECT_GT(linears, 0u) << "step " << step;
    if (param.linears_on_device) {
      EXPECT_EQ(on_device, linears) << "step " << step;
      // A decoded token is then one batch, from its embedding to its logits.
      if (step > 0) {
        EXPECT_EQ(ops_off_device(gpu.value()), std::vector<std::string>{}) << "step " << step;
      }
    }

    // Both decode the CPU's choice, so that a near tie cannot send them apart.
    const auto [next, margin] = best_of_last_row(expected.value());
    if (margin > 2.0 * param.tolerance() * largest_magnitude(expected.value())) {
      EXPECT_EQ(best_of_last_row(actual.value()).first, next) << "step " << step;
    }
    position += static_cast<int64_t>(pass.size());
    tokens.push_back(next);
    pass = std::span<const int32_t>(&tokens.back(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(All, VulkanModelFamilies, ::testing::ValuesIn(offload_cases()),
                         [](const ::testing::TestParamInfo<OffloadCase>& info) { return info.param.name; });

}  // namespace
}  // namespace ember
