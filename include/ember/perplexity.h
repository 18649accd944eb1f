// Perplexity of a model over a token sequence, llama.cpp's way: the tokens are cut into
// windows of `window` tokens (each starting with BOS when the tokenizer has one), each
// window is evaluated from an empty cache, and only the predictions in its second half
// are scored, so every scored token has at least window / 2 tokens of context. A text
// shorter than one window is evaluated whole and every prediction in it is scored.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ember/session.h"
#include "ember/status.h"

namespace ember {

struct PerplexityResult {
  double perplexity = 0.0;       // exp(mean negative log-likelihood)
  double standard_error = 0.0;   // of the perplexity, from the spread of the per-token NLLs
  int64_t scored_tokens = 0;
  std::vector<double> window_perplexity;  // running perplexity after each window
};

// Uses sequence 0 of `session` (its history is reset). `progress`, when given, is called
// after each window with its index and the running perplexity. Errors: fewer than two
// tokens, a window shorter than 2 or past the model's context, a failed evaluation.
Result<PerplexityResult> perplexity(Session& session, std::span<const int32_t> tokens, int64_t window,
                                    const std::function<void(size_t, double)>& progress = {});

}  // namespace ember
