// Every model family's forward pass against the plain reference (reference_transformer.h)
// on small random Hugging Face models, from the folder, from GGUF and with f16 weights;
// then batches: a prompt against token-by-token decoding, several sequences in one batch
// against separate runs, copied sequences, a q8_0 KV cache, and bad batches and options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "ember/model.h"
#include "ember/quantize.h"
#include "core/logit_compare.h"
#include "model_builder.h"
#include "model_families.h"
#include "npy.h"
#include "reference_transformer.h"

namespace ember {
namespace {

using testing::FamilyCase;
using testing::HfModelSpec;
using testing::family;
using testing::family_cases;
using testing::make_spec;
using testing::relative_error;
using testing::relative_l2_error;
using testing::scientific;
using testing::ReferenceLogits;
using testing::ScratchDir;
using testing::SeededRng;

// An f32 KV cache: comparisons need no rounding of keys and values.
const ModelOptions kExact{.kv_cache_type = DType::f32};

double relative_error(const Tensor& got, const ReferenceLogits& expected) {
  if (got.shape() != Shape{expected.rows, expected.vocab}) return INFINITY;
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < got.elements(); ++i) {
    const double want = expected.values[static_cast<size_t>(i)];
    worst = std::max(worst, std::fabs(got.get_flat(i) - want));
    scale = std::max(scale, std::fabs(want));
  }
  return worst / scale;
}

Tensor rows(const Tensor& logits, int64_t start, int64_t count) {
  auto view = logits.slice(0, start, count);
  EXPECT_TRUE(view.ok()) << view.status().message();
  return view.ok() ? view.value() : Tensor();
}

std::vector<int32_t> random_tokens(SeededRng& rng, int64_t vocab, size_t count) {
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = static_cast<int32_t>(rng.integer(0, vocab - 1));
  return tokens;
}

Tensor forward_ok(Model& model, std::span<const int32_t> tokens, int64_t position) {
  auto logits = model.forward(tokens, position);
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  return logits.ok() ? logits.value() : Tensor();
}

Tensor forward_ok(Model& model, std::span<const SequenceTokens> batch) {
  auto logits = model.forward(batch);
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  return logits.ok() ? logits.value() : Tensor();
}

ReferenceLogits reference_ok(const std::filesystem::path& folder, std::span<const int32_t> tokens) {
  auto logits = testing::reference_forward(folder, tokens);
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  return logits.ok() ? logits.value() : ReferenceLogits();
}

// The reference is checked itself before it checks anything: on the demo model it must
// give what Hugging Face transformers computed (tests/data, f32 logits of f16 weights).
TEST(ModelFamilyReference, MatchesHuggingFaceOnTheDemoModel) {
  const auto demo = std::filesystem::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";
  const std::vector<std::vector<int32_t>> prompts = {
      {318, 3131, 291, 687, 301}, {34, 989}, {50, 27, 2905, 779, 265, 483, 3632}};
  for (size_t p = 0; p < prompts.size(); ++p) {
    auto expected = testing::read_npy(demo / ("logits_" + std::to_string(p) + ".npy"));
    ASSERT_TRUE(expected.ok()) << expected.status().message();
    const ReferenceLogits reference = reference_ok(demo, prompts[p]);
    ASSERT_EQ(expected->shape(), (Shape{reference.rows, reference.vocab}));
    double worst = 0.0, scale = 0.0;
    for (int64_t i = 0; i < expected->elements(); ++i) {
      worst = std::max(worst, std::fabs(reference.values[static_cast<size_t>(i)] - expected->get_flat(i)));
      scale = std::max(scale, std::fabs(static_cast<double>(expected->get_flat(i))));
    }
    EXPECT_LE(worst / scale, 1e-4) << "prompt " << p;
    RecordProperty("relative_error_prompt_" + std::to_string(p), scientific(worst / scale));
  }
}

class ModelFamilies : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(ModelFamilies, HfFolderMatchesTheReference) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec& spec = GetParam().spec;
  const auto hf = testing::write_random_hf_model(scratch / GetParam().name, spec, rng);
  const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 7);
  auto model = Model::load(hf.folder, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const double error = relative_error(forward_ok(model.value(), prompt, 0), reference_ok(hf.folder, prompt));
  EXPECT_LE(error, 1e-4);
  RecordProperty("relative_error", scientific(error));
}

TEST_P(ModelFamilies, GgufConversionMatchesTheFolder) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec& spec = GetParam().spec;
  const auto hf = testing::write_random_hf_model(scratch / GetParam().name, spec, rng);
  const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 7);
  QuantizeOptions options;
  options.input = hf.folder;
  options.output = scratch / "model.gguf";
  options.target = QuantizeTarget::f32;
  auto report = quantize_model(options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  auto from_gguf = Model::load(options.output, kExact);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  auto from_folder = Model::load(hf.folder, kExact);
  ASSERT_TRUE(from_folder.ok()) << from_folder.status().message();
  const Tensor got = forward_ok(from_gguf.value(), prompt, 0);
  // Both hold the same f32 weights; only the layout (llama's permuted q/k rows, GPT-2's
  // transposed Conv1D matrices) differs.
  const double error = relative_error(got, forward_ok(from_folder.value(), prompt, 0));
  EXPECT_LE(error, 1e-5);
  EXPECT_LE(relative_error(got, reference_ok(hf.folder, prompt)), 1e-4);
  RecordProperty("relative_error", scientific(error));
}

TEST_P(ModelFamilies, F16WeightsMatchTheReferenceOnTheSameWeights) {
  SeededRng rng;
  ScratchDir scratch;
  HfModelSpec spec = GetParam().spec;
  spec.dtype = DType::f16;
  const auto hf = testing::write_random_hf_model(scratch / GetParam().name, spec, rng);
  const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 7);
  auto model = Model::load(hf.folder, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  // The reference reads the f16 values too, so only f32 arithmetic separates them.
  const double error = relative_error(forward_ok(model.value(), prompt, 0), reference_ok(hf.folder, prompt));
  EXPECT_LE(error, 1e-4);
  RecordProperty("relative_error", scientific(error));
}

INSTANTIATE_TEST_SUITE_P(All, ModelFamilies, ::testing::ValuesIn(family_cases()),
                         [](const ::testing::TestParamInfo<FamilyCase>& info) { return info.param.name; });

TEST(ModelFamilyBatches, PromptEqualsTokenByTokenDecoding) {
  for (const HfModelSpec& spec : {family("gpt2"), family("qwen2")}) {
    SCOPED_TRACE(std::string(architecture_name(spec.architecture)));
    SeededRng rng;
    ScratchDir scratch;
    const auto hf = testing::write_random_hf_model(scratch / "model", spec, rng);
    const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 9);
    auto model = Model::load(hf.folder, kExact);
    ASSERT_TRUE(model.ok()) << model.status().message();
    const Tensor batched = forward_ok(model.value(), prompt, 0);
    // Rewinds to position 0, then one token a call, each attending over the cache.
    for (int64_t t = 0; t < static_cast<int64_t>(prompt.size()); ++t) {
      const Tensor row = forward_ok(model.value(), std::span(prompt).subspan(static_cast<size_t>(t), 1), t);
      const double error = relative_error(row, rows(batched, t, 1));
      EXPECT_LE(error, 1e-5) << "token " << t;
      RecordProperty("relative_error_token_" + std::to_string(t), scientific(error));
    }
  }
}

// Three prompts of different lengths run as one batch, then one decode step for all,
// against each sequence run alone in a model of one sequence.
TEST(ModelFamilyBatches, SeveralSequencesEqualSeparateRuns) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec spec = family("qwen2");  // biases and grouped-query heads
  const auto hf = testing::write_random_hf_model(scratch / "model", spec, rng);
  auto batched = Model::load(hf.folder, {.kv_cache_type = DType::f32, .sequences = 3});
  ASSERT_TRUE(batched.ok()) << batched.status().message();
  auto single = Model::load(hf.folder, kExact);
  ASSERT_TRUE(single.ok()) << single.status().message();
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(rng, spec.vocab_size, 4),
                                                     random_tokens(rng, spec.vocab_size, 2),
                                                     random_tokens(rng, spec.vocab_size, 5)};
  const std::vector<int32_t> next = random_tokens(rng, spec.vocab_size, 3);
  const std::vector<SequenceTokens> prompt_batch = {{0, 0, prompts[0]}, {1, 0, prompts[1]}, {2, 0, prompts[2]}};

  const Tensor all = forward_ok(batched.value(), prompt_batch);
  ASSERT_EQ(all.shape(), (Shape{11, spec.vocab_size}));
  for (int s = 0, start = 0; s < 3; start += static_cast<int>(prompts[s].size()), ++s) {
    const double error = relative_error(rows(all, start, static_cast<int64_t>(prompts[s].size())),
                                        forward_ok(single.value(), prompts[s], 0));
    EXPECT_LE(error, 1e-5) << "sequence " << s;
    RecordProperty("relative_error_prompt_" + std::to_string(s), scientific(error));
  }

  // Only the last rows, in batch order; the batch rewinds each sequence to 0 again.
  std::vector<SequenceTokens> last_only = prompt_batch;
  for (SequenceTokens& part : last_only) part.all_logits = false;
  const Tensor last = forward_ok(batched.value(), last_only);
  ASSERT_EQ(last.shape(), (Shape{3, spec.vocab_size}));
  const int64_t last_rows[] = {3, 5, 10};
  for (int64_t s = 0; s < 3; ++s) EXPECT_LE(relative_error(rows(last, s, 1), rows(all, last_rows[s], 1)), 1e-5);
  // Mixed: the middle part asks for its last row only.
  last_only = prompt_batch;
  last_only[1].all_logits = false;
  const Tensor mixed = forward_ok(batched.value(), last_only);
  ASSERT_EQ(mixed.shape(), (Shape{10, spec.vocab_size}));
  EXPECT_LE(relative_error(rows(mixed, 0, 4), rows(all, 0, 4)), 1e-5);
  EXPECT_LE(relative_error(rows(mixed, 4, 1), rows(all, 5, 1)), 1e-5);
  EXPECT_LE(relative_error(rows(mixed, 5, 5), rows(all, 6, 5)), 1e-5);

  const std::vector<SequenceTokens> decode_batch = {{0, 4, std::span(next).subspan(0, 1)},
                                                    {1, 2, std::span(next).subspan(1, 1)},
                                                    {2, 5, std::span(next).subspan(2, 1)}};
  const Tensor decoded = forward_ok(batched.value(), decode_batch);
  ASSERT_EQ(decoded.shape(), (Shape{3, spec.vocab_size}));
  for (int s = 0; s < 3; ++s) {
    forward_ok(single.value(), prompts[s], 0);
    const auto position = static_cast<int64_t>(prompts[s].size());
    const Tensor alone = forward_ok(single.value(), decode_batch[s].tokens, position);
    const double error = relative_error(rows(decoded, s, 1), alone);
    EXPECT_LE(error, 1e-5) << "sequence " << s;
    EXPECT_EQ(batched->cached_tokens(s), position + 1);
    RecordProperty("relative_error_decode_" + std::to_string(s), scientific(error));
  }
}

// A prompt evaluated once in sequence 0 and continued from copies of its cache, whole
// (sequence 2) and a prefix of it (sequence 1), decodes exactly as sequence 0 does.
TEST(ModelFamilyBatches, CopiedSequenceDecodesAsItsSource) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec spec = family("llama_gqa");
  const auto hf = testing::write_random_hf_model(scratch / "model", spec, rng);
  auto model = Model::load(hf.folder, {.kv_cache_type = DType::f32, .sequences = 3});
  ASSERT_TRUE(model.ok()) << model.status().message();
  const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 5);
  const std::vector<int32_t> next = random_tokens(rng, spec.vocab_size, 1);
  forward_ok(model.value(), prompt, 0);
  ASSERT_TRUE(model->copy_sequence(0, 2, 5).ok());
  ASSERT_TRUE(model->copy_sequence(0, 1, 3).ok());
  EXPECT_EQ(model->cached_tokens(2), 5);
  EXPECT_EQ(model->cached_tokens(1), 3);
  const std::vector<int32_t> rest = {prompt[3], prompt[4], next[0]};
  const std::vector<SequenceTokens> batch = {{0, 5, next}, {1, 3, rest, false}, {2, 5, next}};
  const Tensor logits = forward_ok(model.value(), batch);
  ASSERT_EQ(logits.shape(), (Shape{3, spec.vocab_size}));
  EXPECT_LE(relative_error(rows(logits, 1, 1), rows(logits, 0, 1)), 1e-5);
  EXPECT_LE(relative_error(rows(logits, 2, 1), rows(logits, 0, 1)), 1e-5);

  EXPECT_FALSE(model->copy_sequence(0, 3, 1).ok());
  EXPECT_FALSE(model->copy_sequence(-1, 1, 1).ok());
  EXPECT_FALSE(model->copy_sequence(1, 2, 7).ok());  // sequence 1 holds 6
}

TEST(ModelFamilyBatches, RejectsBadBatches) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec spec = family("llama_gqa");
  const auto hf = testing::write_random_hf_model(scratch / "model", spec, rng);
  auto model = Model::load(hf.folder, {.kv_cache_type = DType::f32, .sequences = 3});
  ASSERT_TRUE(model.ok()) << model.status().message();
  const std::vector<int32_t> tokens = random_tokens(rng, spec.vocab_size, 2);
  const std::vector<SequenceTokens> prompts = {{0, 0, tokens}, {1, 0, tokens}};
  forward_ok(model.value(), prompts);

  const auto expect_rejected = [&](const std::vector<SequenceTokens>& batch, const std::string& words) {
    auto logits = model->forward(batch);
    ASSERT_FALSE(logits.ok());
    EXPECT_EQ(logits.status().code(), ErrorCode::invalid_argument);
    EXPECT_NE(logits.status().message().find(words), std::string::npos) << logits.status().message();
    // A rejected batch leaves every cache as it was.
    EXPECT_EQ(model->cached_tokens(0), 2);
    EXPECT_EQ(model->cached_tokens(1), 2);
    EXPECT_EQ(model->cached_tokens(2), 0);
  };
  expect_rejected({{0, 2, tokens}, {1, 2, tokens}, {0, 2, tokens}}, "sequence 0 appears twice");
  expect_rejected({{0, 2, tokens}, {3, 0, tokens}}, "sequence 3 does not exist");
  expect_rejected({{-1, 0, tokens}}, "sequence -1");
  expect_rejected({{1, 3, tokens}}, "start at 2 at most");  // one past the cached positions
  expect_rejected({{0, 2, tokens}, {2, 1, tokens}}, "start at 0 at most");
  expect_rejected({{0, 2, {}}}, "no tokens");
}

TEST(ModelFamilyOptions, RejectsGpt2ContextPastItsLearnedPositions) {
  SeededRng rng;
  ScratchDir scratch;
  const HfModelSpec spec = family("gpt2");  // 16 positions
  const auto hf = testing::write_random_hf_model(scratch / "gpt2", spec, rng);
  auto model = Model::load(hf.folder, {.kv_cache_type = DType::f32, .context_length = 17});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), ErrorCode::invalid_argument);
  EXPECT_NE(model.status().message().find("context length 17"), std::string::npos) << model.status().message();
  EXPECT_NE(model.status().message().find("16"), std::string::npos) << model.status().message();
  auto fits = Model::load(hf.folder, {.kv_cache_type = DType::f32, .context_length = 16});
  ASSERT_TRUE(fits.ok()) << fits.status().message();
  EXPECT_EQ(fits->context_length(), 16);
}

// Keys and values rounded to 8 bits a block of 32. Random weights make attention scores
// large and the softmax peaked, which amplifies the rounding, with a long tail: over 150
// seeds (2026-12-04) llama's worst error had a median of 3.7%, a 99th percentile of 17.7%
// and a maximum of 26.8% (seed 6424990024774979367, which failed CI at the old bound of
// 0.2), gpt2's a maximum of 6.6%. The kernel's exactness over the quantized cache is
// tested in cpu/test_attention; this checks the model wires a q8_0 cache through, and a
// wrong layout gives errors near 100%, so the bound is 0.5.
TEST(ModelFamilyKvCache, Q8CacheStaysCloseToF32) {
  HfModelSpec gpt2 = make_spec(Architecture::gpt2, 50, 128, 2, 2, 96);  // head_dim 64
  gpt2.context_length = 32;
  gpt2.tie_word_embeddings = true;
  const HfModelSpec specs[] = {make_spec(Architecture::llama, 50, 64, 2, 1, 72), gpt2};  // llama: head_dim 32
  for (const HfModelSpec& spec : specs) {
    SCOPED_TRACE(std::string(architecture_name(spec.architecture)));
    SeededRng rng;
    ScratchDir scratch;
    const auto hf = testing::write_random_hf_model(scratch / "model", spec, rng);
    auto exact = Model::load(hf.folder, kExact);
    ASSERT_TRUE(exact.ok()) << exact.status().message();
    auto q8 = Model::load(hf.folder, {.kv_cache_type = DType::q8_0});
    ASSERT_TRUE(q8.ok()) << q8.status().message();
    const std::vector<int32_t> prompt = random_tokens(rng, spec.vocab_size, 10);
    const std::vector<int32_t> next = random_tokens(rng, spec.vocab_size, 3);
    double worst = relative_l2_error(forward_ok(q8.value(), prompt, 0), forward_ok(exact.value(), prompt, 0));
    for (size_t i = 0; i < next.size(); ++i) {
      const auto position = static_cast<int64_t>(prompt.size() + i);
      const std::span token(&next[i], 1);
      worst = std::max(worst, relative_l2_error(forward_ok(q8.value(), token, position),
                                                forward_ok(exact.value(), token, position)));
    }
    EXPECT_LE(worst, 0.5);
    RecordProperty(std::string("relative_l2_error_") + std::string(architecture_name(spec.architecture)),
                   scientific(worst));
  }
}

}  // namespace
}  // namespace ember
