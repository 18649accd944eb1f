// A deliberately plain forward pass of a Hugging Face model folder, for checking ember's
// graphs against: loops over doubles, written from the transformers implementations of
// LlamaForCausalLM (llama, mistral, qwen2) and GPT2LMHeadModel, reading config.json with
// a JSON parser and the weights as safetensors stores them (Hugging Face names and
// layouts, q/k rows unpermuted, GPT-2's Conv1D matrices [in, out]). It shares nothing
// with ember's config reader, GGUF conversion, graph or kernels, so an error in any of
// them shows as a difference.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "ember/status.h"

namespace ember::testing {

struct ReferenceLogits {
  int64_t rows = 0;
  int64_t vocab = 0;
  std::vector<double> values;  // [rows, vocab]
};

// The logits of `tokens` at positions 0..T-1 with full causal attention over them (no
// cache). Errors name the folder: an unknown model_type, a missing key or tensor, a
// GPT-2 activation other than gelu_new, a token outside the vocabulary.
Result<ReferenceLogits> reference_forward(const std::filesystem::path& folder, std::span<const int32_t> tokens);

}  // namespace ember::testing
