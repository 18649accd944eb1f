#include <fmt/format.h>

#include "core/model_weights.h"
#include "cpu/quantize.h"
#include "quant/convert.h"

namespace ember {
namespace {

// An f32 copy of `tensor` (which may be f16, bf16 or block-quantized), rows kept.
Result<Tensor> to_f32(const Tensor& tensor) {
  if (tensor.dtype() == DType::f32) return tensor;
  auto dense = tensor.contiguous();
  if (!dense) return dense.status();
  auto bytes = dense->read<std::byte>();
  if (!bytes) return bytes.status();
  auto widened = Tensor::empty(tensor.shape(), DType::f32);
  if (!widened) return widened.status();
  auto out = widened->write<float>();
  if (!out) return out.status();
  const int64_t count = tensor.elements();
  const auto* halves = reinterpret_cast<const uint16_t*>(bytes.value());
  if (tensor.dtype() == DType::f16) {
    quant::f16_to_f32_row(halves, out.value(), count);
  } else if (tensor.dtype() == DType::bf16) {
    quant::bf16_to_f32_row(halves, out.value(), count);
  } else {
    const int64_t row_length = tensor.dim(tensor.rank() - 1);
    cpu::dequantize_rows(tensor.dtype(), bytes.value(), count / row_length, row_length, out.value());
  }
  return widened;
}

bool read_in_place(DType type) {
  switch (type) {
    case DType::f32: case DType::f16: case DType::bf16: case DType::q8_0:
    case DType::q4_0: case DType::q4_1: case DType::q4_k: case DType::q6_k: return true;
    default: return false;
  }
}

}  // namespace

Result<Tensor> rows_in_own_buffer(const Tensor& matrix, int64_t first, int64_t count) {
  auto part = matrix.slice(0, first, count);
  if (!part) return part.status();
  const std::shared_ptr<Buffer>& whole = matrix.buffer();
  if (!matrix.is_contiguous() || whole == nullptr)
    return invalid_argument(fmt::format("rows of {}: not a dense tensor", matrix.describe()));
  auto bytes = whole->host_read();
  if (!bytes) return bytes.status();
  // The part's buffer holds the whole one alive, and with it the file mapping or memory.
  // It is as writable as the whole: the CPU makes its rearranged copies of read-only
  // weights only, so weights converted into memory are not held twice.
  std::byte* data = const_cast<std::byte*>(bytes.value()) + part->byte_offset();
  const size_t size = part->payload_bytes();
  std::shared_ptr<Buffer> own = whole->file_pages() ? Buffer::wrap_file_pages(data, size, whole)
                                                    : Buffer::wrap(data, size, whole, whole->writable());
  return Tensor::view(std::move(own), part->shape(), part->dtype());
}

WeightLoader::WeightLoader(const ModelSource& source, std::filesystem::path path) : path_(std::move(path)) {
  for (const SourceTensor& tensor : source.tensors) by_name_.emplace(tensor.name, &tensor);
}

Result<Tensor> WeightLoader::matrix(const std::string& name, const Shape& shape) const {
  auto tensor = load(name, shape);
  if (!tensor || read_in_place(tensor->dtype())) return tensor;
  return to_f32(tensor.value());
}

Result<Tensor> WeightLoader::f32_vector(const std::string& name, int64_t length) const {
  auto tensor = load(name, Shape{length});
  if (!tensor) return tensor;
  return to_f32(tensor.value());
}

Status WeightLoader::embeddings_and_output(const ModelConfig& config, ModelWeights& model) const {
  const Shape table{config.vocab_size, config.hidden_size};
  EMBER_LOAD(model.token_embd, matrix("token_embd.weight", table));
  if (has("output.weight")) {
    EMBER_LOAD(model.output, matrix("output.weight", table));
  } else {
    model.output = model.token_embd;
  }
  return {};
}

Result<Tensor> WeightLoader::optional_f32_vector(const std::string& name, int64_t length) const {
  if (!has(name)) return Tensor{};
  return f32_vector(name, length);
}

Result<Tensor> WeightLoader::load(const std::string& name, const Shape& shape) const {
  auto found = by_name_.find(name);
  if (found == by_name_.end())
    return invalid_argument(fmt::format("{}: tensor '{}' is missing", path_.string(), name));
  const SourceTensor& source = *found->second;
  if (source.shape != shape)
    return invalid_argument(fmt::format("{}: tensor '{}' is {}; the config needs {}", path_.string(), name,
                                        source.shape.str(), shape.str()));
  return source.load();
}

}  // namespace ember
