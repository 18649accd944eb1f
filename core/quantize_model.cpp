#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/model_source.h"
#include "cpu/quantize.h"
#include "cpu/threads.h"
#include "ember/gguf.h"
#include "ember/quantize.h"

namespace ember {
namespace {

struct TargetInfo {
  QuantizeTarget target;
  std::string_view name;
  DType matrix_type;   // the type most matrices get
  uint32_t file_type;  // llama.cpp's llama_ftype, for general.file_type
};

constexpr TargetInfo kTargets[] = {
    {QuantizeTarget::f32, "f32", DType::f32, 0},      {QuantizeTarget::f16, "f16", DType::f16, 1},
    {QuantizeTarget::bf16, "bf16", DType::bf16, 32},  {QuantizeTarget::q8_0, "q8_0", DType::q8_0, 7},
    {QuantizeTarget::q4_0, "q4_0", DType::q4_0, 2},   {QuantizeTarget::q4_1, "q4_1", DType::q4_1, 3},
    {QuantizeTarget::q4_k_m, "q4_k_m", DType::q4_k, 15}, {QuantizeTarget::q6_k, "q6_k", DType::q6_k, 18},
};

const TargetInfo& info(QuantizeTarget target) {
  return *std::find_if(std::begin(kTargets), std::end(kTargets), [&](const TargetInfo& t) { return t.target == target; });
}

// Layer index of a "blk.N.*" name, or -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::strtoll(name.c_str() + 4, nullptr, 10);
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// llama.cpp gives these layers' attn_v and ffn_down more bits in its _M mixes: the first
// and last eighth of the stack and every third layer between.
bool layer_gets_more_bits(int64_t layer, int64_t layer_count) {
  return layer < layer_count / 8 || layer >= 7 * layer_count / 8 || (layer - layer_count / 8) % 3 == 2;
}

}  // namespace

double TypeTotals::rms_error() const { return elements == 0 ? 0.0 : std::sqrt(squared_error / static_cast<double>(elements)); }

std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name) {
  for (const TargetInfo& t : kTargets)
    if (t.name == name) return t.target;
  return std::nullopt;
}

std::string_view quantize_target_name(QuantizeTarget target) { return info(target).name; }

TensorPlan plan_tensor_type(const std::string& name, const Shape& shape, DType from, QuantizeTarget target,
                            bool keep_output, bool output_is_tied, int64_t layer_count) {
  TensorPlan plan{name, shape, from, from, ""};
  if (shape.rank() < 2) {
    plan.to = DType::f32;  // norms and biases: tiny, and precision-critical
    return plan;
  }
  const bool is_output = name == "output.weight" || (output_is_tied && name == "token_embd.weight");
  if (keep_output && (is_output || name == "token_embd.weight")) {
    plan.to = is_quantized(from) ? from : (from == DType::f32 ? DType::f16 : from);
    plan.note = "kept (--keep-output)";
    return plan;
  }
  DType wanted = info(target).matrix_type;
  if (target == QuantizeTarget::q4_k_m) {
    const int64_t layer = layer_of(name);
    const bool more_bits = layer >= 0 && (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) &&
                           layer_gets_more_bits(layer, layer_count);
    if (is_output || more_bits) wanted = DType::q6_k;
  }
  const int64_t row_length = shape[shape.rank() - 1];
  if (row_length % block_elements(wanted) != 0) {
    const DType fallback = row_length % block_elements(DType::q8_0) == 0 && is_quantized(wanted) ? DType::q8_0 : DType::f16;
    plan.note = fmt::format("rows of {} are not whole {} blocks of {}: {} instead", row_length, dtype_name(wanted),
                            block_elements(wanted), dtype_name(fallback));
    wanted = fallback;
  }
  plan.to = wanted;
  return plan;
}

namespace {

// Rows per conversion step: about 8 MiB of f32, so the scratch stays cache-friendly
// and the cancel flag is polled often.
constexpr int64_t kChunkFloats = 2 << 20;

// Σ (decode(out) - original)² over the chunk, in row order so it is thread-count independent.
double squared_error(DType type, const std::byte* out, const float* original, int64_t rows, int64_t row_length,
                     std::vector<float>& scratch) {
  cpu::dequantize_rows(type, out, rows, row_length, scratch.data());
  std::vector<double> per_row(static_cast<size_t>(rows));
#pragma omp parallel for num_threads(cpu::threads()) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t i = r * row_length; i < (r + 1) * row_length; ++i) {
      const double diff = static_cast<double>(scratch[i]) - original[i];
      sum += diff * diff;
    }
    per_row[r] = sum;
  }
  double total = 0.0;
  for (double v : per_row) total += v;
  return total;
}

// Index of the first NaN or infinity, or -1. Quantizing one would turn a broken
// model into a different broken model without a word.
int64_t first_non_finite(const float* values, int64_t count) {
  int64_t first = count;
#pragma omp parallel for num_threads(cpu::threads()) schedule(static) reduction(min : first)
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]) && i < first) first = i;
  return first == count ? -1 : first;
}

}  // namespace

Result<QuantizeReport> quantize_model(const QuantizeOptions& options, const QuantizeProgress& progress,
                                      const std::atomic<bool>* cancel) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code ignored;
  if (std::filesystem::exists(options.output, ignored) &&
      std::filesystem::equivalent(options.input, options.output, ignored))
    return invalid_argument(fmt::format("{}: the output would overwrite the input", options.output.string()));
  if (options.threads > 0) cpu::set_threads(options.threads);

  auto source = open_model_source(options.input);
  if (!source) return source.status();

  QuantizeReport report;
  GgufWriter writer;
  for (const auto& [key, value] : source->metadata)
    if (key != "general.file_type" && key != "general.quantization_version") writer.set(key, value);
  writer.set("general.file_type", GgufValue::u32(info(options.target).file_type));
  writer.set("general.quantization_version", GgufValue::u32(2));

  const size_t total = source->tensors.size();
  uint64_t bytes_done = 0;
  // Scratch for one chunk of rows, kept across tensors: fresh large allocations come
  // back as fresh pages, and faulting them in cost more than the quantization.
  std::vector<float> original(static_cast<size_t>(kChunkFloats)), decoded(static_cast<size_t>(kChunkFloats));
  for (size_t index = 0; index < total; ++index) {
    const SourceTensor& tensor = source->tensors[index];
    report.plan.push_back(plan_tensor_type(tensor.name, tensor.shape, tensor.dtype, options.target,
                                           options.keep_output, source->output_is_tied, source->layer_count));
  }
  if (options.dry_run) return report;
  uint64_t bytes_total = 0;
  for (const TensorPlan& plan : report.plan) bytes_total += static_cast<uint64_t>(row_bytes(plan.from, plan.shape.elements()));

  for (size_t index = 0; index < total; ++index) {
    const SourceTensor& tensor = source->tensors[index];
    const TensorPlan& plan = report.plan[index];
    auto source_tensor_loader = tensor.load;
    EMBER_RETURN_IF_ERROR(writer.add_tensor(
        plan.name, plan.shape, plan.to,
        [&, index, source_tensor_loader](std::span<std::byte> out) -> Status {
          if (progress) progress(index, total, &plan, bytes_done, bytes_total);
          auto loaded = source_tensor_loader();
          if (!loaded) return loaded.status();
          auto dense = loaded->contiguous();
          if (!dense) return dense.status();
          auto in = dense->read<std::byte>();
          if (!in) return in.status();
          const int64_t row_length = plan.shape.rank() == 0 ? 1 : plan.shape[plan.shape.rank() - 1];
          const int64_t rows = row_length == 0 ? 0 : plan.shape.elements() / row_length;
          const int64_t chunk_rows = std::max<int64_t>(1, kChunkFloats / std::max<int64_t>(1, row_length));
          const auto in_row_bytes = static_cast<size_t>(row_bytes(plan.from, row_length));
          const auto out_row_bytes = static_cast<size_t>(row_bytes(plan.to, row_length));
          if (static_cast<size_t>(chunk_rows * row_length) > original.size()) {
            original.resize(static_cast<size_t>(chunk_rows * row_length));
            decoded.resize(original.size());
          }
          TypeTotals& totals = report.by_type[plan.to];
          for (int64_t first = 0; first < rows; first += chunk_rows) {
            if (cancel != nullptr && cancel->load()) return Status(ErrorCode::io_error, "interrupted");
            const int64_t count = std::min(chunk_rows, rows - first);
            cpu::dequantize_rows(plan.from, in.value() + first * in_row_bytes, count, row_length, original.data());
            if (const int64_t bad = first_non_finite(original.data(), count * row_length); bad >= 0)
              return invalid_argument(fmt::format("element {} is {}: the input model is corrupt",
                                                  first * row_length + bad, original[bad]));
            std::byte* target = out.data() + first * out_row_bytes;
            cpu::quantize_rows(plan.to, original.data(), count, row_length, target);
            totals.squared_error += squared_error(plan.to, target, original.data(), count, row_length, decoded);
          }
          ++totals.tensors;
          totals.elements += static_cast<uint64_t>(plan.shape.elements());
          totals.bytes_in += static_cast<uint64_t>(row_bytes(plan.from, plan.shape.elements()));
          totals.bytes_out += out.size();
          bytes_done += static_cast<uint64_t>(row_bytes(plan.from, plan.shape.elements()));
          return {};
        }));
  }
  EMBER_RETURN_IF_ERROR(writer.write(options.output));
  if (progress) progress(total, total, nullptr, bytes_done, bytes_total);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace ember
