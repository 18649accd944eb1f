#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "ember/gguf.h"

namespace ember {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr char kAlignmentKey[] = "general.alignment";
// Padding is written from one static block of zeros of this size.
constexpr size_t kZeroPadding = 4096;

// Header, metadata and tensor table, assembled in memory before anything is written.
class ByteSink {
 public:
  template <typename T>
  void put(T value) {
    const auto* raw = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), raw, raw + sizeof(T));
  }
  void put_string(std::string_view text) {
    put<uint64_t>(text.size());
    const auto* raw = reinterpret_cast<const std::byte*>(text.data());
    bytes_.insert(bytes_.end(), raw, raw + text.size());
  }
  void put_value(const GgufValue& value) {
    std::visit(
        [this](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(v);
          } else if constexpr (std::is_same_v<T, GgufArray>) {
            put<uint32_t>(static_cast<uint32_t>(v.element_type));
            put<uint64_t>(v.values.size());
            for (const GgufValue& element : v.values) put_value(element);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(v ? 1 : 0);
          } else {
            put<T>(v);
          }
        },
        value.storage());
  }
  void pad_to(uint64_t alignment) { bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment); }
  const std::vector<std::byte>& bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

// Arrays must hold only their declared element type, or the file would not parse back.
Status check_value(const GgufValue& value, std::string_view key) {
  const GgufArray* array = value.as_array();
  if (array == nullptr) return {};
  for (size_t index = 0; index < array->values.size(); ++index) {
    const GgufValue& element = array->values[index];
    if (element.type() != array->element_type)
      return invalid_argument(fmt::format("metadata '{}': array of {} holds a {} at index {}", key,
                                          gguf_type_name(array->element_type), gguf_type_name(element.type()), index));
    EMBER_RETURN_IF_ERROR(check_value(element, key));
  }
  return {};
}

// The temporary file beside the target: removed unless commit() renamed it into place.
class TemporaryFile {
 public:
  explicit TemporaryFile(std::filesystem::path target) : target_(std::move(target)) {}
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  Status create() {
    const std::filesystem::path folder = target_.has_parent_path() ? target_.parent_path() : ".";
    std::string pattern = (folder / fmt::format(".{}.tmp-XXXXXX", target_.filename().string())).string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) {
      if (errno == ENOENT) return failure(fmt::format("the folder {} does not exist", folder.string()));
      return failure(fmt::format("cannot create a temporary file in {}: {}", folder.string(), std::strerror(errno)));
    }
    path_ = pattern;
    // mkstemp creates the file 0600; a model file should be as readable as the one it
    // replaces, or as an ordinary new file.
    struct stat existing {};
    const mode_t mode = ::stat(target_.c_str(), &existing) == 0 ? (existing.st_mode & 07777) : 0644;
    if (::fchmod(fd_, mode) != 0) return failure(fmt::format("cannot set permissions: {}", std::strerror(errno)));
    return {};
  }

  Status write(const std::byte* data, size_t bytes) {
    while (bytes > 0) {
      const ssize_t written = ::write(fd_, data, bytes);
      if (written < 0) {
        if (errno == EINTR) continue;
        return failure(fmt::format("write failed: {}", std::strerror(errno)));
      }
      if (written == 0) return failure("write failed: no bytes written");
      data += written;
      bytes -= static_cast<size_t>(written);
    }
    return {};
  }

  Status write_zeros(uint64_t bytes) {
    static constexpr std::byte zeros[kZeroPadding] = {};
    while (bytes > 0) {
      const size_t piece = static_cast<size_t>(std::min<uint64_t>(bytes, kZeroPadding));
      EMBER_RETURN_IF_ERROR(write(zeros, piece));
      bytes -= piece;
    }
    return {};
  }

  Status commit() {
    if (::fsync(fd_) != 0) return failure(fmt::format("fsync failed: {}", std::strerror(errno)));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return failure(fmt::format("close failed: {}", std::strerror(errno)));
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      return failure(fmt::format("cannot rename the temporary file into place: {}", std::strerror(errno)));
    path_.clear();
    sync_folder();
    return {};
  }

  Status failure(const std::string& what) const {
    return {ErrorCode::io_error, fmt::format("{}: {}", target_.string(), what)};
  }

 private:
  // Makes the rename itself durable. The new file is already complete and in place, so
  // a folder that refuses fsync costs only durability across a power loss, not the write.
  void sync_folder() const {
    const std::filesystem::path folder = target_.has_parent_path() ? target_.parent_path() : ".";
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    static_cast<void>(::fsync(fd));
    ::close(fd);
  }

  std::filesystem::path target_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  for (auto& [existing, stored] : metadata_) {
    if (existing == key) {
      stored = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status GgufWriter::add_tensor(std::string name, const Shape& shape, DType dtype, TensorSource source) {
  if (!is_valid_utf8(name)) return invalid_argument(fmt::format("tensor name '{}' is not valid UTF-8", name));
  for (const PendingTensor& pending : tensors_)
    if (pending.name == name) return invalid_argument(fmt::format("duplicate tensor name '{}'", name));
  for (int64_t dim : shape.dims())
    if (dim < 0) return invalid_argument(fmt::format("tensor '{}': shape {} has a negative dimension", name, shape.str()));
  const int64_t row_length = shape.rank() == 0 ? 1 : shape[shape.rank() - 1];
  if (row_length % block_elements(dtype) != 0)
    return invalid_argument(fmt::format("tensor '{}': rows of {} elements are not whole {} blocks of {}", name, row_length,
                                        dtype_name(dtype), block_elements(dtype)));
  tensors_.push_back({std::move(name), shape, dtype, std::move(source)});
  return {};
}

Status GgufWriter::add_tensor(std::string name, const Tensor& tensor) {
  if (!tensor.defined()) return invalid_argument(fmt::format("tensor '{}' is undefined", name));
  return add_tensor(std::move(name), tensor.shape(), tensor.dtype(), [tensor](std::span<std::byte> out) -> Status {
    auto dense = tensor.contiguous();
    if (!dense) return dense.status();
    auto bytes = dense->read<std::byte>();
    if (!bytes) return bytes.status();
    std::memcpy(out.data(), bytes.value(), out.size());
    return {};
  });
}

Status GgufWriter::write(const std::filesystem::path& path) const {
  const std::string target = path.string();
  if (!std::has_single_bit(alignment_) || alignment_ > UINT32_MAX)
    return invalid_argument(fmt::format("{}: alignment {} is not a power of two that fits a uint32", target, alignment_));
  try {
    // The alignment given to the constructor is the one the offsets follow, so it is
    // the value recorded, replacing any general.alignment copied from another file.
    std::vector<std::pair<std::string, GgufValue>> metadata = metadata_;
    auto recorded = std::find_if(metadata.begin(), metadata.end(), [](const auto& kv) { return kv.first == kAlignmentKey; });
    if (recorded != metadata.end()) recorded->second = GgufValue::u32(static_cast<uint32_t>(alignment_));
    else if (alignment_ != kDefaultAlignment) metadata.emplace_back(kAlignmentKey, GgufValue::u32(static_cast<uint32_t>(alignment_)));

    ByteSink head;
    head.put<uint32_t>(0x46554747);  // "GGUF" read as a little-endian uint32
    head.put<uint32_t>(3);
    head.put<uint64_t>(tensors_.size());
    head.put<uint64_t>(metadata.size());
    for (const auto& [key, value] : metadata) {
      if (!is_valid_utf8(key)) return invalid_argument(fmt::format("{}: metadata key '{}' is not valid UTF-8", target, key));
      if (Status checked = check_value(value, key); !checked.ok())
        return invalid_argument(fmt::format("{}: {}", target, checked.message()));
      head.put_string(key);
      head.put<uint32_t>(static_cast<uint32_t>(value.type()));
      head.put_value(value);
    }
    std::vector<uint64_t> sizes;
    uint64_t offset = 0;
    uint64_t largest = 0;
    for (const PendingTensor& tensor : tensors_) {
      head.put_string(tensor.name);
      const std::span<const int64_t> dims = tensor.shape.dims();
      // A rank-0 tensor is stored as GGUF stores scalars: one dimension of 1.
      head.put<uint32_t>(dims.empty() ? 1 : static_cast<uint32_t>(dims.size()));
      if (dims.empty()) head.put<uint64_t>(1);
      for (auto dim = dims.rbegin(); dim != dims.rend(); ++dim) head.put<uint64_t>(static_cast<uint64_t>(*dim));
      head.put<uint32_t>(ggml_type_of(tensor.dtype));
      offset = (offset + alignment_ - 1) / alignment_ * alignment_;
      head.put<uint64_t>(offset);
      const auto bytes = static_cast<uint64_t>(row_bytes(tensor.dtype, tensor.shape.elements()));
      sizes.push_back(bytes);
      largest = std::max(largest, bytes);
      offset += bytes;
    }
    head.pad_to(alignment_);

    TemporaryFile file(path);
    EMBER_RETURN_IF_ERROR(file.create());
    EMBER_RETURN_IF_ERROR(file.write(head.bytes().data(), head.bytes().size()));
    std::vector<std::byte> staging(static_cast<size_t>(largest));
    uint64_t written = 0;
    for (size_t index = 0; index < tensors_.size(); ++index) {
      const PendingTensor& tensor = tensors_[index];
      const uint64_t start = (written + alignment_ - 1) / alignment_ * alignment_;
      EMBER_RETURN_IF_ERROR(file.write_zeros(start - written));
      const std::span<std::byte> out(staging.data(), static_cast<size_t>(sizes[index]));
      // A source that leaves bytes unwritten must not leak the previous tensor's bytes.
      std::fill(out.begin(), out.end(), std::byte{0});
      if (Status produced = tensor.source(out); !produced.ok())
        return Status(produced.code(), fmt::format("{}: tensor '{}': {}", target, tensor.name, produced.message()));
      EMBER_RETURN_IF_ERROR(file.write(out.data(), out.size()));
      written = start + sizes[index];
    }
    return file.commit();
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while writing", target));
  }
}

}  // namespace ember
