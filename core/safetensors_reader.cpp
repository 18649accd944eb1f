#include "ember/safetensors.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/mapped_tensor.h"
#include "core/printable.h"

namespace ember {

namespace {

using Json = nlohmann::ordered_json;

struct DTypeName {
  std::string_view name;
  DType dtype;
};
constexpr DTypeName kSupportedDTypes[] = {{"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}};

uint64_t read_le_u64(const std::byte* at) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(at[i]);
  return value;
}

}  // namespace

class SafetensorsHeaderParser {
 public:
  // A valid header nests three levels (the root, a tensor's entry, its shape).
  static constexpr int kMaxJsonDepth = 8;

  SafetensorsHeaderParser(SafetensorsFile& file, uint64_t data_bytes) : file_(file), data_bytes_(data_bytes) {}

  Status parse(std::string_view header) {
    std::optional<std::string> duplicate;
    bool too_deep = false;
    const Json::parser_callback_t check_keys_and_depth = [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (event == Json::parse_event_t::key && depth == 1 && !keys_.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      // Containers past the limit are discarded unbuilt: the parser itself is iterative,
      // but copying a deeply nested value recurses once per level and can overflow the
      // stack (ordered_json copies values when its entries grow).
      if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
          depth > kMaxJsonDepth) {
        too_deep = true;
        return false;
      }
      return true;
    };
    Json root;
    try {
      root = Json::parse(header.begin(), header.end(), check_keys_and_depth);
    } catch (const Json::exception& error) {
      return corrupt(fmt::format("header is not valid JSON: {}", error.what()));
    }
    if (too_deep) return corrupt(fmt::format("header nests JSON deeper than the limit of {} levels", kMaxJsonDepth));
    if (!root.is_object()) return corrupt(fmt::format("header is a JSON {}, not an object", root.type_name()));
    if (duplicate) return corrupt(fmt::format("header names '{}' twice", printable(*duplicate)));

    for (const auto& [name, entry] : root.items()) {
      if (name == "__metadata__") {
        EMBER_RETURN_IF_ERROR(parse_metadata(entry));
        continue;
      }
      auto info = parse_tensor(name, entry);
      if (!info) return info.status();
      file_.tensors_.push_back(std::move(info.value()));
    }
    return check_overlaps();
  }

 private:
  Status corrupt(std::string_view what) const {
    return {ErrorCode::corrupt_file, fmt::format("{}: {}", file_.path().string(), what)};
  }
  Status corrupt_tensor(std::string_view name, std::string_view what) const {
    return {ErrorCode::corrupt_file, fmt::format("{}: tensor '{}': {}", file_.path().string(), printable(name), what)};
  }

  Status parse_metadata(const Json& entry) {
    if (!entry.is_object()) return corrupt("__metadata__ is not an object of strings");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) return corrupt(fmt::format("__metadata__ value of '{}' is not a string", printable(key)));
      file_.metadata_.emplace_back(key, value.get<std::string>());
    }
    return {};
  }

  Result<SafetensorsTensorInfo> parse_tensor(const std::string& name, const Json& entry) const {
    if (!entry.is_object()) return corrupt_tensor(name, "entry is not an object");
    SafetensorsTensorInfo info;
    info.name = name;

    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) return corrupt_tensor(name, "no dtype string");
    const auto& dtype_text = dtype->get_ref<const std::string&>();
    const auto* known = std::find_if(std::begin(kSupportedDTypes), std::end(kSupportedDTypes),
                                     [&](const DTypeName& d) { return d.name == dtype_text; });
    if (known == std::end(kSupportedDTypes))
      return Status(ErrorCode::unsupported, fmt::format("{}: unsupported dtype {} for tensor '{}' (ember reads F32, F16 "
                                                        "and BF16)", file_.path().string(), printable(dtype_text),
                                                        printable(name)));
    info.dtype = known->dtype;

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) return corrupt_tensor(name, "no shape array");
    if (shape->size() > static_cast<size_t>(kMaxDims))
      return corrupt_tensor(name, fmt::format("shape has {} dimensions; ember supports at most {}", shape->size(), kMaxDims));
    std::vector<int64_t> dims;
    uint64_t elements = 1;
    for (const Json& dim : *shape) {
      if (!dim.is_number_unsigned()) return corrupt_tensor(name, fmt::format("shape entry {} is not a non-negative integer", dim.dump()));
      const auto extent = dim.get<uint64_t>();
      if (extent > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(elements, extent, &elements))
        return corrupt_tensor(name, fmt::format("shape {} overflows 64 bits", shape->dump()));
      dims.push_back(static_cast<int64_t>(extent));
    }
    auto parsed_shape = Shape::from(dims);
    if (!parsed_shape) return corrupt_tensor(name, parsed_shape.status().message());
    info.shape = parsed_shape.value();

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned())
      return corrupt_tensor(name, "data_offsets is not a pair of non-negative integers");
    info.begin = (*offsets)[0].get<uint64_t>();
    info.end = (*offsets)[1].get<uint64_t>();
    if (info.begin > info.end) return corrupt_tensor(name, fmt::format("data_offsets [{}, {}] run backwards", info.begin, info.end));
    if (info.end > data_bytes_)
      return corrupt_tensor(name, fmt::format("data_offsets [{}, {}] end past the data section of {} bytes", info.begin,
                                              info.end, data_bytes_));
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(block_bytes(info.dtype)), &bytes))
      return corrupt_tensor(name, fmt::format("shape {} overflows 64 bits", shape->dump()));
    if (bytes != info.end - info.begin)
      return corrupt_tensor(name, fmt::format("{} {} needs {} bytes but data_offsets [{}, {}] hold {}", dtype_text,
                                              shape->dump(), bytes, info.begin, info.end, info.end - info.begin));
    return info;
  }

  Status check_overlaps() {
    auto& tensors = file_.tensors_;
    std::sort(tensors.begin(), tensors.end(), [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    for (size_t i = 1; i < tensors.size(); ++i)
      if (tensors[i].begin < tensors[i - 1].end)
        return corrupt(fmt::format("tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", printable(tensors[i - 1].name),
                                   tensors[i - 1].begin, tensors[i - 1].end, printable(tensors[i].name), tensors[i].begin,
                                   tensors[i].end));
    return {};
  }

  SafetensorsFile& file_;
  uint64_t data_bytes_;
  std::set<std::string> keys_;
};

Result<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  if (!map) return map.status();
  SafetensorsFile file;
  file.map_ = std::move(map.value());
  const std::span<const std::byte> bytes = file.map_->bytes();
  const std::string name = path.string();
  if (bytes.size() < 8)
    return Status(ErrorCode::corrupt_file, fmt::format("{}: {} bytes is shorter than the 8-byte header length", name, bytes.size()));
  const uint64_t header_bytes = read_le_u64(bytes.data());
  if (header_bytes > bytes.size() - 8)
    return Status(ErrorCode::corrupt_file, fmt::format("{}: header length {} is larger than the {} bytes after it",
                                                       name, header_bytes, bytes.size() - 8));
  if (header_bytes > kMaxSafetensorsHeaderBytes)
    return Status(ErrorCode::corrupt_file, fmt::format("{}: header length {} exceeds the limit of {} bytes", name,
                                                       header_bytes, kMaxSafetensorsHeaderBytes));
  file.data_offset_ = 8 + header_bytes;
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(header_bytes));
  try {
    SafetensorsHeaderParser parser(file, bytes.size() - file.data_offset_);
    EMBER_RETURN_IF_ERROR(parser.parse(header));
    file.by_name_.resize(file.tensors_.size());
    for (uint32_t i = 0; i < file.by_name_.size(); ++i) file.by_name_[i] = i;
    std::sort(file.by_name_.begin(), file.by_name_.end(),
              [&](uint32_t a, uint32_t b) { return file.tensors_[a].name < file.tensors_[b].name; });
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while reading the header", name));
  }
  return file;
}

const SafetensorsTensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](uint32_t index, std::string_view wanted) { return tensors_[index].name < wanted; });
  return it != by_name_.end() && tensors_[*it].name == name ? &tensors_[*it] : nullptr;
}

Result<Tensor> SafetensorsFile::tensor(std::string_view name) const {
  const SafetensorsTensorInfo* info = find(name);
  if (info == nullptr) return invalid_argument(fmt::format("{}: no tensor named '{}'", path().string(), name));
  auto tensor = mapped_tensor(map_, data_offset_ + info->begin, info->end - info->begin, info->shape, info->dtype);
  if (!tensor)
    return Status(tensor.status().code(), fmt::format("{}: tensor '{}': {}", path().string(), name, tensor.status().message()));
  return tensor;
}

namespace {

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos;
}

// weight_map in file order: (tensor, shard file name).
Result<std::vector<std::pair<std::string, std::string>>> read_weight_map(const std::filesystem::path& index_path) {
  const std::string name = index_path.string();
  auto map = MappedFile::open(index_path);
  if (!map) return map.status();
  const auto bytes = map.value()->bytes();
  Json index;
  try {
    index = Json::parse(reinterpret_cast<const char*>(bytes.data()), reinterpret_cast<const char*>(bytes.data() + bytes.size()));
  } catch (const Json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: not valid JSON: {}", name, error.what()));
  }
  const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
    return Status(ErrorCode::corrupt_file, fmt::format("{}: no weight_map object", name));
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>()))
      return Status(ErrorCode::corrupt_file, fmt::format("{}: weight_map entry '{}' is not a file name in the folder: {}",
                                                         name, tensor, shard.dump()));
    entries.emplace_back(tensor, shard.get<std::string>());
  }
  return entries;
}

}  // namespace

Result<SafetensorsModel> SafetensorsModel::open(const std::filesystem::path& folder) {
  SafetensorsModel model;
  model.folder_ = folder;
  const auto index_path = folder / "model.safetensors.index.json";
  const auto single_path = folder / "model.safetensors";
  std::error_code ignored;
  try {
    if (std::filesystem::exists(index_path, ignored)) {
      auto weight_map = read_weight_map(index_path);
      if (!weight_map) return weight_map.status();
      std::vector<std::string> shard_names;
      for (const auto& [tensor, shard] : weight_map.value()) {
        auto known = std::find(shard_names.begin(), shard_names.end(), shard);
        if (known == shard_names.end()) {
          auto file = SafetensorsFile::open(folder / shard);
          if (!file) return file.status();
          model.files_.push_back(std::move(file.value()));
          shard_names.push_back(shard);
          known = shard_names.end() - 1;
        }
        const auto file_index = static_cast<size_t>(known - shard_names.begin());
        if (model.files_[file_index].find(tensor) == nullptr)
          return Status(ErrorCode::corrupt_file, fmt::format("{}: lists tensor '{}' in {}, which does not hold it",
                                                             index_path.string(), tensor, shard));
        model.names_.push_back(tensor);
        model.locations_.push_back({tensor, file_index});
      }
    } else if (std::filesystem::exists(single_path, ignored)) {
      auto file = SafetensorsFile::open(single_path);
      if (!file) return file.status();
      for (const SafetensorsTensorInfo& info : file->tensors()) {
        model.names_.push_back(info.name);
        model.locations_.push_back({info.name, 0});
      }
      model.files_.push_back(std::move(file.value()));
    } else {
      return Status(ErrorCode::io_error, fmt::format("{}: no model.safetensors or model.safetensors.index.json",
                                                     folder.string()));
    }
    std::sort(model.locations_.begin(), model.locations_.end(),
              [](const Location& a, const Location& b) { return a.name < b.name; });
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while opening the model", folder.string()));
  }
  return model;
}

const SafetensorsModel::Location* SafetensorsModel::locate(std::string_view name) const {
  auto it = std::lower_bound(locations_.begin(), locations_.end(), name,
                             [](const Location& location, std::string_view wanted) { return location.name < wanted; });
  return it != locations_.end() && it->name == name ? &*it : nullptr;
}

const SafetensorsTensorInfo* SafetensorsModel::find(std::string_view name) const {
  const Location* location = locate(name);
  return location == nullptr ? nullptr : files_[location->file].find(name);
}

Result<Tensor> SafetensorsModel::tensor(std::string_view name) const {
  const Location* location = locate(name);
  if (location == nullptr) return invalid_argument(fmt::format("{}: no tensor named '{}'", folder_.string(), name));
  return files_[location->file].tensor(name);
}

}  // namespace ember
