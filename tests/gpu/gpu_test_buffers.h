// Host-visible device buffers for kernel tests: filled and read through their mapping,
// so a kernel test depends on nothing but the kernel (residency has its own tests).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "gpu/device_buffer.h"

namespace ember::testing {

template <typename T>
gpu::DeviceBuffer mapped_buffer(gpu::Allocator& allocator, const std::vector<T>& contents) {
  auto buffer = gpu::DeviceBuffer::create(allocator, contents.size() * sizeof(T), gpu::MemoryUse::staging);
  EXPECT_TRUE(buffer) << buffer.status().message();
  if (!buffer) return {};
  std::memcpy(buffer->mapped(), contents.data(), contents.size() * sizeof(T));
  return std::move(buffer.value());
}

template <typename T>
std::vector<T> read_mapped(const gpu::DeviceBuffer& buffer, size_t count) {
  std::vector<T> values(count);
  std::memcpy(values.data(), buffer.mapped(), count * sizeof(T));
  return values;
}

}  // namespace ember::testing
