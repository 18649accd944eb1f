// The session API on the demo model: tokenize → eval → sample reproduces the reference
// greedy continuation; rewind and fork; perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "ember/perplexity.h"
#include "ember/quantize.h"
#include "core/logit_compare.h"
#include "model_builder.h"
#include "ember/session.h"

namespace ember {
namespace {

const std::filesystem::path kDemo = std::filesystem::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";

// ref.json's first prompt and its greedy continuation (Hugging Face transformers).
const std::vector<int32_t> kPrompt = {318, 3131, 291, 687, 301};
const std::vector<int32_t> kGreedy = {260, 200, 77, 553, 304, 260, 277, 1076};

Session load_demo(int sequences = 1) {
  auto session = Session::load(kDemo, {.kv_cache_type = DType::f32, .sequences = sequences});
  EXPECT_TRUE(session.ok()) << session.status().message();
  return std::move(session.value());
}

std::vector<int32_t> greedy(Session& session, size_t count, int sequence = 0) {
  auto sampler = Sampler::create({.temperature = 0.0f});
  EXPECT_TRUE(sampler.ok());
  std::vector<int32_t> out;
  for (size_t i = 0; i < count; ++i) {
    auto next = session.sample(sampler.value(), sequence);
    EXPECT_TRUE(next.ok()) << next.status().message();
    out.push_back(next.value());
    EXPECT_TRUE(session.eval(std::span(&out.back(), 1), sequence).ok());
  }
  return out;
}

TEST(SessionTest, GreedyDecodingMatchesTheReference) {
  Session session = load_demo();
  auto text = session.detokenize(kPrompt);
  ASSERT_TRUE(text.ok());
  // The reference prompt was fed without BOS: tokenizing its text without specials gives it back.
  auto ids = session.tokenize(text.value(), false);
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  EXPECT_EQ(ids.value(), kPrompt);
  ASSERT_TRUE(session.eval(ids.value()).ok());
  EXPECT_EQ(greedy(session, kGreedy.size()), kGreedy);
  EXPECT_EQ(session.position(), static_cast<int64_t>(kPrompt.size() + kGreedy.size()));
}

TEST(SessionTest, RewindAndForkContinueFromTheRightPlace) {
  Session session = load_demo(2);
  ASSERT_TRUE(session.eval(kPrompt).ok());
  ASSERT_TRUE(session.fork(0, 1).ok());
  EXPECT_EQ(greedy(session, 3, 1), std::vector<int32_t>(kGreedy.begin(), kGreedy.begin() + 3));
  // Sequence 0 is untouched by decoding sequence 1.
  EXPECT_EQ(greedy(session, 3, 0), std::vector<int32_t>(kGreedy.begin(), kGreedy.begin() + 3));
  ASSERT_TRUE(session.rewind(static_cast<int64_t>(kPrompt.size()) - 1).ok());
  EXPECT_TRUE(session.logits().empty());
  ASSERT_TRUE(session.eval(std::span(&kPrompt.back(), 1)).ok());
  EXPECT_EQ(greedy(session, kGreedy.size()), kGreedy);
  EXPECT_FALSE(session.rewind(1000).ok());
  EXPECT_FALSE(session.eval(kPrompt, 2).ok());
  auto sampler = Sampler::create({});
  session.reset(1);
  EXPECT_FALSE(session.sample(sampler.value(), 1).ok());  // no logits after a reset
}

TEST(SessionTest, PerplexityOfFortuneTextIsNearTheTrainingLoss) {
  Session session = load_demo();
  auto ids = session.tokenize(
      "You will be surrounded by luxury. Your lucky number has been disconnected. A day for firm decisions! "
      "Or is it? Don't look now, but the man in the moon is laughing at you. Q: How many Bell Labs Vice "
      "Presidents does it take to change a light bulb? A: That's proprietary information.",
      false);
  ASSERT_TRUE(ids.ok());
  auto result = perplexity(session, ids.value(), 32);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_GT(result->scored_tokens, 0);
  // TRAINING.json: validation loss 4.20 nats/token, perplexity e^4.2 ≈ 67; a uniform guess is 4096.
  EXPECT_GT(result->perplexity, 5.0);
  EXPECT_LT(result->perplexity, 400.0);
  EXPECT_GT(result->standard_error, 0.0);
  EXPECT_EQ(session.position(), 0);
  EXPECT_FALSE(perplexity(session, ids.value(), 1).ok());
  EXPECT_FALSE(perplexity(session, ids.value(), 100000).ok());
  EXPECT_FALSE(perplexity(session, std::span(ids->data(), 1), 32).ok());
}

constexpr std::string_view kHeldOutText =
    "The man who does not read good books has no advantage over the man who cannot read them. Beware of "
    "all enterprises that require new clothes. A fool and his money are soon parted, but the fool keeps "
    "the receipt. If you think nobody cares if you're alive, try missing a couple of car payments. "
    "Experience is what you get when you didn't get what you wanted.";

// The demo model converted to `target` through quantize-model's library call.
Session converted_demo(const testing::ScratchDir& scratch, QuantizeTarget target) {
  QuantizeOptions options;
  options.input = kDemo;
  options.output = scratch / (std::string(quantize_target_name(target)) + ".gguf");
  options.target = target;
  auto report = quantize_model(options);
  EXPECT_TRUE(report.ok()) << report.status().message();
  auto session = Session::load(options.output, {.kv_cache_type = DType::f32});
  EXPECT_TRUE(session.ok()) << session.status().message();
  return std::move(session.value());
}

TEST(QuantizedDemoTest, Q8LogitsWithinTwoPercentOfF32) {
  testing::ScratchDir scratch;
  Session exact = load_demo();
  Session q8 = converted_demo(scratch, QuantizeTarget::q8_0);
  auto ids = exact.tokenize(kHeldOutText, true);
  ASSERT_TRUE(ids.ok());
  auto expected = exact.eval_all_logits(ids.value());
  auto got = q8.eval_all_logits(ids.value());
  ASSERT_TRUE(expected.ok() && got.ok());
  const double error = testing::relative_l2_error(got.value(), expected.value());
  EXPECT_LE(error, 0.02);
  RecordProperty("relative_l2_q8_0", std::to_string(error));
}

// 4-bit weights cost some perplexity; llama.cpp reports a few percent for q4_0 on real
// models. The bound: within 10% of f16's on held-out text (the demo is tiny, which
// makes it more sensitive than large models). Measured: f16 87.6, q4_0 92.1 (+5.1%),
// q4_k_m 86.1 (-1.8%).
TEST(QuantizedDemoTest, FourBitPerplexityStaysNearF16) {
  testing::ScratchDir scratch;
  const auto perplexity_of = [&](QuantizeTarget target) {
    Session session = converted_demo(scratch, target);
    auto ids = session.tokenize(kHeldOutText, false);
    EXPECT_TRUE(ids.ok());
    auto result = perplexity(session, ids.value(), 64);
    EXPECT_TRUE(result.ok()) << result.status().message();
    return result.ok() ? result->perplexity : INFINITY;
  };
  const double f16 = perplexity_of(QuantizeTarget::f16);
  for (QuantizeTarget target : {QuantizeTarget::q4_0, QuantizeTarget::q4_k_m}) {
    const double quantized = perplexity_of(target);
    EXPECT_LE(quantized, f16 * 1.10) << quantize_target_name(target) << " vs f16 " << f16;
    EXPECT_GE(quantized, f16 * 0.90) << quantize_target_name(target) << " vs f16 " << f16;
    RecordProperty(std::string("perplexity_") + std::string(quantize_target_name(target)), std::to_string(quantized));
  }
  RecordProperty("perplexity_f16", std::to_string(f16));
}

TEST(SessionTest, LoadErrorsNameThePath) {
  auto session = Session::load(kDemo / "missing");
  ASSERT_FALSE(session.ok());
  EXPECT_NE(session.status().message().find("missing"), std::string::npos) << session.status().message();
}

}  // namespace
}  // namespace ember
