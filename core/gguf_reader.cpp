#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <unordered_set>

#include <fmt/format.h>

#include "core/mapped_tensor.h"
#include "core/printable.h"
#include "ember/gguf.h"

namespace ember {

// GGUF v2 and v3 store fields little-endian; reading them with memcpy assumes the host does too.
static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
// The fewest bytes an entry can take; counts are checked against them before anything
// is reserved, so a forged count cannot make us allocate more than the file could hold.
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;        // empty key, type, one byte of value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, one dim, type, offset

std::optional<uint64_t> fixed_size(GgufType type) {
  switch (type) {
    case GgufType::uint8: case GgufType::int8: case GgufType::boolean: return 1;
    case GgufType::uint16: case GgufType::int16: return 2;
    case GgufType::uint32: case GgufType::int32: case GgufType::float32: return 4;
    case GgufType::uint64: case GgufType::int64: case GgufType::float64: return 8;
    case GgufType::string: case GgufType::array: return std::nullopt;
  }
  return std::nullopt;
}

uint64_t min_value_bytes(GgufType type) {
  if (type == GgufType::string) return 8;
  if (type == GgufType::array) return 4 + 8;
  return *fixed_size(type);
}

bool is_known_type(uint32_t id) { return id <= static_cast<uint32_t>(GgufType::float64); }

}  // namespace

// Walks the map with a cursor that never reads past its end; every failure names the
// file and, through `where`, the key or tensor being read.
class GgufParser {
 public:
  GgufParser(std::shared_ptr<MappedFile> map, const GgufLimits& limits)
      : map_(std::move(map)), bytes_(map_->bytes()), name_(map_->path().string()), limits_(limits) {}

  Result<GgufFile> parse() {
    GgufFile file;
    file.map_ = map_;
    EMBER_RETURN_IF_ERROR(parse_header(file));
    EMBER_RETURN_IF_ERROR(parse_metadata(file));
    EMBER_RETURN_IF_ERROR(parse_alignment(file));
    EMBER_RETURN_IF_ERROR(parse_tensor_infos(file));
    EMBER_RETURN_IF_ERROR(check_data_section(file));
    return file;
  }

 private:
  Status corrupt(const std::string& what) const { return {ErrorCode::corrupt_file, fmt::format("{}: {}", name_, what)}; }

  uint64_t remaining() const { return bytes_.size() - position_; }

  Status need(uint64_t count, std::string_view what) const {
    if (count > remaining())
      return corrupt(fmt::format("{} at byte {} needs {} bytes, past the end of the file ({} bytes)", what, position_,
                                 count, bytes_.size()));
    return {};
  }

  template <typename T>
  Status read(T& out, std::string_view what) {
    EMBER_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(&out, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return {};
  }

  Status read_string(std::string& out, std::string_view what) {
    uint64_t length = 0;
    EMBER_RETURN_IF_ERROR(read(length, what));
    if (length > limits_.max_string_bytes)
      return corrupt(fmt::format("{}: string length {} exceeds the limit of {} bytes", what, length,
                                 limits_.max_string_bytes));
    if (length > remaining())
      return corrupt(fmt::format("{}: string length {} at byte {} runs past the end of the file ({} bytes)", what,
                                 length, position_, bytes_.size()));
    out.assign(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return {};
  }

  // A count of entries that each take at least `min_bytes`, checked against the limit
  // and against what the file has left.
  Status check_count(uint64_t count, uint64_t limit, uint64_t min_bytes, std::string_view what) const {
    if (count > limit) return corrupt(fmt::format("{} {} exceeds the limit of {}", what, count, limit));
    if (count > remaining() / min_bytes)
      return corrupt(fmt::format("{} {} needs at least {} bytes each, but only {} bytes remain before the end of the file",
                                 what, count, min_bytes, remaining()));
    return {};
  }

  Status read_type(GgufType& type, std::string_view what) {
    uint32_t id = 0;
    EMBER_RETURN_IF_ERROR(read(id, what));
    if (!is_known_type(id)) return corrupt(fmt::format("{}: unknown value type {}", what, id));
    type = static_cast<GgufType>(id);
    return {};
  }

  template <typename T>
  Status read_scalar(GgufValue& out, std::string_view what) {
    T value{};
    EMBER_RETURN_IF_ERROR(read(value, what));
    out = GgufValue(GgufValue::Storage(value));
    return {};
  }

  // `depth` counts the arrays enclosing this value.
  Status read_value(GgufType type, int depth, GgufValue& out, std::string_view what) {
    switch (type) {
      case GgufType::uint8: return read_scalar<uint8_t>(out, what);
      case GgufType::int8: return read_scalar<int8_t>(out, what);
      case GgufType::uint16: return read_scalar<uint16_t>(out, what);
      case GgufType::int16: return read_scalar<int16_t>(out, what);
      case GgufType::uint32: return read_scalar<uint32_t>(out, what);
      case GgufType::int32: return read_scalar<int32_t>(out, what);
      case GgufType::float32: return read_scalar<float>(out, what);
      case GgufType::uint64: return read_scalar<uint64_t>(out, what);
      case GgufType::int64: return read_scalar<int64_t>(out, what);
      case GgufType::float64: return read_scalar<double>(out, what);
      case GgufType::boolean: {
        uint8_t byte = 0;
        EMBER_RETURN_IF_ERROR(read(byte, what));
        if (byte > 1) return corrupt(fmt::format("{}: bool value {} is neither 0 nor 1", what, byte));
        out = GgufValue::boolean(byte == 1);
        return {};
      }
      case GgufType::string: {
        std::string text;
        EMBER_RETURN_IF_ERROR(read_string(text, what));
        out = GgufValue::string(std::move(text));
        return {};
      }
      case GgufType::array: return read_array(depth, out, what);
    }
    return corrupt(fmt::format("{}: unknown value type {}", what, static_cast<uint32_t>(type)));
  }

  Status read_array(int depth, GgufValue& out, std::string_view what) {
    if (depth >= limits_.max_array_depth)
      return corrupt(fmt::format("{}: arrays nested deeper than the limit of {}", what, limits_.max_array_depth));
    GgufType element_type{};
    EMBER_RETURN_IF_ERROR(read_type(element_type, what));
    uint64_t count = 0;
    EMBER_RETURN_IF_ERROR(read(count, what));
    EMBER_RETURN_IF_ERROR(check_count(count, limits_.max_array_elements, min_value_bytes(element_type),
                                      fmt::format("{}: array of {} element count", what, gguf_type_name(element_type))));
    std::vector<GgufValue> values(count);
    for (GgufValue& value : values) EMBER_RETURN_IF_ERROR(read_value(element_type, depth + 1, value, what));
    out = GgufValue::array(element_type, std::move(values));
    return {};
  }

  Status parse_header(GgufFile& file) {
    // The magic first, so a short file of another kind is named as such, not as truncated.
    if (bytes_.size() >= sizeof kMagic && std::memcmp(bytes_.data(), kMagic, sizeof kMagic) != 0)
      return corrupt("not a GGUF file: bad magic");
    EMBER_RETURN_IF_ERROR(need(kHeaderBytes, "header"));
    position_ = sizeof kMagic;
    uint32_t version = 0;
    EMBER_RETURN_IF_ERROR(read(version, "version"));
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped == 2 || swapped == 3)
        return {ErrorCode::unsupported, fmt::format("{}: unsupported GGUF version {} (a big-endian file)", name_, version)};
      return {ErrorCode::unsupported, fmt::format("{}: unsupported GGUF version {}", name_, version)};
    }
    file.version_ = version;
    EMBER_RETURN_IF_ERROR(read(tensor_count_, "tensor count"));
    EMBER_RETURN_IF_ERROR(read(key_value_count_, "metadata count"));
    EMBER_RETURN_IF_ERROR(check_count(tensor_count_, limits_.max_tensors, kMinTensorInfoBytes, "tensor count"));
    return check_count(key_value_count_, limits_.max_metadata_entries, kMinKeyValueBytes, "metadata key count");
  }

  Status parse_metadata(GgufFile& file) {
    file.metadata_.resize(key_value_count_);
    std::unordered_set<std::string_view> seen;
    seen.reserve(key_value_count_);
    for (uint64_t index = 0; index < key_value_count_; ++index) {
      auto& [key, value] = file.metadata_[index];
      EMBER_RETURN_IF_ERROR(read_string(key, fmt::format("metadata key #{}", index)));
      if (!is_valid_utf8(key)) return corrupt(fmt::format("metadata key #{} is not valid UTF-8", index));
      // Views into the keys stay valid: metadata_ was sized once and its strings never move.
      if (!seen.insert(key).second) return corrupt(fmt::format("duplicate metadata key '{}'", printable(key)));
      const std::string where = fmt::format("metadata '{}'", printable(key));
      GgufType type{};
      EMBER_RETURN_IF_ERROR(read_type(type, where));
      EMBER_RETURN_IF_ERROR(read_value(type, 0, value, where));
    }
    return {};
  }

  Status parse_alignment(GgufFile& file) {
    file.alignment_ = kDefaultAlignment;
    const GgufValue* value = file.find("general.alignment");
    if (value == nullptr) return {};
    if (value->type() != GgufType::uint32)
      return corrupt(fmt::format("general.alignment is a {}, not a uint32", gguf_type_name(value->type())));
    const uint64_t alignment = *value->as_uint();
    if (!std::has_single_bit(alignment))
      return corrupt(fmt::format("general.alignment {} is not a nonzero power of two", alignment));
    file.alignment_ = alignment;
    return {};
  }

  Status parse_tensor_info(GgufTensorInfo& info, uint64_t index) {
    EMBER_RETURN_IF_ERROR(read_string(info.name, fmt::format("tensor #{} name", index)));
    if (!is_valid_utf8(info.name)) return corrupt(fmt::format("tensor #{} name is not valid UTF-8", index));
    const std::string where = fmt::format("tensor '{}'", printable(info.name));
    uint32_t n_dims = 0;
    EMBER_RETURN_IF_ERROR(read(n_dims, where));
    if (n_dims < 1 || n_dims > kMaxDims)
      return corrupt(fmt::format("{}: {} dimensions; GGUF tensors have 1 to {}", where, n_dims, kMaxDims));
    std::array<int64_t, kMaxDims> dims{};
    int64_t elements = 1;
    // GGUF lists the fastest-varying dimension first; ember's Shape lists it last.
    for (uint32_t axis = 0; axis < n_dims; ++axis) {
      uint64_t dim = 0;
      EMBER_RETURN_IF_ERROR(read(dim, where));
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return corrupt(fmt::format("{}: dimension {} is {}, too large", where, axis, dim));
      dims[n_dims - 1 - axis] = static_cast<int64_t>(dim);
      if (__builtin_mul_overflow(elements, static_cast<int64_t>(dim), &elements))
        return corrupt(fmt::format("{}: the element count of its dimensions overflows 64 bits", where));
    }
    uint32_t ggml_type = 0;
    EMBER_RETURN_IF_ERROR(read(ggml_type, where));
    const std::optional<DType> dtype = dtype_from_ggml_type(ggml_type);
    if (!dtype) return {ErrorCode::unsupported, fmt::format("{}: {}: unsupported ggml type {}", name_, where, ggml_type)};
    info.dtype = *dtype;
    const int64_t row_length = dims[n_dims - 1];
    if (row_length % block_elements(info.dtype) != 0)
      return corrupt(fmt::format("{}: rows of {} elements are not whole {} blocks of {}", where, row_length,
                                 dtype_name(info.dtype), block_elements(info.dtype)));
    int64_t bytes = 0;
    if (__builtin_mul_overflow(elements / block_elements(info.dtype), block_bytes(info.dtype), &bytes))
      return corrupt(fmt::format("{}: its byte size overflows 64 bits", where));
    info.bytes = static_cast<uint64_t>(bytes);
    info.shape = Shape::from(std::span<const int64_t>(dims.data(), n_dims)).value();
    return read(info.offset, where);
  }

  Status parse_tensor_infos(GgufFile& file) {
    file.tensors_.resize(tensor_count_);
    std::unordered_set<std::string_view> seen;
    seen.reserve(tensor_count_);
    for (uint64_t index = 0; index < tensor_count_; ++index) {
      GgufTensorInfo& info = file.tensors_[index];
      EMBER_RETURN_IF_ERROR(parse_tensor_info(info, index));
      if (!seen.insert(info.name).second)
        return corrupt(fmt::format("duplicate tensor name '{}'", printable(info.name)));
    }
    return {};
  }

  Status check_data_section(GgufFile& file) {
    const uint64_t alignment = file.alignment_;
    const uint64_t data_offset = (position_ + alignment - 1) / alignment * alignment;
    if (data_offset > bytes_.size())
      return corrupt(fmt::format("the data section starts at byte {}, past the end of the file ({} bytes)", data_offset,
                                 bytes_.size()));
    file.data_offset_ = data_offset;
    const uint64_t data_bytes = bytes_.size() - data_offset;
    for (const GgufTensorInfo& info : file.tensors_) {
      if (info.offset % alignment != 0)
        return corrupt(fmt::format("tensor '{}': offset {} is not aligned to {} bytes", printable(info.name), info.offset,
                                   alignment));
      uint64_t end = 0;
      if (__builtin_add_overflow(info.offset, info.bytes, &end) || end > data_bytes)
        return corrupt(fmt::format("tensor '{}': data [offset {}, {} bytes] ends past the end of the file ({} bytes)",
                                   printable(info.name), info.offset, info.bytes, bytes_.size()));
    }
    std::vector<size_t> order(file.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    const auto& tensors = file.tensors_;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::pair(tensors[a].offset, tensors[a].bytes) < std::pair(tensors[b].offset, tensors[b].bytes);
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const GgufTensorInfo& before = tensors[order[i - 1]];
      const GgufTensorInfo& after = tensors[order[i]];
      if (after.offset < before.offset + before.bytes)
        return corrupt(fmt::format("tensors '{}' [offset {}, {} bytes] and '{}' [offset {}, {} bytes] overlap",
                                   printable(before.name), before.offset, before.bytes, printable(after.name),
                                   after.offset, after.bytes));
    }
    return {};
  }

  std::shared_ptr<MappedFile> map_;
  std::span<const std::byte> bytes_;
  std::string name_;
  GgufLimits limits_;
  uint64_t position_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t key_value_count_ = 0;
};

Result<GgufFile> GgufFile::open(const std::filesystem::path& path, const GgufLimits& limits) {
  auto map = MappedFile::open(path);
  if (!map) return map.status();
  try {
    return GgufParser(std::move(map.value()), limits).parse();
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while reading the GGUF metadata", path.string()));
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [name, value] : metadata_)
    if (name == key) return &value;
  return nullptr;
}

namespace {

Status missing_key(const std::filesystem::path& path, std::string_view key) {
  return invalid_argument(fmt::format("{}: metadata key '{}' is missing", path.string(), key));
}

Status wrong_type(const std::filesystem::path& path, std::string_view key, const GgufValue& value,
                  std::string_view wanted) {
  return {ErrorCode::corrupt_file, fmt::format("{}: metadata '{}' is a {}, not {}", path.string(), key,
                                               gguf_type_name(value.type()), wanted)};
}

}  // namespace

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return missing_key(path(), key);
  if (const std::optional<int64_t> number = value->as_int()) return *number;
  return wrong_type(path(), key, *value, "an integer that fits int64");
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return missing_key(path(), key);
  if (const std::optional<double> number = value->as_float()) return *number;
  return wrong_type(path(), key, *value, "a number");
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return missing_key(path(), key);
  if (const std::string* text = value->as_string()) return *text;
  return wrong_type(path(), key, *value, "a string");
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensorInfo& info : tensors_)
    if (info.name == name) return &info;
  return nullptr;
}

Result<Tensor> GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (info == nullptr) return invalid_argument(fmt::format("{}: no tensor named '{}'", path().string(), name));
  auto view = mapped_tensor(map_, data_offset_ + info->offset, info->bytes, info->shape, info->dtype);
  if (!view) return Status(view.status().code(), fmt::format("{}: tensor '{}': {}", path().string(), name, view.status().message()));
  return view;
}

}  // namespace ember
