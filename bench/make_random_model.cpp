// make-random-model OUT.gguf [--hidden 2048 --layers 8 --heads 16 --kv-heads 4 --ffn 5632
// --vocab 32000 --type f16]: a Llama-architecture GGUF with random weights, for speed
// measurements on models no one may download here (the 0.5 B "M" of docs/PERFORMANCE.md
// by default). Weights ~ N(0, 0.02²)-like (uniform of the same spread), norms 1.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ember/gguf.h"
#include "quant/bf16.h"
#include "quant/f16.h"

namespace {

// SplitMix64: fast, and each tensor's stream depends only on its name's seed, so a
// model is reproducible bit for bit.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform_pm(float half_width) {  // uniform in [-half_width, half_width)
    return (static_cast<float>(next() >> 40) / 16777216.0f * 2.0f - 1.0f) * half_width;
  }
};

uint64_t seed_of(const std::string& name) {
  uint64_t hash = 1469598103934665603ull;
  for (char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return hash;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight Llama GGUF model for benchmarks."};
  std::string output, type_name = "f16";
  int64_t hidden = 2048, layers = 8, heads = 16, kv_heads = 4, ffn = 5632, vocab = 32000, context = 2048;
  app.add_option("output", output, "GGUF file to write")->required();
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads);
  app.add_option("--ffn", ffn);
  app.add_option("--vocab", vocab);
  app.add_option("--context", context);
  app.add_option("--type", type_name, "f32, f16 or bf16");
  CLI11_PARSE(app, argc, argv);

  const auto type = ember::dtype_from_name(type_name);
  if (!type || !ember::is_float(*type) || hidden % heads != 0 || heads % kv_heads != 0) {
    fmt::print(stderr, "make-random-model: --type must be f32, f16 or bf16 and heads must divide hidden and be a "
                       "multiple of kv-heads\n");
    return 2;
  }
  const int64_t head_dim = hidden / heads;
  ember::GgufWriter writer;
  writer.set("general.architecture", ember::GgufValue::string("llama"));
  writer.set("general.name", ember::GgufValue::string(fmt::format("random-llama-{}x{}", layers, hidden)));
  writer.set("llama.block_count", ember::GgufValue::u32(static_cast<uint32_t>(layers)));
  writer.set("llama.context_length", ember::GgufValue::u32(static_cast<uint32_t>(context)));
  writer.set("llama.embedding_length", ember::GgufValue::u32(static_cast<uint32_t>(hidden)));
  writer.set("llama.feed_forward_length", ember::GgufValue::u32(static_cast<uint32_t>(ffn)));
  writer.set("llama.attention.head_count", ember::GgufValue::u32(static_cast<uint32_t>(heads)));
  writer.set("llama.attention.head_count_kv", ember::GgufValue::u32(static_cast<uint32_t>(kv_heads)));
  writer.set("llama.rope.freq_base", ember::GgufValue::f32(10000.0f));
  writer.set("llama.rope.dimension_count", ember::GgufValue::u32(static_cast<uint32_t>(head_dim)));
  writer.set("llama.attention.layer_norm_rms_epsilon", ember::GgufValue::f32(1e-5f));
  writer.set("llama.vocab_size", ember::GgufValue::u32(static_cast<uint32_t>(vocab)));
  writer.set("general.file_type", ember::GgufValue::u32(*type == ember::DType::f32 ? 0 : *type == ember::DType::f16 ? 1 : 32));

  const auto add = [&](const std::string& name, const ember::Shape& shape, bool is_norm) -> ember::Status {
    const ember::DType dtype = is_norm ? ember::DType::f32 : *type;
    return writer.add_tensor(name, shape, dtype, [name, dtype, is_norm](std::span<std::byte> out) -> ember::Status {
      SplitMix64 random{seed_of(name)};
      const size_t count = out.size() / (dtype == ember::DType::f32 ? 4 : 2);
      for (size_t i = 0; i < count; ++i) {
        const float value = is_norm ? 1.0f : random.uniform_pm(0.0346f);  // stddev 0.02
        if (dtype == ember::DType::f32) {
          std::memcpy(out.data() + 4 * i, &value, 4);
        } else {
          const uint16_t bits = dtype == ember::DType::f16 ? ember::quant::f32_to_f16(value) : ember::quant::f32_to_bf16(value);
          std::memcpy(out.data() + 2 * i, &bits, 2);
        }
      }
      return {};
    });
  };
  std::vector<ember::Status> results;
  results.push_back(add("token_embd.weight", {vocab, hidden}, false));
  for (int64_t layer = 0; layer < layers; ++layer) {
    const std::string block = fmt::format("blk.{}.", layer);
    results.push_back(add(block + "attn_norm.weight", {hidden}, true));
    results.push_back(add(block + "attn_q.weight", {hidden, hidden}, false));
    results.push_back(add(block + "attn_k.weight", {kv_heads * head_dim, hidden}, false));
    results.push_back(add(block + "attn_v.weight", {kv_heads * head_dim, hidden}, false));
    results.push_back(add(block + "attn_output.weight", {hidden, hidden}, false));
    results.push_back(add(block + "ffn_norm.weight", {hidden}, true));
    results.push_back(add(block + "ffn_gate.weight", {ffn, hidden}, false));
    results.push_back(add(block + "ffn_up.weight", {ffn, hidden}, false));
    results.push_back(add(block + "ffn_down.weight", {hidden, ffn}, false));
  }
  results.push_back(add("output_norm.weight", {hidden}, true));
  results.push_back(add("output.weight", {vocab, hidden}, false));
  for (const auto& status : results)
    if (!status.ok()) {
      fmt::print(stderr, "make-random-model: {}\n", status.message());
      return 1;
    }
  if (auto status = writer.write(output); !status.ok()) {
    fmt::print(stderr, "make-random-model: {}\n", status.message());
    return 1;
  }
  return 0;
}
