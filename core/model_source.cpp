#include "core/model_source.h"

#include <fmt/format.h>

#include "ember/chat_template.h"
#include "ember/hf_to_gguf.h"
#include "ember/model_config.h"
#include "ember/safetensors.h"

namespace ember {
namespace {

Result<ModelSource> open_gguf(const std::filesystem::path& path) {
  auto opened = GgufFile::open(path);
  if (!opened) return opened.status();
  auto file = std::make_shared<GgufFile>(std::move(opened.value()));
  auto architecture = file->get_string("general.architecture");
  if (!architecture) return architecture.status();
  auto layers = file->get_int(architecture.value() + ".block_count");
  if (!layers) return layers.status();

  ModelSource source;
  source.metadata = file->metadata();
  source.layer_count = layers.value();
  source.output_is_tied = file->find_tensor("output.weight") == nullptr;
  for (const GgufTensorInfo& info : file->tensors())
    source.tensors.push_back({info.name, info.shape, info.dtype, [file, name = info.name] { return file->tensor(name); }});
  return source;
}

Result<ModelSource> open_hugging_face(const std::filesystem::path& folder) {
  auto config = read_model_config(folder / "config.json");
  if (!config) return config.status();
  auto opened = SafetensorsModel::open(folder);
  if (!opened) return opened.status();
  auto model = std::make_shared<SafetensorsModel>(std::move(opened.value()));
  auto mappings = map_hf_tensors(config.value(), model->tensor_names());
  if (!mappings) return mappings.status();

  ModelSource source;
  source.metadata = gguf_metadata(config.value());
  const auto tokenizer_path = folder / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) {
    auto tokenizer = tokenizer_metadata_from_json(tokenizer_path, config.value());
    if (!tokenizer) return tokenizer.status();
    source.metadata.insert(source.metadata.end(), tokenizer->begin(), tokenizer->end());
  }
  const auto tokenizer_config_path = folder / "tokenizer_config.json";
  if (std::filesystem::exists(tokenizer_config_path)) {
    auto chat_template = read_hf_chat_template(tokenizer_config_path);
    if (!chat_template) return chat_template.status();
    if (chat_template.value())
      source.metadata.emplace_back(kChatTemplateKey, GgufValue::string(std::move(**chat_template)));
  }
  source.layer_count = config->layer_count;
  source.output_is_tied = config->tie_word_embeddings;
  for (const TensorMapping& mapping : mappings.value()) {
    const SafetensorsTensorInfo* info = model->find(mapping.hf_name);
    Shape shape = info->shape;
    if (mapping.transform == TensorTransform::transpose && shape.rank() == 2) shape = Shape{shape[1], shape[0]};
    source.tensors.push_back({mapping.gguf_name, shape, info->dtype, [model, mapping]() -> Result<Tensor> {
                                auto tensor = model->tensor(mapping.hf_name);
                                if (!tensor) return tensor.status();
                                return materialize(tensor.value(), mapping);
                              }});
  }
  return source;
}

}  // namespace

Result<ModelSource> open_model_source(const std::filesystem::path& input) {
  std::error_code error;
  if (std::filesystem::is_directory(input, error)) return open_hugging_face(input);
  if (!std::filesystem::exists(input, error))
    return Status(ErrorCode::io_error, fmt::format("{}: no such file or folder", input.string()));
  return open_gguf(input);
}

}  // namespace ember
