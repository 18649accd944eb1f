// Model conversion and quantization: what quantize-model does, as a library call.
//
// The input is a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a
// GGUF file; the output is one GGUF file holding the model, its metadata and its
// tokenizer, written atomically (temporary file + rename). The input is only ever
// mapped read-only.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/dtype.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

// The whole-model types of `quantize-model --type`. q4_k_m is llama.cpp's mix (see
// plan_tensor_type); the others put every matrix in one type.
enum class QuantizeTarget : uint8_t { f32, f16, bf16, q8_0, q4_0, q4_1, q4_k_m, q6_k };
std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name);
std::string_view quantize_target_name(QuantizeTarget target);

struct QuantizeOptions {
  std::filesystem::path input;
  std::filesystem::path output;
  QuantizeTarget target = QuantizeTarget::q8_0;
  bool keep_output = false;  // leave output.weight and token_embd.weight unquantized (f16 or their own type)
  int threads = 0;           // 0: one per core
  bool dry_run = false;      // plan only, write nothing
};

struct TensorPlan {
  std::string name;    // GGUF name
  Shape shape;
  DType from = DType::f32;
  DType to = DType::f32;
  std::string note;    // why `to` differs from the target's usual type, if it does
};

struct TypeTotals {
  int tensors = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double squared_error = 0.0;  // Σ (dequantized - original)² over the elements
  uint64_t elements = 0;
  double rms_error() const;
};

struct QuantizeReport {
  std::vector<TensorPlan> plan;
  std::map<DType, TypeTotals> by_type;  // keyed by output type
  double seconds = 0.0;
};

// Called before each tensor is converted, and once more at the end with index == total
// and tensor == nullptr. Bytes count the input read so far and in all.
using QuantizeProgress = std::function<void(size_t index, size_t total, const TensorPlan* tensor, uint64_t bytes_done,
                                            uint64_t bytes_total)>;

// The output type of one tensor. Rules (docs/FORMATS.md): 1-D tensors (norms, biases)
// stay f32; with keep_output, token_embd/output stay as they are (f16 when f32);
// q4_k_m: output.weight (or token_embd.weight when tied) and attn_v/ffn_down of the
// layers where i < n/8, i ≥ 7n/8 or (i - n/8) % 3 == 2 get q6_k, every other matrix
// q4_k. A row length that is not whole blocks falls back to q8_0 (rows of 32s) or f16,
// and `note` says so.
TensorPlan plan_tensor_type(const std::string& name, const Shape& shape, DType from, QuantizeTarget target,
                            bool keep_output, bool output_is_tied, int64_t layer_count);

// Runs the conversion. `cancel` (may be null) is polled between row chunks: when set,
// the temporary file is removed and an error returned.
Result<QuantizeReport> quantize_model(const QuantizeOptions& options, const QuantizeProgress& progress = {},
                                      const std::atomic<bool>* cancel = nullptr);

}  // namespace ember
