#include "ember/perplexity.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace ember {
namespace {

// -log softmax(row)[target], in double so long rows do not lose the small terms.
double negative_log_likelihood(const float* row, int64_t vocab, int32_t target) {
  const float max_logit = *std::max_element(row, row + vocab);
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) total += std::exp(static_cast<double>(row[i]) - max_logit);
  return std::log(total) - (static_cast<double>(row[target]) - max_logit);
}

}  // namespace

Result<PerplexityResult> perplexity(Session& session, std::span<const int32_t> tokens, int64_t window,
                                    const std::function<void(size_t, double)>& progress) {
  if (tokens.size() < 2) return invalid_argument("perplexity needs at least two tokens of text");
  if (window < 2 || window > session.model().context_length())
    return invalid_argument(fmt::format("perplexity window of {} tokens: it must be between 2 and the context "
                                        "length {}",
                                        window, session.model().context_length()));
  const std::optional<int32_t> bos = session.tokenizer().bos_id();
  // Each window holds `stride` tokens of the text, after the BOS when there is one.
  const auto stride = static_cast<size_t>(window - (bos ? 1 : 0));
  const bool whole_text = tokens.size() <= stride;
  const size_t windows = whole_text ? 1 : tokens.size() / stride;

  PerplexityResult result;
  double sum = 0.0, sum_of_squares = 0.0;
  std::vector<int32_t> input;
  for (size_t w = 0; w < windows; ++w) {
    const auto text = tokens.subspan(w * stride, whole_text ? tokens.size() : stride);
    input.clear();
    if (bos) input.push_back(*bos);
    input.insert(input.end(), text.begin(), text.end());
    session.reset();
    auto logits = session.eval_all_logits(input);
    if (!logits) return logits.status();
    auto data = logits->read<float>();
    if (!data) return data.status();
    const int64_t vocab = logits->dim(1);
    // Logits row i predicts input[i + 1]; the BOS itself is never a target.
    const size_t first = whole_text ? 0 : input.size() / 2;
    for (size_t i = first; i + 1 < input.size(); ++i) {
      const double nll = negative_log_likelihood(data.value() + static_cast<int64_t>(i) * vocab, vocab, input[i + 1]);
      sum += nll;
      sum_of_squares += nll * nll;
      ++result.scored_tokens;
    }
    const double running = std::exp(sum / static_cast<double>(result.scored_tokens));
    result.window_perplexity.push_back(running);
    if (progress) progress(w, running);
  }
  session.reset();
  const auto n = static_cast<double>(result.scored_tokens);
  const double mean = sum / n;
  result.perplexity = std::exp(mean);
  // The NLL mean's standard error carried through exp (first order).
  const double variance = n > 1 ? std::max(0.0, (sum_of_squares / n - mean * mean) * n / (n - 1)) : 0.0;
  result.standard_error = result.perplexity * std::sqrt(variance / n);
  return result;
}

}  // namespace ember
