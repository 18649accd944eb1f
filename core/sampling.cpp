#include "ember/sampling.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace ember {

namespace {

// A strict total order, so every standard library's sort and nth_element agree on the result.
constexpr auto ranks_higher = [](const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

double exp_relative(float logit, float max_logit) {
  return std::exp(static_cast<double>(logit) - static_cast<double>(max_logit));
}

}  // namespace

Status validate(const SamplingParams& params) {
  if (!std::isfinite(params.temperature)) {
    return invalid_argument(fmt::format("--temp {}: must be a finite number (<= 0 for greedy)", params.temperature));
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return invalid_argument(fmt::format("--top-p {}: must be in (0, 1]", params.top_p));
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    return invalid_argument(fmt::format("--min-p {}: must be in [0, 1]", params.min_p));
  }
  if (!(params.repeat_penalty > 0.0f && std::isfinite(params.repeat_penalty))) {
    return invalid_argument(fmt::format("--repeat-penalty {}: must be a finite number > 0", params.repeat_penalty));
  }
  if (params.repeat_last_n < -1) {
    return invalid_argument(
        fmt::format("--repeat-last-n {}: must be >= -1 (-1: whole history, 0: off)", params.repeat_last_n));
  }
  return {};
}

Result<Sampler> Sampler::create(const SamplingParams& params) {
  EMBER_RETURN_IF_ERROR(validate(params));
  return Sampler(params);
}

Result<int32_t> Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  auto best = load_candidates(logits, history);
  if (!best || params_.temperature <= 0.0f) return best;
  const float max_logit = candidates_[static_cast<size_t>(*best)].logit;

  const bool ranked = keep_top_k();
  if (params_.top_p < 1.0f) keep_top_p(max_logit, ranked);
  if (params_.min_p > 0.0f) keep_min_p(max_logit);
  return draw(max_logit);
}

Result<int32_t> Sampler::load_candidates(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) return invalid_argument("sampling: the logits row is empty");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument(fmt::format("sampling: {} logits is more than token ids can number", logits.size()));
  }
  candidates_.resize(logits.size());
  for (size_t id = 0; id < logits.size(); ++id) {
    const float logit = logits[id];
    // -inf is how callers mask a token out; NaN and +inf would turn every probability into NaN.
    if (std::isnan(logit) || logit == std::numeric_limits<float>::infinity()) {
      return invalid_argument(fmt::format("sampling: logit {} at index {} (of {})", logit, id, logits.size()));
    }
    candidates_[id] = {static_cast<int32_t>(id), logit};
  }
  EMBER_RETURN_IF_ERROR(apply_repeat_penalty(history));

  size_t best = 0;
  for (size_t id = 1; id < candidates_.size(); ++id) {
    if (candidates_[id].logit > candidates_[best].logit) best = id;
  }
  if (candidates_[best].logit == -std::numeric_limits<float>::infinity()) {
    return invalid_argument(fmt::format("sampling: all {} logits are -inf, so no token can be drawn", logits.size()));
  }
  return static_cast<int32_t>(best);
}

Status Sampler::apply_repeat_penalty(std::span<const int32_t> history) {
  if (params_.repeat_penalty == 1.0f || params_.repeat_last_n == 0 || history.empty()) return {};
  const size_t window = params_.repeat_last_n < 0
                            ? history.size()
                            : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  const auto recent = history.last(window);
  penalized_ids_.assign(recent.begin(), recent.end());
  std::sort(penalized_ids_.begin(), penalized_ids_.end());
  penalized_ids_.erase(std::unique(penalized_ids_.begin(), penalized_ids_.end()), penalized_ids_.end());

  const auto vocab = static_cast<int32_t>(candidates_.size());
  if (penalized_ids_.front() < 0 || penalized_ids_.back() >= vocab) {
    const int32_t bad = penalized_ids_.front() < 0 ? penalized_ids_.front() : penalized_ids_.back();
    return out_of_range(fmt::format("sampling: history token {} is outside the vocabulary of {} tokens", bad, vocab));
  }
  for (const int32_t id : penalized_ids_) {
    float& logit = candidates_[static_cast<size_t>(id)].logit;
    logit = logit > 0.0f ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
  }
  return {};
}

// Returns whether it cut, in which case the survivors are left ranked.
bool Sampler::keep_top_k() {
  const auto k = static_cast<size_t>(params_.top_k);
  if (params_.top_k <= 0 || k >= candidates_.size()) return false;
  // A heap of the k best so far: most tokens cost one comparison with its worst, where nth_element would move them.
  top_k_.resize(k);
  std::partial_sort_copy(candidates_.begin(), candidates_.end(), top_k_.begin(), top_k_.end(), ranks_higher);
  candidates_.assign(top_k_.begin(), top_k_.end());
  return true;
}

void Sampler::keep_min_p(float max_logit) {
  // p >= min_p * p_max, in logits; std::remove_if keeps the survivors' order, which the draw depends on.
  const double threshold = static_cast<double>(max_logit) + std::log(static_cast<double>(params_.min_p));
  const auto below = [threshold](const Candidate& candidate) { return candidate.logit < threshold; };
  candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(), below), candidates_.end());
}

void Sampler::keep_top_p(float max_logit, bool ranked) {
  double normalizer = 0.0;
  if (ranked) {
    for (const Candidate& candidate : candidates_) normalizer += exp_relative(candidate.logit, max_logit);
  } else {
    // Rather than rank the whole vocabulary, one pass sums the mass in narrow logit bands below the best, which
    // tells how deep the cut can fall; only the tokens down to one band past that are ranked.
    constexpr int kBands = 512;
    constexpr double kBandsPerLogit = 16.0;
    const auto band_of = [max_logit](float logit) {
      const double depth = (static_cast<double>(max_logit) - logit) * kBandsPerLogit;
      return static_cast<int>(std::min(depth, static_cast<double>(kBands - 1)));
    };
    std::array<double, kBands> band_mass{};
    for (const Candidate& candidate : candidates_) {
      const double weight = exp_relative(candidate.logit, max_logit);
      normalizer += weight;
      band_mass[static_cast<size_t>(band_of(candidate.logit))] += weight;
    }
    // The band sums add in another order than the ranked walk below, hence the band of margin against rounding.
    int deepest_band = 0;
    for (double mass = band_mass[0]; mass < params_.top_p * normalizer && deepest_band < kBands - 1;) {
      mass += band_mass[static_cast<size_t>(++deepest_band)];
    }
    deepest_band = std::min(deepest_band + 1, kBands - 1);
    const auto too_deep = [&](const Candidate& candidate) { return band_of(candidate.logit) > deepest_band; };
    candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(), too_deep), candidates_.end());
    std::sort(candidates_.begin(), candidates_.end(), ranks_higher);
  }
  double mass = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    mass += exp_relative(candidates_[i].logit, max_logit) / normalizer;
    if (mass >= static_cast<double>(params_.top_p)) {
      candidates_.resize(i + 1);
      return;
    }
  }
}

int32_t Sampler::draw(float max_logit) {
  const double inverse_temperature = 1.0 / static_cast<double>(params_.temperature);
  weights_.resize(candidates_.size());
  double total = 0.0;
  size_t last_drawable = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    weights_[i] = std::exp((static_cast<double>(candidates_[i].logit) - max_logit) * inverse_temperature);
    total += weights_[i];
    if (weights_[i] > 0.0) last_drawable = i;
  }
  // 53 random bits in [0, 1), the same from every standard library (std::uniform_real_distribution is not).
  const double uniform = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  const double target = uniform * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative += weights_[i];
    if (target < cumulative) return candidates_[i].id;
  }
  // uniform * total can round up to total itself.
  return candidates_[last_drawable].id;
}

}  // namespace ember
