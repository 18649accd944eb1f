#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ember/sampling.h"
#include "test_util.h"

namespace ember {
namespace {

// Everything off but temperature, so a test turns on only the stage it is about.
SamplingParams plain(float temperature, uint64_t seed = 1) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.repeat_penalty = 1.0f;
  params.seed = seed;
  return params;
}

Sampler make_sampler(const SamplingParams& params) {
  auto sampler = Sampler::create(params);
  EXPECT_TRUE(sampler.ok()) << sampler.status().message();
  return std::move(sampler).value();
}

int32_t sample_ok(Sampler& sampler, const std::vector<float>& logits, const std::vector<int32_t>& history = {}) {
  auto token = sampler.sample(logits, history);
  EXPECT_TRUE(token.ok()) << token.status().message();
  return token.ok() ? *token : -1;
}

std::vector<int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t token = sample_ok(sampler, logits);
    if (token < 0) break;
    ++counts[static_cast<size_t>(token)];
  }
  return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) probs[i] = std::exp((logits[i] - max) / temperature);
  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  for (double& p : probs) p /= total;
  return probs;
}

double chi_square(const std::vector<int>& counts, const std::vector<double>& probs) {
  const double draws = std::accumulate(counts.begin(), counts.end(), 0.0);
  double statistic = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = draws * probs[i];
    statistic += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return statistic;
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

TEST(Sampling, GreedyPicksArgmax) {
  testing::SeededRng rng;
  const std::vector<float> logits = rng.normal(32000, 3.0f);
  for (const float temperature : {0.0f, -1.0f}) {
    Sampler sampler = make_sampler(plain(temperature));
    EXPECT_EQ(sample_ok(sampler, logits), argmax(logits));
  }
}

TEST(Sampling, GreedyTiesGoToLowestId) {
  Sampler sampler = make_sampler(plain(0.0f));
  EXPECT_EQ(sample_ok(sampler, {1.0f, 3.0f, 0.5f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(sample_ok(sampler, {-2.0f, -5.0f, -2.0f}), 0);
}

TEST(Sampling, TopKOneIsGreedyAtAnyTemperature) {
  testing::SeededRng rng;
  std::vector<float> logits = rng.normal(1000, 0.1f);
  // A tie for first place, which top-k must break toward the lower id as greedy does.
  const int32_t best = argmax(logits);
  const int32_t rival = (best + 7) % static_cast<int32_t>(logits.size());
  logits[rival] = logits[best];
  const int32_t lower_of_tie = std::min(best, rival);
  for (const float temperature : {0.1f, 1.0f, 5.0f, 100.0f}) {
    SamplingParams params = plain(temperature, rng.engine()());
    params.top_k = 1;
    Sampler sampler = make_sampler(params);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(sample_ok(sampler, logits), lower_of_tie) << "temperature " << temperature;
  }
}

TEST(Sampling, SameSeedSameSequenceDifferentSeedDifferent) {
  testing::SeededRng rng;
  const std::vector<float> logits = rng.normal(5000);
  const auto draws = [&](uint64_t seed) {
    SamplingParams params;  // the defaults, so every stage takes part
    params.temperature = 1.0f;
    params.seed = seed;
    Sampler sampler = make_sampler(params);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) tokens.push_back(sample_ok(sampler, logits));
    return tokens;
  };
  const uint64_t seed = rng.engine()();
  const std::vector<int32_t> first = draws(seed);
  EXPECT_EQ(first, draws(seed));
  EXPECT_NE(first, draws(seed + 1));
  EXPECT_GT(std::set<int32_t>(first.begin(), first.end()).size(), 5u);
}

// The draw is specified down to the bit (53 high bits of one mt19937_64 output, scaled to
// [0, 1)) so that a seed gives the same text with every standard library.
TEST(Sampling, DrawUsesTopBitsOfOneEngineOutput) {
  constexpr uint64_t kSeed = 20240611;
  Sampler sampler = make_sampler(plain(1.0f, kSeed));
  std::mt19937_64 engine(kSeed);
  const std::vector<float> uniform_logits(1024, 0.0f);
  for (int i = 0; i < 100; ++i) {
    const double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;
    ASSERT_EQ(sample_ok(sampler, uniform_logits), static_cast<int32_t>(u * 1024)) << "draw " << i;
  }
}

// 5 degrees of freedom: chi-square above 37.5 has probability 1e-6 when the sampler is right.
constexpr double kChiSquareLimit5 = 37.5;

TEST(Sampling, FrequenciesMatchSoftmaxAtTemperatureOne) {
  testing::SeededRng rng;
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -1.5f};
  Sampler sampler = make_sampler(plain(1.0f, rng.engine()()));
  const std::vector<int> counts = histogram(sampler, logits, 20000);
  EXPECT_LT(chi_square(counts, softmax(logits, 1.0)), kChiSquareLimit5);
}

TEST(Sampling, FrequenciesMatchSharperSoftmaxAtTemperatureHalf) {
  testing::SeededRng rng;
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -1.5f};
  Sampler sampler = make_sampler(plain(0.5f, rng.engine()()));
  const std::vector<int> counts = histogram(sampler, logits, 20000);
  EXPECT_LT(chi_square(counts, softmax(logits, 0.5)), kChiSquareLimit5);
  // The check can tell the two temperatures apart.
  EXPECT_GT(chi_square(counts, softmax(logits, 1.0)), 100 * kChiSquareLimit5);
}

TEST(Sampling, TopPKeepsSmallestSetReachingP) {
  testing::SeededRng rng;
  // Ids out of rank order: by probability they go 3 (0.5), 1 (0.3), 0 (0.15), 2 (0.05).
  const std::vector<float> logits = log_probs({0.15, 0.3, 0.05, 0.5});
  for (const float temperature : {1.0f, 3.0f}) {  // top-p judges before temperature
    SamplingParams params = plain(temperature, rng.engine()());
    params.top_p = 0.75f;  // 0.5 falls short, 0.5 + 0.3 reaches it: token 0 is just outside
    Sampler sampler = make_sampler(params);
    const std::vector<int> counts = histogram(sampler, logits, 5000);
    EXPECT_EQ(counts[0], 0);
    EXPECT_EQ(counts[2], 0);
    EXPECT_GT(counts[1], 1000);
    EXPECT_GT(counts[3], 1000);
  }
  SamplingParams params = plain(1.0f, rng.engine()());
  params.top_p = 0.85f;  // now 0.5 + 0.3 falls short and token 0 is needed
  Sampler sampler = make_sampler(params);
  const std::vector<int> counts = histogram(sampler, logits, 5000);
  EXPECT_GT(counts[0], 400);
  EXPECT_EQ(counts[2], 0);
}

TEST(Sampling, TopPOverLargeVocabularyMatchesFullSort) {
  testing::SeededRng rng;
  const std::vector<float> logits = rng.normal(20000, 0.5f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::vector<double> probs = softmax(logits, 1.0);
  constexpr float kTopP = 0.6f;
  std::vector<int> rank_of(logits.size());
  size_t kept = 0;
  for (double mass = 0.0; mass < kTopP; ++kept) mass += probs[order[kept]];
  for (size_t rank = 0; rank < order.size(); ++rank) rank_of[order[rank]] = static_cast<int>(rank);

  SamplingParams params = plain(1.0f, rng.engine()());
  params.top_p = kTopP;
  Sampler sampler = make_sampler(params);
  int deepest_rank = 0;
  for (int i = 0; i < 300; ++i) {
    const int rank = rank_of[sample_ok(sampler, logits)];
    ASSERT_LT(rank, static_cast<int>(kept));
    deepest_rank = std::max(deepest_rank, rank);
  }
  // Ranking goes in chunks; the survivors must reach well past the first one.
  ASSERT_GT(kept, 500u);
  EXPECT_GT(deepest_rank, static_cast<int>(kept) / 2);
}

TEST(Sampling, TopKKeepsOnlyTheKBest) {
  testing::SeededRng rng;
  const std::vector<float> logits = rng.normal(32000, 0.01f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 3, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  SamplingParams params = plain(1.0f, rng.engine()());
  params.top_k = 3;
  Sampler sampler = make_sampler(params);
  const std::vector<int> counts = histogram(sampler, logits, 1500);
  for (int k = 0; k < 3; ++k) EXPECT_GT(counts[order[k]], 350);
  EXPECT_EQ(counts[order[0]] + counts[order[1]] + counts[order[2]], 1500);
}

TEST(Sampling, MinPDropsTokensBelowFractionOfBest) {
  testing::SeededRng rng;
  // With min_p 0.1 the bar is 0.05: token 3 (0.04) falls under it, token 2 (0.06) clears it.
  const std::vector<float> logits = log_probs({0.5, 0.2, 0.06, 0.04, 0.2});
  for (const float temperature : {1.0f, 4.0f}) {
    SamplingParams params = plain(temperature, rng.engine()());
    params.min_p = 0.1f;
    Sampler sampler = make_sampler(params);
    const std::vector<int> counts = histogram(sampler, logits, 10000);
    EXPECT_EQ(counts[3], 0);
    EXPECT_GT(counts[2], 300);
  }
}

TEST(Sampling, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams params = plain(0.0f);
  params.repeat_penalty = 1.5f;
  Sampler sampler = make_sampler(params);
  // 2.0 / 1.5 = 1.33 falls below 1.8.
  EXPECT_EQ(sample_ok(sampler, {2.0f, 1.8f}, {}), 0);
  EXPECT_EQ(sample_ok(sampler, {2.0f, 1.8f}, {0}), 1);
  // -1.0 * 1.5 = -1.5 falls below -1.2; dividing would have raised it instead.
  EXPECT_EQ(sample_ok(sampler, {-1.0f, -1.2f}, {}), 0);
  EXPECT_EQ(sample_ok(sampler, {-1.0f, -1.2f}, {0}), 1);
  // Once per distinct token: 2.0 / 1.5 stays above 1.2, 2.0 / 1.5^3 would not.
  EXPECT_EQ(sample_ok(sampler, {2.0f, 1.2f}, {0, 0, 0}), 0);
}

TEST(Sampling, RepeatPenaltyLooksOnlyAtLastN) {
  const std::vector<float> logits = {2.0f, 1.8f, 0.0f};
  const std::vector<int32_t> history = {0, 2, 2, 2};
  const auto pick = [&](int32_t last_n, float penalty) {
    SamplingParams params = plain(0.0f);
    params.repeat_penalty = penalty;
    params.repeat_last_n = last_n;
    Sampler sampler = make_sampler(params);
    return sample_ok(sampler, logits, history);
  };
  EXPECT_EQ(pick(3, 1.5f), 0);   // token 0 is four back
  EXPECT_EQ(pick(4, 1.5f), 1);
  EXPECT_EQ(pick(64, 1.5f), 1);  // a window longer than the history
  EXPECT_EQ(pick(-1, 1.5f), 1);
  EXPECT_EQ(pick(0, 1.5f), 0);
  EXPECT_EQ(pick(-1, 1.0f), 0);
}

TEST(Sampling, HistoryTokenOutsideVocabularyInWindowIsAnError) {
  SamplingParams params = plain(0.0f);
  params.repeat_penalty = 1.1f;
  params.repeat_last_n = 2;
  Sampler sampler = make_sampler(params);
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const std::vector<int32_t> bad_recent = {0, 1, 3};
  auto token = sampler.sample(logits, bad_recent);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::out_of_range);
  EXPECT_NE(token.status().message().find("3"), std::string::npos) << token.status().message();
  const std::vector<int32_t> bad_but_old = {-4, 1, 2};
  EXPECT_EQ(sample_ok(sampler, logits, bad_but_old), 2);
}

TEST(Sampling, MaskedTokensAreNeverDrawn) {
  testing::SeededRng rng;
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {kMasked, 0.0f, kMasked, 0.5f, kMasked};
  Sampler sampler = make_sampler(plain(2.0f, rng.engine()()));
  const std::vector<int> counts = histogram(sampler, logits, 2000);
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_GT(counts[1], 500);
  EXPECT_GT(counts[3], 500);
}

TEST(Sampling, VocabularySizeMayChangeBetweenCalls) {
  SamplingParams params;  // the defaults
  params.temperature = 0.7f;
  Sampler sampler = make_sampler(params);
  std::vector<float> large(1000, -10.0f);
  large[900] = 10.0f;
  EXPECT_EQ(sample_ok(sampler, large), 900);
  EXPECT_EQ(sample_ok(sampler, {-10.0f, 10.0f, -10.0f}), 1);
  EXPECT_EQ(sample_ok(sampler, large), 900);
}

TEST(Sampling, BadLogitsAreErrors) {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (const float temperature : {0.0f, 1.0f}) {
    Sampler sampler = make_sampler(plain(temperature));
    std::vector<float> logits(10, 0.0f);
    logits[7] = kNan;
    auto token = sampler.sample(logits, {});
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.status().code(), ErrorCode::invalid_argument);
    EXPECT_NE(token.status().message().find("index 7"), std::string::npos) << token.status().message();

    logits[7] = kInf;
    token = sampler.sample(logits, {});
    ASSERT_FALSE(token.ok());
    EXPECT_NE(token.status().message().find("index 7"), std::string::npos) << token.status().message();

    EXPECT_FALSE(sampler.sample({}, {}).ok());
    EXPECT_FALSE(sampler.sample(std::vector<float>(4, -kInf), {}).ok());
  }
}

TEST(Sampling, ValidateRejectsEachBadValueNamingTheOption) {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string option;
    void (*spoil)(SamplingParams&);
  };
  const Case cases[] = {
      {"--temp", [](SamplingParams& p) { p.temperature = kNan; }},
      {"--temp", [](SamplingParams& p) { p.temperature = kInf; }},
      {"--top-p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"--top-p", [](SamplingParams& p) { p.top_p = -0.5f; }},
      {"--top-p", [](SamplingParams& p) { p.top_p = 1.5f; }},
      {"--top-p", [](SamplingParams& p) { p.top_p = kNan; }},
      {"--min-p", [](SamplingParams& p) { p.min_p = -0.1f; }},
      {"--min-p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"--min-p", [](SamplingParams& p) { p.min_p = kNan; }},
      {"--repeat-penalty", [](SamplingParams& p) { p.repeat_penalty = 0.0f; }},
      {"--repeat-penalty", [](SamplingParams& p) { p.repeat_penalty = -1.1f; }},
      {"--repeat-penalty", [](SamplingParams& p) { p.repeat_penalty = kNan; }},
      {"--repeat-penalty", [](SamplingParams& p) { p.repeat_penalty = kInf; }},
      {"--repeat-last-n", [](SamplingParams& p) { p.repeat_last_n = -2; }},
  };
  for (const Case& bad : cases) {
    SamplingParams params;
    bad.spoil(params);
    const Status status = validate(params);
    ASSERT_FALSE(status.ok()) << bad.option;
    EXPECT_EQ(status.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(status.message().rfind(bad.option + " ", 0), 0u) << status.message();
    EXPECT_FALSE(Sampler::create(params).ok()) << bad.option;
  }
  SamplingParams top_p_too_big;
  top_p_too_big.top_p = 1.5f;
  EXPECT_EQ(validate(top_p_too_big).message(), "--top-p 1.5: must be in (0, 1]");
}

TEST(Sampling, ValidateAcceptsEdgeValues) {
  const auto accepts = [](void (*edit)(SamplingParams&)) {
    SamplingParams params;
    edit(params);
    const Status status = validate(params);
    EXPECT_TRUE(status.ok()) << status.message();
  };
  accepts([](SamplingParams&) {});
  accepts([](SamplingParams& p) { p.temperature = 0.0f; });
  accepts([](SamplingParams& p) { p.temperature = -1.0f; });
  accepts([](SamplingParams& p) { p.top_k = -5; });
  accepts([](SamplingParams& p) { p.top_p = 1.0f; });
  accepts([](SamplingParams& p) { p.min_p = 0.0f; });
  accepts([](SamplingParams& p) { p.min_p = 1.0f; });
  accepts([](SamplingParams& p) { p.repeat_last_n = -1; });
  accepts([](SamplingParams& p) { p.repeat_last_n = 0; });
}

}  // namespace
}  // namespace ember
