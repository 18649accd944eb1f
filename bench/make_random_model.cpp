// make-random-model OUT.gguf [--arch llama|gpt2 --hidden 2048 --layers 8 --heads 16
// --kv-heads 4 --ffn 5632 --vocab 32000 --context 2048 --type f16]: a GGUF with random
// weights, for speed measurements on models no one may download here (the 0.5 B Llama "M"
// of docs/PERFORMANCE.md by default) and for running the GPT-2 path end to end. Weights
// ~ N(0, 0.02²)-like (uniform of the same spread), norms 1. A gpt2 model also carries a
// byte-level BPE tokenizer (the 256 bytes, merges of printable ASCII pairs, <|endoftext|>),
// so run-model can generate from it.
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

constexpr char kFirstPrintable = ' ', kLastPrintable = '~';
constexpr int64_t kPrintableCount = kLastPrintable - kFirstPrintable + 1;
// Byte tokens, one merge per ordered pair of printable ASCII characters, <|endoftext|>.
constexpr int64_t kGpt2MaxVocab = 256 + kPrintableCount * kPrintableCount + 1;

// GPT-2's byte-level spelling: printable Latin-1 bytes stand for themselves, the others
// (controls, space, DEL, NBSP, soft hyphen) for code points from U+0100 on, in byte order.
std::string byte_level_spelling(uint8_t byte) {
  const auto stands_for_itself = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
  int code_point = byte;
  if (!stands_for_itself(byte)) {
    code_point = 256;
    for (int b = 0; b < byte; ++b)
      if (!stands_for_itself(b)) ++code_point;
  }
  std::string utf8;
  if (code_point < 0x80) {
    utf8 += static_cast<char>(code_point);
  } else {
    utf8 += static_cast<char>(0xC0 | (code_point >> 6));
    utf8 += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return utf8;
}

// The tokenizer.ggml.* keys of a byte-level BPE vocabulary of `vocab` tokens.
void add_gpt2_tokenizer(ember::GgufWriter& writer, int64_t vocab) {
  std::vector<std::string> tokens, merges;
  for (int byte = 0; byte < 256; ++byte) tokens.push_back(byte_level_spelling(static_cast<uint8_t>(byte)));
  for (char left = kFirstPrintable; left <= kLastPrintable && static_cast<int64_t>(tokens.size()) < vocab - 1; ++left)
    for (char right = kFirstPrintable; right <= kLastPrintable && static_cast<int64_t>(tokens.size()) < vocab - 1; ++right) {
      const std::string a = byte_level_spelling(static_cast<uint8_t>(left)), b = byte_level_spelling(static_cast<uint8_t>(right));
      merges.push_back(a + " " + b);
      tokens.push_back(a + b);
    }
  const auto end_of_text = static_cast<uint32_t>(tokens.size());
  tokens.push_back("<|endoftext|>");
  constexpr int32_t kNormal = 1, kControl = 3;  // llama.cpp's token types
  std::vector<ember::GgufValue> types(tokens.size(), ember::GgufValue::i32(kNormal));
  types.back() = ember::GgufValue::i32(kControl);
  writer.set("tokenizer.ggml.model", ember::GgufValue::string("gpt2"));
  writer.set("tokenizer.ggml.pre", ember::GgufValue::string("gpt-2"));
  writer.set("tokenizer.ggml.tokens", ember::GgufValue::strings(tokens));
  writer.set("tokenizer.ggml.token_type", ember::GgufValue::array(ember::GgufType::int32, std::move(types)));
  writer.set("tokenizer.ggml.merges", ember::GgufValue::strings(merges));
  writer.set("tokenizer.ggml.bos_token_id", ember::GgufValue::u32(end_of_text));
  writer.set("tokenizer.ggml.eos_token_id", ember::GgufValue::u32(end_of_text));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight Llama or GPT-2 GGUF model."};
  std::string output, arch = "llama", type_name = "f16";
  int64_t hidden = 2048, layers = 8, heads = 16, kv_heads = 4, ffn = 5632, vocab = 32000, context = 2048;
  app.add_option("output", output, "GGUF file to write")->required();
  app.add_option("--arch", arch, "llama or gpt2")->check(CLI::IsMember({"llama", "gpt2"}));
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads, "llama only: GPT-2 has no grouped-query heads");
  app.add_option("--ffn", ffn);
  app.add_option("--vocab", vocab);
  app.add_option("--context", context);
  app.add_option("--type", type_name, "f32, f16 or bf16");
  CLI11_PARSE(app, argc, argv);

  const bool gpt2 = arch == "gpt2";
  if (gpt2) kv_heads = heads;
  const auto type = ember::dtype_from_name(type_name);
  if (!type || !ember::is_float(*type) || hidden % heads != 0 || heads % kv_heads != 0) {
    fmt::print(stderr, "make-random-model: --type must be f32, f16 or bf16 and heads must divide hidden and be a "
                       "multiple of kv-heads\n");
    return 2;
  }
  if (gpt2 && (vocab < 257 || vocab > kGpt2MaxVocab)) {
    fmt::print(stderr, "make-random-model: a gpt2 --vocab must be from 257 (the bytes and <|endoftext|>) to {}\n",
               kGpt2MaxVocab);
    return 2;
  }
  const int64_t head_dim = hidden / heads;
  const auto u32 = [](int64_t value) { return ember::GgufValue::u32(static_cast<uint32_t>(value)); };
  ember::GgufWriter writer;
  writer.set("general.architecture", ember::GgufValue::string(arch));
  writer.set("general.name", ember::GgufValue::string(fmt::format("random-{}-{}x{}", arch, layers, hidden)));
  writer.set(arch + ".block_count", u32(layers));
  writer.set(arch + ".context_length", u32(context));
  writer.set(arch + ".embedding_length", u32(hidden));
  writer.set(arch + ".feed_forward_length", u32(ffn));
  writer.set(arch + ".attention.head_count", u32(heads));
  writer.set(arch + ".vocab_size", u32(vocab));
  if (gpt2) {
    writer.set("gpt2.attention.layer_norm_epsilon", ember::GgufValue::f32(1e-5f));
    add_gpt2_tokenizer(writer, vocab);
  } else {
    writer.set("llama.attention.head_count_kv", u32(kv_heads));
    writer.set("llama.rope.freq_base", ember::GgufValue::f32(10000.0f));
    writer.set("llama.rope.dimension_count", u32(head_dim));
    writer.set("llama.attention.layer_norm_rms_epsilon", ember::GgufValue::f32(1e-5f));
  }
  writer.set("general.file_type", ember::GgufValue::u32(*type == ember::DType::f32 ? 0 : *type == ember::DType::f16 ? 1 : 32));

  // Matrices in --type; norm weights (ones) and biases (random) in f32, as the loader wants.
  enum class Fill { matrix, ones, bias };
  const auto add = [&](const std::string& name, const ember::Shape& shape, Fill fill) -> ember::Status {
    const ember::DType dtype = fill == Fill::matrix ? *type : ember::DType::f32;
    return writer.add_tensor(name, shape, dtype, [name, dtype, fill](std::span<std::byte> out) -> ember::Status {
      SplitMix64 random{seed_of(name)};
      const size_t count = out.size() / (dtype == ember::DType::f32 ? 4 : 2);
      for (size_t i = 0; i < count; ++i) {
        const float value = fill == Fill::ones ? 1.0f : random.uniform_pm(0.0346f);  // stddev 0.02
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
  results.push_back(add("token_embd.weight", {vocab, hidden}, Fill::matrix));
  if (gpt2) results.push_back(add("position_embd.weight", {context, hidden}, Fill::matrix));
  for (int64_t layer = 0; layer < layers; ++layer) {
    const std::string block = fmt::format("blk.{}.", layer);
    results.push_back(add(block + "attn_norm.weight", {hidden}, Fill::ones));
    if (gpt2) {
      // One fused q/k/v matrix, biases everywhere, a GELU MLP without a gate.
      results.push_back(add(block + "attn_norm.bias", {hidden}, Fill::bias));
      results.push_back(add(block + "attn_qkv.weight", {3 * hidden, hidden}, Fill::matrix));
      results.push_back(add(block + "attn_qkv.bias", {3 * hidden}, Fill::bias));
      results.push_back(add(block + "attn_output.weight", {hidden, hidden}, Fill::matrix));
      results.push_back(add(block + "attn_output.bias", {hidden}, Fill::bias));
      results.push_back(add(block + "ffn_norm.weight", {hidden}, Fill::ones));
      results.push_back(add(block + "ffn_norm.bias", {hidden}, Fill::bias));
      results.push_back(add(block + "ffn_up.weight", {ffn, hidden}, Fill::matrix));
      results.push_back(add(block + "ffn_up.bias", {ffn}, Fill::bias));
      results.push_back(add(block + "ffn_down.weight", {hidden, ffn}, Fill::matrix));
      results.push_back(add(block + "ffn_down.bias", {hidden}, Fill::bias));
    } else {
      results.push_back(add(block + "attn_q.weight", {hidden, hidden}, Fill::matrix));
      results.push_back(add(block + "attn_k.weight", {kv_heads * head_dim, hidden}, Fill::matrix));
      results.push_back(add(block + "attn_v.weight", {kv_heads * head_dim, hidden}, Fill::matrix));
      results.push_back(add(block + "attn_output.weight", {hidden, hidden}, Fill::matrix));
      results.push_back(add(block + "ffn_norm.weight", {hidden}, Fill::ones));
      results.push_back(add(block + "ffn_gate.weight", {ffn, hidden}, Fill::matrix));
      results.push_back(add(block + "ffn_up.weight", {ffn, hidden}, Fill::matrix));
      results.push_back(add(block + "ffn_down.weight", {hidden, ffn}, Fill::matrix));
    }
  }
  results.push_back(add("output_norm.weight", {hidden}, Fill::ones));
  // GPT-2 ties its output projection to the token embeddings.
  if (gpt2) results.push_back(add("output_norm.bias", {hidden}, Fill::bias));
  else results.push_back(add("output.weight", {vocab, hidden}, Fill::matrix));
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
