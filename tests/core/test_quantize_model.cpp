// quantize_model end to end: a Hugging Face folder becomes one GGUF that ember reads back
// with the same config, the tokenizer keys, and every tensor within its type's error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cpu/quantize.h"
#include "ember/gguf.h"
#include "ember/hf_to_gguf.h"
#include "ember/model_config.h"
#include "ember/quantize.h"
#include "model_builder.h"

namespace ember {
namespace {

using testing::HfModelSpec;
using testing::ScratchDir;
using testing::SeededRng;

std::vector<float> widen(const Tensor& tensor) {
  const int64_t row_length = tensor.dim(tensor.rank() - 1);
  std::vector<float> values(static_cast<size_t>(tensor.elements()));
  cpu::dequantize_rows(tensor.dtype(), tensor.read<std::byte>().value(), tensor.elements() / row_length, row_length,
                       values.data());
  return values;
}

double relative_rms(const std::vector<float>& actual, const std::vector<float>& expected) {
  double error = 0, scale = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    error += (actual[i] - expected[i]) * double(actual[i] - expected[i]);
    scale += expected[i] * double(expected[i]);
  }
  return std::sqrt(error / std::max(scale, 1e-30));
}

// Relative RMS bounds per output type on uniform random weights: a few times the
// rounding step of each format (f16: 2^-11, q8_0: 1/254 of the block max, 4-bit: 1/16).
double bound_for(DType type) {
  switch (type) {
    case DType::f32: return 0.0;
    case DType::f16: return 1e-3;
    case DType::bf16: return 8e-3;
    case DType::q8_0: return 1e-2;
    case DType::q6_k: return 4e-2;
    default: return 0.15;
  }
}

class QuantizeModelTest : public ::testing::TestWithParam<QuantizeTarget> {};

TEST_P(QuantizeModelTest, HfFolderToGgufReadsBack) {
  SeededRng rng;
  ScratchDir scratch;
  HfModelSpec spec;
  spec.hidden_size = 256;  // whole K-quant super-blocks
  spec.ffn_size = 512;
  spec.head_count = 4;
  spec.kv_head_count = 2;
  spec.vocab_size = 96;
  spec.layer_count = 3;
  spec.dtype = DType::f16;
  const auto model = testing::write_random_hf_model(scratch / "hf", spec, rng);

  QuantizeOptions options;
  options.input = model.folder;
  options.output = scratch / "out.gguf";
  options.target = GetParam();
  auto report = quantize_model(options);
  ASSERT_TRUE(report.ok()) << report.status().message();

  auto file = GgufFile::open(options.output);
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto config = model_config_from_gguf(file.value());
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto expected = read_model_config(model.folder / "config.json");
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(config->layer_count, expected->layer_count);
  EXPECT_EQ(config->kv_head_count, expected->kv_head_count);
  EXPECT_EQ(config->hidden_size, expected->hidden_size);
  EXPECT_EQ(file->get_string("tokenizer.ggml.model").value(), "gpt2");
  ASSERT_NE(file->find("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(file->get_int("general.quantization_version").value(), 2);

  // Every HF tensor is in the output under its GGUF name, in its planned type.
  std::vector<std::string> names;
  for (const auto& named : model.tensors) names.push_back(named.name);
  auto mappings = map_hf_tensors(expected.value(), names);
  ASSERT_TRUE(mappings.ok());
  ASSERT_EQ(file->tensors().size(), mappings->size());
  for (const TensorMapping& mapping : mappings.value()) {
    SCOPED_TRACE(mapping.gguf_name);
    auto original = materialize(model.tensor(mapping.hf_name), mapping);
    ASSERT_TRUE(original.ok());
    auto written = file->tensor(mapping.gguf_name);
    ASSERT_TRUE(written.ok()) << written.status().message();
    EXPECT_EQ(written->shape(), original->shape());
    const TensorPlan plan = plan_tensor_type(mapping.gguf_name, original->shape(), original->dtype(), GetParam(), false,
                                             false, spec.layer_count);
    EXPECT_EQ(written->dtype(), plan.to);
    EXPECT_LE(relative_rms(widen(written.value()), widen(original.value())), bound_for(plan.to));
  }
  EXPECT_GT(report->by_type.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(EveryTarget, QuantizeModelTest,
                         ::testing::Values(QuantizeTarget::f32, QuantizeTarget::f16, QuantizeTarget::bf16,
                                           QuantizeTarget::q8_0, QuantizeTarget::q4_0, QuantizeTarget::q4_1,
                                           QuantizeTarget::q4_k_m, QuantizeTarget::q6_k),
                         [](const auto& info) { return std::string(quantize_target_name(info.param)); });

TEST(QuantizeModel, RefusesToOverwriteItsInput) {
  SeededRng rng;
  ScratchDir scratch;
  testing::HfModelSpec spec;
  const auto model = testing::write_random_hf_model(scratch / "hf", spec, rng);
  QuantizeOptions to_gguf;
  to_gguf.input = model.folder;
  to_gguf.output = scratch / "m.gguf";
  ASSERT_TRUE(quantize_model(to_gguf).ok());
  QuantizeOptions onto_itself;
  onto_itself.input = to_gguf.output;
  onto_itself.output = to_gguf.output;
  auto result = quantize_model(onto_itself);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("overwrite the input"), std::string::npos);
}

TEST(QuantizeModel, CancelLeavesNoFile) {
  SeededRng rng;
  ScratchDir scratch;
  const auto model = testing::write_random_hf_model(scratch / "hf", testing::HfModelSpec{}, rng);
  QuantizeOptions options;
  options.input = model.folder;
  options.output = scratch / "cancelled.gguf";
  std::atomic<bool> cancel{true};
  auto result = quantize_model(options, {}, &cancel);
  ASSERT_FALSE(result.ok());
  for (const auto& entry : std::filesystem::directory_iterator(scratch.path()))
    EXPECT_EQ(entry.path().filename(), "hf") << "left behind: " << entry.path();
}

TEST(QuantizeModel, NonFiniteWeightsAreAnErrorNamingTheTensor) {
  ScratchDir scratch;
  Tensor broken = Tensor::empty({4, 32}, DType::f32).value();
  ASSERT_TRUE(broken.fill(0.5f).ok());
  broken.set({2, 7}, std::numeric_limits<float>::infinity());
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("llama"));
  writer.set("llama.block_count", GgufValue::u32(1));
  ASSERT_TRUE(writer.add_tensor("blk.0.attn_q.weight", broken).ok());
  ASSERT_TRUE(writer.write(scratch / "broken.gguf").ok());

  QuantizeOptions options;
  options.input = scratch / "broken.gguf";
  options.output = scratch / "out.gguf";
  auto result = quantize_model(options);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("blk.0.attn_q.weight"), std::string::npos) << result.status().message();
  EXPECT_NE(result.status().message().find("element 71 is inf"), std::string::npos) << result.status().message();
  EXPECT_FALSE(std::filesystem::exists(options.output));
}

}  // namespace
}  // namespace ember
