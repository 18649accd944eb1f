// GGUF v3 files (the llama.cpp model format): metadata, tensor table, aligned data.
//
// GgufFile::open maps the file and validates all of it before returning: magic,
// version (2 or 3), every count and length against the bytes that remain, value
// types, nesting depth, dimension products without overflow, each tensor's type,
// offset, alignment and size inside the data section, duplicate names and keys. Any
// failure is an error naming the file and the key or tensor. Tensors are read-only,
// zero-copy views into the map.
//
// Dimension order: GGUF lists dims fastest-varying first (ne0 = row length); ember's
// Shape lists them outermost first. A GGUF tensor with ne = [4096, 11008] is an ember
// Shape {11008, 4096}: 11008 rows of 4096.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ember/dtype.h"
#include "ember/mapped_file.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

// GGUF metadata value types, numbered as in the specification.
enum class GgufType : uint32_t {
  uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, boolean = 7,
  string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12,
};
std::string_view gguf_type_name(GgufType type);

class GgufValue;
struct GgufArray {
  GgufType element_type = GgufType::uint8;
  std::vector<GgufValue> values;
};

// One metadata value with its exact GGUF type, so a file read and written back keeps it.
class GgufValue {
 public:
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               GgufArray, uint64_t, int64_t, double>;
  GgufValue() = default;
  explicit GgufValue(Storage storage) : storage_(std::move(storage)) {}
  static GgufValue u32(uint32_t v) { return GgufValue(Storage(v)); }
  static GgufValue i32(int32_t v) { return GgufValue(Storage(v)); }
  static GgufValue u64(uint64_t v) { return GgufValue(Storage(v)); }
  static GgufValue f32(float v) { return GgufValue(Storage(v)); }
  static GgufValue boolean(bool v) { return GgufValue(Storage(v)); }
  static GgufValue string(std::string v) { return GgufValue(Storage(std::move(v))); }
  static GgufValue array(GgufType element_type, std::vector<GgufValue> values) {
    return GgufValue(Storage(GgufArray{element_type, std::move(values)}));
  }
  static GgufValue strings(const std::vector<std::string>& values);

  GgufType type() const { return static_cast<GgufType>(storage_.index()); }
  const Storage& storage() const { return storage_; }
  // Conversions that succeed only when the value fits: any integer type to int64 /
  // uint64, any numeric type to double, bool, string, array.
  std::optional<int64_t> as_int() const;
  std::optional<uint64_t> as_uint() const;
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const { return std::get_if<std::string>(&storage_); }
  const GgufArray* as_array() const { return std::get_if<GgufArray>(&storage_); }

 private:
  Storage storage_;
};
static_assert(std::variant_size_v<GgufValue::Storage> == 13, "one alternative per GgufType, in its order");

struct GgufTensorInfo {
  std::string name;
  Shape shape;            // ember order: outermost first
  DType dtype = DType::f32;
  uint64_t offset = 0;    // from the start of the data section
  uint64_t bytes = 0;
};

// Keys and tensor names must be valid UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF); the reader and the writer both check with this.
bool is_valid_utf8(std::string_view text);

// GGML type ids of the GGUF tensor table; nullopt for a type ember cannot hold.
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);
uint32_t ggml_type_of(DType type);

// Limits checked before anything sized from the file is allocated (docs/SECURITY.md).
struct GgufLimits {
  uint64_t max_tensors = 1 << 20;
  uint64_t max_metadata_entries = 1 << 20;
  uint64_t max_string_bytes = 1 << 26;
  uint64_t max_array_elements = 1 << 26;
  int max_array_depth = 4;
};

class GgufFile {
 public:
  static Result<GgufFile> open(const std::filesystem::path& path, const GgufLimits& limits = {});

  const std::filesystem::path& path() const { return map_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // Typed lookups whose errors name the file and key (missing, or the wrong type).
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // A read-only view into the map; the error names the file and tensor.
  Result<Tensor> tensor(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> map_;
  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  friend class GgufParser;
};

// Builds a GGUF file. Tensor bytes are produced one tensor at a time while writing, so
// a model larger than memory can be converted. The file appears only when complete:
// written to a temporary file beside the target, flushed, then renamed over it.
class GgufWriter {
 public:
  // Fills exactly the tensor's byte size (row_bytes(dtype, elements)).
  using TensorSource = std::function<Status(std::span<std::byte> out)>;

  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}
  // Keys keep insertion order; setting a key again replaces its value in place.
  void set(std::string key, GgufValue value);
  // Errors: duplicate name, a row length that is not whole blocks of dtype.
  Status add_tensor(std::string name, const Shape& shape, DType dtype, TensorSource source);
  // A tensor copied from an existing one (converted to nothing: dtype and shape kept).
  Status add_tensor(std::string name, const Tensor& tensor);

  Status write(const std::filesystem::path& path) const;

 private:
  struct PendingTensor {
    std::string name;
    Shape shape;
    DType dtype;
    TensorSource source;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace ember
