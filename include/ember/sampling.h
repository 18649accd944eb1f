// Picking the next token from a row of logits, with llama.cpp's default sampler chain:
// repetition penalty -> top-k -> top-p -> min-p -> temperature -> softmax -> draw.
// Top-p and min-p therefore judge the distribution at temperature 1, as llama.cpp does.
//
// Reproducible everywhere: the uniform number comes straight from std::mt19937_64's
// output (the standard distributions differ between standard libraries), and the
// survivors are summed and drawn from in an order fixed by (logit, id), never by what
// std::nth_element happened to leave behind.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "ember/status.h"

namespace ember {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy (argmax; ties -> lowest id)
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; logit > 0 ? logit / penalty : logit * penalty, once per distinct token
  int32_t repeat_last_n = 64;   // window of recent tokens the penalty looks at; 0: off, -1: whole history
  uint64_t seed = 0;            // same seed + same logits sequence -> same tokens
};

// Range checks; the message names the command-line option, e.g. "--top-p 1.5: must be in (0, 1]".
Status validate(const SamplingParams& params);

class Sampler {
 public:
  static Result<Sampler> create(const SamplingParams& params);

  // The next token from one row of logits (one entry per vocabulary id), given the tokens
  // so far, which the repetition penalty reads. A -inf logit masks its token out. Errors:
  // empty logits, a NaN or +inf logit, every logit -inf, a history token in the penalty
  // window outside the vocabulary.
  Result<int32_t> sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };

  explicit Sampler(const SamplingParams& params) : params_(params), engine_(params.seed) {}

  // Fills candidates_ in id order with the penalized logits; returns the id of the best one.
  Result<int32_t> load_candidates(std::span<const float> logits, std::span<const int32_t> history);
  Status apply_repeat_penalty(std::span<const int32_t> history);
  bool keep_top_k();
  void keep_min_p(float max_logit);
  void keep_top_p(float max_logit, bool ranked);
  int32_t draw(float max_logit);

  SamplingParams params_;
  std::mt19937_64 engine_;
  // Reused between calls, so sampling allocates only on its first call.
  std::vector<Candidate> candidates_;
  std::vector<Candidate> top_k_;
  std::vector<int32_t> penalized_ids_;
  std::vector<double> weights_;
};

}  // namespace ember
