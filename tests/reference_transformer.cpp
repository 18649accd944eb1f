#include "reference_transformer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "ember/safetensors.h"

namespace ember::testing {
namespace {

using Json = nlohmann::json;
using Vector = std::vector<double>;
using Rows = std::vector<Vector>;  // one vector per token

// Thrown anywhere below and turned into the Status of reference_forward: a test helper
// that reads far more clearly without a Result around every tensor.
struct ReferenceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Matrix {
  int64_t rows = 0, cols = 0;
  Vector data;  // row-major
  double at(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
};

class Weights {
 public:
  explicit Weights(const std::filesystem::path& folder) : folder_(folder) {
    auto opened = SafetensorsModel::open(folder);
    if (!opened) throw ReferenceError(opened.status().message());
    model_ = std::make_unique<SafetensorsModel>(std::move(opened.value()));
  }
  bool has(const std::string& name) const { return model_->find(name) != nullptr; }
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
    return {rows, cols, read(name, Shape{rows, cols})};
  }
  Vector vector(const std::string& name, int64_t length) const { return read(name, Shape{length}); }

 private:
  // The values widened from the file's type, so f16 files give their rounded values.
  Vector read(const std::string& name, const Shape& shape) const {
    auto tensor = model_->tensor(name);
    if (!tensor) throw ReferenceError(tensor.status().message());
    if (tensor->shape() != shape) throw ReferenceError(folder_.string() + ": " + name + " has another shape");
    Vector values(static_cast<size_t>(tensor->elements()));
    for (int64_t i = 0; i < tensor->elements(); ++i) values[static_cast<size_t>(i)] = tensor->get_flat(i);
    return values;
  }

  std::filesystem::path folder_;
  std::unique_ptr<SafetensorsModel> model_;
};

int64_t integer(const Json& config, const char* key) {
  if (!config.contains(key) || !config[key].is_number_integer())
    throw ReferenceError(std::string("config.json: no integer ") + key);
  return config[key].get<int64_t>();
}

template <typename T>
T value_or(const Json& config, const char* key, T fallback) {
  return config.contains(key) && !config[key].is_null() ? config[key].get<T>() : fallback;
}

// torch.nn.Linear: weight [out, in].
Vector linear(const Vector& x, const Matrix& w, const Vector* bias = nullptr) {
  Vector y(static_cast<size_t>(w.rows));
  for (int64_t o = 0; o < w.rows; ++o) {
    double sum = bias ? (*bias)[static_cast<size_t>(o)] : 0.0;
    for (int64_t i = 0; i < w.cols; ++i) sum += w.at(o, i) * x[static_cast<size_t>(i)];
    y[static_cast<size_t>(o)] = sum;
  }
  return y;
}

// GPT-2's Conv1D: weight [in, out], so the transpose of Linear's.
Vector conv1d(const Vector& x, const Matrix& w, const Vector& bias) {
  Vector y = bias;
  for (int64_t i = 0; i < w.rows; ++i)
    for (int64_t o = 0; o < w.cols; ++o) y[static_cast<size_t>(o)] += w.at(i, o) * x[static_cast<size_t>(i)];
  return y;
}

Vector rms_norm(const Vector& x, const Vector& weight, double eps) {
  double squares = 0.0;
  for (double v : x) squares += v * v;
  const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(x.size()) + eps);
  Vector y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = weight[i] * (x[i] * inverse);
  return y;
}

Vector layer_norm(const Vector& x, const Vector& weight, const Vector& bias, double eps) {
  double mean = 0.0;
  for (double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  double variance = 0.0;
  for (double v : x) variance += (v - mean) * (v - mean);
  variance /= static_cast<double>(x.size());  // biased, as torch's LayerNorm
  const double inverse = 1.0 / std::sqrt(variance + eps);
  Vector y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) * inverse * weight[i] + bias[i];
  return y;
}

void add_to(Vector& x, const Vector& y) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

// apply_rotary_pos_emb: x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1],
// pairing element j of each head with element j + d/2, and inv_freq_j = theta^(-2j/d).
void rotate_half_rope(Vector& x, int64_t heads, int64_t d, double position, double theta) {
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < d / 2; ++j) {
      const double angle = position / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(d));
      double& first = x[static_cast<size_t>(h * d + j)];
      double& second = x[static_cast<size_t>(h * d + j + d / 2)];
      const double a = first, b = second;
      first = a * std::cos(angle) - b * std::sin(angle);
      second = b * std::cos(angle) + a * std::sin(angle);
    }
}

// Scaled dot-product attention with a causal mask; head h reads kv head h / (heads /
// kv_heads), as repeat_kv lays the groups out.
Rows causal_attention(const Rows& q, const Rows& k, const Rows& v, int64_t heads, int64_t kv_heads, int64_t d) {
  const int64_t group = heads / kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Rows out(q.size(), Vector(static_cast<size_t>(heads * d), 0.0));
  for (size_t t = 0; t < q.size(); ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kv = h / group;
      Vector scores(t + 1);
      for (size_t s = 0; s <= t; ++s) {
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i)
          dot += q[t][static_cast<size_t>(h * d + i)] * k[s][static_cast<size_t>(kv * d + i)];
        scores[s] = dot * scale;
      }
      const double top = *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - top));
      for (size_t s = 0; s <= t; ++s)
        for (int64_t i = 0; i < d; ++i)
          out[t][static_cast<size_t>(h * d + i)] += scores[s] / total * v[s][static_cast<size_t>(kv * d + i)];
    }
  return out;
}

Rows logits_of(const Rows& hidden, const Matrix& output) {
  Rows logits;
  for (const Vector& x : hidden) logits.push_back(linear(x, output));
  return logits;
}

struct RopeSettings {
  double theta = 10000.0;
  double position_divisor = 1.0;  // "linear" scaling divides positions by its factor
};

RopeSettings rope_settings(const Json& config) {
  // transformers 5 nests everything in rope_parameters; 4 has rope_theta and rope_scaling.
  const Json scaling =
      config.contains("rope_parameters") ? config["rope_parameters"] : value_or(config, "rope_scaling", Json());
  RopeSettings rope;
  rope.theta = config.contains("rope_parameters") ? value_or(scaling, "rope_theta", 10000.0)
                                                  : value_or(config, "rope_theta", 10000.0);
  if (scaling.is_null()) return rope;
  const std::string type = value_or(scaling, "rope_type", value_or(scaling, "type", std::string("default")));
  if (type == "linear") rope.position_divisor = value_or(scaling, "factor", 1.0);
  else if (type != "default") throw ReferenceError("config.json: rope type " + type + " is not in the reference");
  return rope;
}

Rows llama_forward(const Json& config, const Weights& weights, std::span<const int32_t> tokens) {
  const std::string model_type = config["model_type"].get<std::string>();
  const int64_t vocab = integer(config, "vocab_size"), hidden = integer(config, "hidden_size");
  const int64_t heads = integer(config, "num_attention_heads");
  const int64_t kv_heads = value_or<int64_t>(config, "num_key_value_heads", heads);
  const int64_t d = value_or<int64_t>(config, "head_dim", hidden / heads);
  const int64_t ffn = integer(config, "intermediate_size");
  const double eps = value_or(config, "rms_norm_eps", 1e-6);
  const RopeSettings rope = rope_settings(config);
  if (value_or(config, "hidden_act", std::string("silu")) != "silu" || value_or(config, "mlp_bias", false))
    throw ReferenceError("config.json: only the SiLU MLP without biases is in the reference");
  // Qwen2Attention always has q/k/v biases and none on o_proj; LlamaAttention has all four
  // or none, as attention_bias says; MistralAttention none.
  const bool qkv_bias = model_type == "qwen2" || (model_type == "llama" && value_or(config, "attention_bias", false));
  const bool o_bias = model_type == "llama" && value_or(config, "attention_bias", false);

  const Matrix embed = weights.matrix("model.embed_tokens.weight", vocab, hidden);
  Rows x;
  for (int32_t token : tokens)
    x.emplace_back(embed.data.begin() + token * hidden, embed.data.begin() + (token + 1) * hidden);
  for (int64_t layer = 0; layer < integer(config, "num_hidden_layers"); ++layer) {
    const std::string block = "model.layers." + std::to_string(layer) + ".";
    const auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
      return weights.matrix(block + name + ".weight", rows, cols);
    };
    const auto bias = [&](const std::string& name, int64_t length, bool present) {
      return present ? weights.vector(block + name + ".bias", length) : Vector(static_cast<size_t>(length), 0.0);
    };
    const Matrix wq = matrix("self_attn.q_proj", heads * d, hidden);
    const Matrix wk = matrix("self_attn.k_proj", kv_heads * d, hidden);
    const Matrix wv = matrix("self_attn.v_proj", kv_heads * d, hidden);
    const Matrix wo = matrix("self_attn.o_proj", hidden, heads * d);
    const Vector bq = bias("self_attn.q_proj", heads * d, qkv_bias);
    const Vector bk = bias("self_attn.k_proj", kv_heads * d, qkv_bias);
    const Vector bv = bias("self_attn.v_proj", kv_heads * d, qkv_bias);
    const Vector bo = bias("self_attn.o_proj", hidden, o_bias);
    const Vector attn_norm = weights.vector(block + "input_layernorm.weight", hidden);
    const Vector ffn_norm = weights.vector(block + "post_attention_layernorm.weight", hidden);
    const Matrix gate = matrix("mlp.gate_proj", ffn, hidden), up = matrix("mlp.up_proj", ffn, hidden);
    const Matrix down = matrix("mlp.down_proj", hidden, ffn);

    Rows q, k, v;
    for (size_t t = 0; t < x.size(); ++t) {
      const Vector h = rms_norm(x[t], attn_norm, eps);
      q.push_back(linear(h, wq, &bq));
      k.push_back(linear(h, wk, &bk));
      v.push_back(linear(h, wv, &bv));
      const double position = static_cast<double>(t) / rope.position_divisor;
      rotate_half_rope(q.back(), heads, d, position, rope.theta);
      rotate_half_rope(k.back(), kv_heads, d, position, rope.theta);
    }
    const Rows attended = causal_attention(q, k, v, heads, kv_heads, d);
    for (size_t t = 0; t < x.size(); ++t) {
      add_to(x[t], linear(attended[t], wo, &bo));
      const Vector h = rms_norm(x[t], ffn_norm, eps);
      const Vector g = linear(h, gate), u = linear(h, up);
      Vector product(g.size());
      for (size_t i = 0; i < g.size(); ++i) product[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      add_to(x[t], linear(product, down));
    }
  }
  const Vector norm = weights.vector("model.norm.weight", hidden);
  for (Vector& row : x) row = rms_norm(row, norm, eps);
  const bool tied = value_or(config, "tie_word_embeddings", false);
  return logits_of(x, tied ? embed : weights.matrix("lm_head.weight", vocab, hidden));
}

// transformers' NewGELUActivation ("gelu_new"), the tanh approximation.
double gelu_new(double x) {
  const double kPi = 3.14159265358979323846;
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (x + 0.044715 * x * x * x)));
}

Rows gpt2_forward(const Json& config, const Weights& weights, std::span<const int32_t> tokens) {
  const int64_t vocab = integer(config, "vocab_size"), hidden = integer(config, "n_embd");
  const int64_t heads = integer(config, "n_head"), d = hidden / heads;
  const int64_t ffn = value_or<int64_t>(config, "n_inner", 4 * hidden);
  const double eps = value_or(config, "layer_norm_epsilon", 1e-5);
  if (value_or(config, "activation_function", std::string("gelu_new")) != "gelu_new")
    throw ReferenceError("config.json: only gelu_new is in the reference");
  // GPT2LMHeadModel saves "transformer.wte.weight"; GPT2Model "wte.weight".
  const std::string prefix = weights.has("transformer.wte.weight") ? "transformer." : "";
  if (static_cast<int64_t>(tokens.size()) > integer(config, "n_positions"))
    throw ReferenceError("more tokens than GPT-2's learned positions");

  const Matrix wte = weights.matrix(prefix + "wte.weight", vocab, hidden);
  const Matrix wpe = weights.matrix(prefix + "wpe.weight", integer(config, "n_positions"), hidden);
  Rows x;
  for (size_t t = 0; t < tokens.size(); ++t) {
    Vector row(static_cast<size_t>(hidden));
    for (int64_t i = 0; i < hidden; ++i)
      row[static_cast<size_t>(i)] = wte.at(tokens[t], i) + wpe.at(static_cast<int64_t>(t), i);
    x.push_back(std::move(row));
  }
  for (int64_t layer = 0; layer < integer(config, "n_layer"); ++layer) {
    const std::string block = prefix + "h." + std::to_string(layer) + ".";
    const auto vector = [&](const std::string& name, int64_t length) { return weights.vector(block + name, length); };
    const Matrix c_attn = weights.matrix(block + "attn.c_attn.weight", hidden, 3 * hidden);
    const Matrix attn_proj = weights.matrix(block + "attn.c_proj.weight", hidden, hidden);
    const Matrix c_fc = weights.matrix(block + "mlp.c_fc.weight", hidden, ffn);
    const Matrix mlp_proj = weights.matrix(block + "mlp.c_proj.weight", ffn, hidden);
    const Vector c_attn_bias = vector("attn.c_attn.bias", 3 * hidden);
    const Vector attn_proj_bias = vector("attn.c_proj.bias", hidden);
    const Vector c_fc_bias = vector("mlp.c_fc.bias", ffn), mlp_proj_bias = vector("mlp.c_proj.bias", hidden);
    const Vector ln_1 = vector("ln_1.weight", hidden), ln_1_bias = vector("ln_1.bias", hidden);
    const Vector ln_2 = vector("ln_2.weight", hidden), ln_2_bias = vector("ln_2.bias", hidden);

    Rows q, k, v;
    for (const Vector& row : x) {
      // c_attn's output is q, k, v one after the other (qkv.split(n_embd)).
      const Vector qkv = conv1d(layer_norm(row, ln_1, ln_1_bias, eps), c_attn, c_attn_bias);
      q.emplace_back(qkv.begin(), qkv.begin() + hidden);
      k.emplace_back(qkv.begin() + hidden, qkv.begin() + 2 * hidden);
      v.emplace_back(qkv.begin() + 2 * hidden, qkv.end());
    }
    const Rows attended = causal_attention(q, k, v, heads, heads, d);
    for (size_t t = 0; t < x.size(); ++t) {
      add_to(x[t], conv1d(attended[t], attn_proj, attn_proj_bias));
      Vector inner = conv1d(layer_norm(x[t], ln_2, ln_2_bias, eps), c_fc, c_fc_bias);
      for (double& value : inner) value = gelu_new(value);
      add_to(x[t], conv1d(inner, mlp_proj, mlp_proj_bias));
    }
  }
  const Vector ln_f = weights.vector(prefix + "ln_f.weight", hidden);
  const Vector ln_f_bias = weights.vector(prefix + "ln_f.bias", hidden);
  for (Vector& row : x) row = layer_norm(row, ln_f, ln_f_bias, eps);
  const bool tied = value_or(config, "tie_word_embeddings", true);
  return logits_of(x, tied ? wte : weights.matrix("lm_head.weight", vocab, hidden));
}

}  // namespace

Result<ReferenceLogits> reference_forward(const std::filesystem::path& folder, std::span<const int32_t> tokens) {
  try {
    std::ifstream file(folder / "config.json");
    if (!file) throw ReferenceError("cannot read config.json");
    std::stringstream text;
    text << file.rdbuf();
    const Json config = Json::parse(text.str());
    const std::string model_type = config.at("model_type").get<std::string>();
    const int64_t vocab = integer(config, "vocab_size");
    for (int32_t token : tokens)
      if (token < 0 || token >= vocab)
        throw ReferenceError("token " + std::to_string(token) + " is outside the vocabulary");
    const Weights weights(folder);
    Rows logits;
    if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2") {
      logits = llama_forward(config, weights, tokens);
    } else if (model_type == "gpt2") {
      logits = gpt2_forward(config, weights, tokens);
    } else {
      throw ReferenceError("model_type " + model_type + " is not in the reference");
    }
    ReferenceLogits result{static_cast<int64_t>(logits.size()), vocab, {}};
    for (const Vector& row : logits) result.values.insert(result.values.end(), row.begin(), row.end());
    return result;
  } catch (const std::exception& error) {
    return invalid_argument(folder.string() + ": " + error.what());
  }
}

}  // namespace ember::testing
