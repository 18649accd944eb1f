// A model to convert, whatever file it came from: GGUF-named tensors that load on
// demand, and the GGUF metadata (model and tokenizer keys) that describe it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ember/gguf.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

struct SourceTensor {
  std::string name;  // GGUF name
  Shape shape;
  DType dtype = DType::f32;
  std::function<Result<Tensor>()> load;  // the tensor in GGUF layout (a view where possible)
};

struct ModelSource {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<SourceTensor> tensors;
  int64_t layer_count = 0;
  bool output_is_tied = false;  // no output.weight: token_embd.weight doubles as the output matrix
};

// A Hugging Face folder (config.json, safetensors, tokenizer.json) or a GGUF file.
Result<ModelSource> open_model_source(const std::filesystem::path& input);

}  // namespace ember
