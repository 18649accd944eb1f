#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ember/tensor.h"
#include "test_util.h"

namespace ember {
namespace {

Tensor iota(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32).value();
  for (int64_t i = 0; i < t.elements(); ++i) t.set_flat(i, static_cast<float>(i));
  return t;
}

TEST(Tensor, EmptyIsContiguousAndAligned) {
  auto t = Tensor::empty({3, 5, 7}, DType::f16);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->is_contiguous());
  EXPECT_EQ(t->elements(), 105);
  EXPECT_EQ(t->payload_bytes(), 210u);
  EXPECT_EQ(t->stride(0), 35);
  EXPECT_EQ(t->stride(2), 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->read<std::byte>().value()) % kBufferAlignment, 0u);
  EXPECT_GE(t->buffer()->alignment(), 64u);
}

TEST(Tensor, RejectsBadShapes) {
  EXPECT_EQ(Tensor::empty({-1, 2}, DType::f32).status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}, DType::f32).status().code(), ErrorCode::invalid_argument);
  const std::array<int64_t, 5> five = {1, 2, 3, 4, 5};
  EXPECT_FALSE(Shape::from(five).ok());
}

TEST(Tensor, ViewMustFitItsBuffer) {
  auto buffer = Buffer::allocate(100).value();
  EXPECT_TRUE(Tensor::view(buffer, {5, 5}, DType::f32).ok());
  auto too_big = Tensor::view(buffer, {5, 5}, DType::f32, 4);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), ErrorCode::out_of_range);
  EXPECT_NE(too_big.status().message().find("f32[5, 5]"), std::string::npos) << too_big.status().message();
  EXPECT_FALSE(Tensor::view(buffer, {1}, DType::f32, 1000).ok());
}

TEST(Tensor, SliceSharesBytes) {
  Tensor t = iota({4, 6});
  Tensor rows = t.slice(0, 1, 2).value();
  EXPECT_EQ(rows.shape(), (Shape{2, 6}));
  EXPECT_EQ(rows.get({0, 0}), 6.0f);
  Tensor cols = t.slice(1, 2, 3).value();
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(cols.get({3, 2}), 22.0f);
  cols.set({0, 0}, -1.0f);  // writes through to the parent
  EXPECT_EQ(t.get({0, 2}), -1.0f);
  EXPECT_EQ(t.slice(1, 4, 3).status().code(), ErrorCode::out_of_range);
  EXPECT_FALSE(t.slice(2, 0, 1).ok());
}

TEST(Tensor, TransposeAndPermuteAreViews) {
  Tensor t = iota({2, 3, 4});
  Tensor swapped = t.transpose(0, 2).value();
  EXPECT_EQ(swapped.shape(), (Shape{4, 3, 2}));
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(swapped.get({c, b, a}), t.get({a, b, c}));
  const std::array<int, 3> order = {1, 2, 0};
  Tensor rotated = t.permute(order).value();
  EXPECT_EQ(rotated.shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(rotated.get({2, 3, 1}), t.get({1, 2, 3}));
  EXPECT_EQ(rotated.buffer(), t.buffer());
  const std::array<int, 3> repeated = {0, 0, 1};
  EXPECT_FALSE(t.permute(repeated).ok());
}

TEST(Tensor, ReshapeNeedsContiguity) {
  Tensor t = iota({2, 6});
  Tensor flat = t.reshape({3, 4}).value();
  EXPECT_EQ(flat.get({2, 3}), 11.0f);
  EXPECT_FALSE(t.reshape({5, 2}).ok());
  Tensor transposed = t.transpose(0, 1).value();
  EXPECT_FALSE(transposed.reshape({12}).ok());
  Tensor copy = transposed.contiguous().value();
  EXPECT_TRUE(copy.is_contiguous());
  EXPECT_NE(copy.buffer(), t.buffer());
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(copy.get({i, j}), t.get({j, i}));
  EXPECT_EQ(copy.reshape({12}).value().get({1}), 6.0f);
}

TEST(Tensor, ElementAccessConvertsTypes) {
  for (DType type : {DType::f32, DType::f16, DType::bf16, DType::i32}) {
    Tensor t = Tensor::empty({3}, type).value();
    t.set({1}, 2.5f);
    EXPECT_EQ(t.get({1}), type == DType::i32 ? 2.0f : 2.5f) << dtype_name(type);
    ASSERT_TRUE(t.fill(-4.0f).ok());
    EXPECT_EQ(t.get({2}), -4.0f);
  }
  EXPECT_EQ(dtype_from_name("bf16"), DType::bf16);
  EXPECT_FALSE(dtype_from_name("q9_9").has_value());
}

// Records every transfer so residency transitions can be checked byte for byte.
class RecordingMirror final : public DeviceMirror {
 public:
  explicit RecordingMirror(size_t bytes) : device_bytes(bytes) {}
  Status upload(const std::byte* host, size_t bytes) override {
    ++uploads;
    std::memcpy(device_bytes.data(), host, bytes);
    return {};
  }
  Status download(std::byte* host, size_t bytes) override {
    ++downloads;
    std::memcpy(host, device_bytes.data(), bytes);
    return {};
  }
  std::vector<std::byte> device_bytes;
  int uploads = 0, downloads = 0;
};

TEST(Buffer, ResidencyFollowsReadsAndWrites) {
  Tensor t = Tensor::empty({4}, DType::f32).value();
  ASSERT_TRUE(t.fill(1.0f).ok());
  auto mirror = std::make_unique<RecordingMirror>(t.buffer()->bytes());
  RecordingMirror* device = mirror.get();
  t.buffer()->attach_device(std::move(mirror), Residency::host);

  ASSERT_TRUE(t.buffer()->ensure_device_current().ok());  // host → device
  EXPECT_EQ(device->uploads, 1);
  EXPECT_EQ(t.buffer()->residency(), Residency::both);
  ASSERT_TRUE(t.buffer()->ensure_device_current().ok());  // already current: no copy
  EXPECT_EQ(device->uploads, 1);

  const float device_value = 7.0f;  // the "GPU" writes element 2
  std::memcpy(device->device_bytes.data() + 8, &device_value, 4);
  t.buffer()->mark_device_written();
  EXPECT_EQ(t.get({2}), 7.0f);  // reading on the host downloads
  EXPECT_EQ(device->downloads, 1);
  EXPECT_EQ(t.buffer()->residency(), Residency::both);

  t.set({0}, 3.0f);  // host write makes the device copy stale
  EXPECT_EQ(t.buffer()->residency(), Residency::host);
  ASSERT_TRUE(t.buffer()->ensure_device_current().ok());
  float uploaded;
  std::memcpy(&uploaded, device->device_bytes.data(), 4);
  EXPECT_EQ(uploaded, 3.0f);
  EXPECT_EQ(device->uploads, 2);
}

TEST(Buffer, WrappedReadOnlyMemoryRefusesWrites) {
  std::vector<float> external = {1, 2, 3, 4};
  auto buffer = Buffer::wrap(reinterpret_cast<std::byte*>(external.data()), 16, nullptr, /*writable=*/false);
  Tensor t = Tensor::view(buffer, {4}, DType::f32).value();
  EXPECT_EQ(t.get({3}), 4.0f);
  auto write = t.write<float>();
  ASSERT_FALSE(write.ok());
  EXPECT_NE(write.status().message().find("read-only"), std::string::npos);
}

// The VmFlags line of /proc/self/smaps for the mapping that holds `address` ("" if none).
std::string vm_flags_of(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto wanted = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2) {
      inside = begin <= wanted && wanted < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(Buffer, LargeBuffersStartOnAHugePageAndAskForHugePages) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  auto buffer = Buffer::allocate((size_t{8} << 20) + 100).value();
  std::byte* data = buffer->host_write().value();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % (size_t{2} << 20), 0u);
  const std::string flags = vm_flags_of(data);
  ASSERT_FALSE(flags.empty());
  EXPECT_NE((flags + " ").find(" hg "), std::string::npos) << flags;
}

TEST(Buffer, ARearrangedCopyIsMadeOncePerArrangementAndFailuresAreNotKept) {
  std::vector<std::byte> bytes(256, std::byte{7});
  auto buffer = Buffer::wrap(bytes.data(), bytes.size(), nullptr, /*writable=*/false);
  int made = 0;
  const auto reversed = [&](const std::byte* source) -> Result<std::shared_ptr<Buffer>> {
    ++made;
    auto copy = Buffer::allocate(bytes.size());
    if (!copy) return copy.status();
    std::byte* target = copy.value()->host_write().value();
    for (size_t i = 0; i < bytes.size(); ++i) target[i] = source[bytes.size() - 1 - i];
    return copy;
  };
  const auto failing = [&](const std::byte*) -> Result<std::shared_ptr<Buffer>> {
    ++made;
    return out_of_memory("no room for the copy");
  };
  auto failed = buffer->rearranged(1, failing);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("no room"), std::string::npos);
  auto first = buffer->rearranged(1, reversed);
  auto second = buffer->rearranged(1, reversed);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first.value(), second.value());
  EXPECT_EQ(made, 2);
  auto other = buffer->rearranged(2, reversed);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other.value(), first.value());
  EXPECT_EQ(made, 3);
}

TEST(Buffer, RejectsBadAlignment) {
  EXPECT_FALSE(Buffer::allocate(64, 48).ok());
  EXPECT_FALSE(Buffer::allocate(64, 32).ok());
  EXPECT_TRUE(Buffer::allocate(64, 128).ok());
}

}  // namespace
}  // namespace ember
