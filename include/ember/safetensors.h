// Hugging Face safetensors files: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the data section that the offsets count from.
//
// SafetensorsFile::open maps the file and validates the whole header before returning:
// the header length against the file and a 100 MiB cap, JSON that is an object without
// duplicate keys, each tensor's dtype (F32, F16, BF16: the types ember computes in),
// rank (at most 4), element count without overflow, byte size equal to end - begin,
// offsets inside the data section and no two tensors overlapping. Errors name the file
// and the tensor.
//
// Tensors are read-only zero-copy views into the map, which they keep alive. Shapes are
// outermost first, as ember's (no reversal, unlike GGUF).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/dtype.h"
#include "ember/mapped_file.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} << 20;

struct SafetensorsTensorInfo {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  uint64_t begin = 0;  // from the start of the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_->path(); }
  uint64_t data_offset() const { return data_offset_; }
  // In data order (ascending begin).
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  const SafetensorsTensorInfo* find(std::string_view name) const;
  // "__metadata__", in file order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

  // A read-only view into the map. The format does not align tensor data, so a tensor
  // whose bytes are not aligned to its element size comes back as an aligned copy
  // (typed loads on a misaligned address are undefined behaviour).
  Result<Tensor> tensor(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> map_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::vector<uint32_t> by_name_;  // indices into tensors_, sorted by name
  std::vector<std::pair<std::string, std::string>> metadata_;
  friend class SafetensorsHeaderParser;
};

// The weights of a Hugging Face model folder: `model.safetensors`, or the shards that
// `model.safetensors.index.json` lists in its weight_map (shard names must be plain
// file names inside the folder). Every tensor the index names must be in its shard.
class SafetensorsModel {
 public:
  static Result<SafetensorsModel> open(const std::filesystem::path& folder);

  const std::filesystem::path& folder() const { return folder_; }
  // Single file: in data order. Sharded: in the index's weight_map order.
  const std::vector<std::string>& tensor_names() const { return names_; }
  const SafetensorsTensorInfo* find(std::string_view name) const;
  // As SafetensorsFile::tensor; the error names the folder when no shard holds `name`.
  Result<Tensor> tensor(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  struct Location {
    std::string name;
    size_t file = 0;
  };
  const Location* locate(std::string_view name) const;

  std::filesystem::path folder_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> names_;
  std::vector<Location> locations_;  // sorted by name
};

}  // namespace ember
