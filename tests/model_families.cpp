#include "model_families.h"

#include <gtest/gtest.h>

namespace ember::testing {

void PrintTo(const FamilyCase& c, std::ostream* out) { *out << c.name; }

HfModelSpec make_spec(Architecture architecture, int64_t vocab, int64_t hidden, int64_t heads, int64_t kv_heads,
                      int64_t ffn) {
  HfModelSpec spec;
  spec.architecture = architecture;
  spec.vocab_size = vocab;
  spec.hidden_size = hidden;
  spec.head_count = heads;
  spec.kv_head_count = kv_heads;
  spec.ffn_size = ffn;
  return spec;
}

std::vector<FamilyCase> family_cases() {
  std::vector<FamilyCase> cases;
  cases.push_back({"llama_gqa", make_spec(Architecture::llama, 53, 40, 4, 2, 37)});
  HfModelSpec biased = make_spec(Architecture::llama, 61, 36, 6, 3, 50);
  biased.attention_bias = true;
  cases.push_back({"llama_attention_bias", biased});
  HfModelSpec qwen2 = make_spec(Architecture::qwen2, 59, 48, 4, 1, 44);
  qwen2.rope_theta = 1000000.0f;
  qwen2.norm_eps = 1e-6f;
  cases.push_back({"qwen2", qwen2});
  HfModelSpec mistral = make_spec(Architecture::llama, 47, 32, 4, 4, 40);
  mistral.model_type = "mistral";
  cases.push_back({"mistral", mistral});
  HfModelSpec gpt2 = make_spec(Architecture::gpt2, 57, 36, 3, 3, 50);
  gpt2.context_length = 16;
  gpt2.tie_word_embeddings = true;  // as GPT2LMHeadModel saves it
  cases.push_back({"gpt2", gpt2});
  HfModelSpec scaled = make_spec(Architecture::llama, 64, 24, 2, 1, 30);
  scaled.layer_count = 3;
  scaled.rope_theta = 500.0f;
  scaled.linear_rope_factor = 2.0f;
  scaled.tie_word_embeddings = true;
  scaled.layout = ConfigLayout::transformers5;
  cases.push_back({"llama_linear_rope_tied", scaled});
  return cases;
}

HfModelSpec family(const std::string& name) {
  for (const FamilyCase& c : family_cases())
    if (c.name == name) return c.spec;
  ADD_FAILURE() << "no family case " << name;
  return {};
}

}  // namespace ember::testing
