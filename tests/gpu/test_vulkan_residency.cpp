// A Buffer's bytes moving between host and device through core's VulkanMirror: written
// by a shader and read on the host, written on the host and read by a shader, with every
// byte checked, once with zero copy (where the device has host-visible device memory)
// and once with the staging path forced.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/vulkan_device.h"
#include "gpu_test_buffers.h"
#include "test_util.h"

namespace ember {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

std::shared_ptr<VulkanDevice> open_or_skip(bool zero_copy, std::string* why_not, uint64_t slot_bytes = 64 * 1024) {
  auto device = VulkanDevice::open({.zero_copy = zero_copy, .staging = {.slot_bytes = slot_bytes, .slots = 2}});
  if (!device) {
    *why_not = device.status().message();
    return nullptr;
  }
  return device.value();
}

VulkanMirror& mirror_of(Buffer& buffer) { return *static_cast<VulkanMirror*>(buffer.device()); }

std::vector<float> identity(uint32_t n) {
  std::vector<float> w(size_t{n} * n, 0.0f);
  for (uint32_t i = 0; i < n; ++i) w[size_t{i} * n + i] = 1.0f;
  return w;
}

// Copies `bytes` between two device buffers on the device: a device-side read or write
// that no staging path is involved in.
void device_copy(VulkanDevice& device, const gpu::DeviceBuffer& from, const gpu::DeviceBuffer& to, uint64_t bytes) {
  const gpu::Status status = device.context().run_and_wait([&](VkCommandBuffer commands) {
    const VkBufferCopy region{0, 0, bytes};
    device.context().vk().vkCmdCopyBuffer(commands, from.handle(), to.handle(), 1, &region);
  });
  ASSERT_TRUE(status) << status.message();
}

class VulkanResidency : public ::testing::TestWithParam<bool> {};

// Shader writes -> host reads -> host writes -> shader reads. The shader is the fused
// linear with an identity weight matrix, so its output equals its input bit for bit.
TEST_P(VulkanResidency, ShaderWriteHostReadHostWriteShaderRead) {
  const bool zero_copy = GetParam();
  std::string why_not;
  auto device = open_or_skip(zero_copy, &why_not);
  if (!device) GTEST_SKIP() << "no Vulkan device: " << why_not;
  if (zero_copy && !device->zero_copy()) GTEST_SKIP() << "the device has no host-visible device-local memory";
  testing::SeededRng rng;
  const uint32_t rows = 37, n = 29;  // 4292 bytes: not a multiple of a staging slot or a word block
  const size_t bytes = size_t{rows} * n * sizeof(float);

  auto buffer = device->allocate(bytes);
  ASSERT_TRUE(buffer) << buffer.status().message();
  Buffer& resident = *buffer.value();
  VulkanMirror& mirror = mirror_of(resident);
  EXPECT_EQ(resident.residency(), zero_copy ? Residency::both : Residency::host);
  const uint64_t uploads_before = device->staging().chunks_uploaded();
  const uint64_t downloads_before = device->staging().chunks_downloaded();

  // Shader writes the buffer's device side.
  const std::vector<float> x = rng.uniform(size_t{rows} * n);
  gpu::DeviceBuffer x_buffer = mapped_buffer(device->allocator(), x);
  gpu::DeviceBuffer w_buffer = mapped_buffer(device->allocator(), identity(n));
  if (!zero_copy) {
    // The host copy is NaN, so a host read that skipped the download would be caught.
    auto poison = resident.host_write();
    ASSERT_TRUE(poison);
    const std::vector<float> nan = testing::poisoned(size_t{rows} * n);
    std::memcpy(poison.value(), nan.data(), bytes);
  }
  gpu::Status run = device->linear().run({.x = &x_buffer, .rows = rows, .k = n, .weights = &w_buffer, .n = n,
                                          .y = &mirror.device_buffer(), .path = gpu::LinearPath::gemm});
  ASSERT_TRUE(run) << run.message();
  resident.mark_device_written();

  // Host reads.
  auto host_bytes = resident.host_read();
  ASSERT_TRUE(host_bytes) << host_bytes.status().message();
  EXPECT_EQ(std::memcmp(host_bytes.value(), x.data(), bytes), 0) << "the host does not see what the shader wrote";
  EXPECT_EQ(resident.residency(), Residency::both);

  // Host writes new values.
  const std::vector<float> fresh = rng.uniform(size_t{rows} * n);
  auto writable = resident.host_write();
  ASSERT_TRUE(writable);
  std::memcpy(writable.value(), fresh.data(), bytes);
  EXPECT_EQ(resident.residency(), Residency::host);

  // Shader reads them.
  Status current = resident.ensure_device_current();
  ASSERT_TRUE(current.ok()) << current.message();
  gpu::DeviceBuffer y_buffer = mapped_buffer(device->allocator(), testing::poisoned(size_t{rows} * n));
  run = device->linear().run({.x = &mirror.device_buffer(), .rows = rows, .k = n, .weights = &w_buffer, .n = n,
                              .y = &y_buffer, .path = gpu::LinearPath::gemv});
  ASSERT_TRUE(run) << run.message();
  const std::vector<float> seen = read_mapped<float>(y_buffer, size_t{rows} * n);
  EXPECT_EQ(std::memcmp(seen.data(), fresh.data(), bytes), 0) << "the shader does not see what the host wrote";

  if (zero_copy) {
    EXPECT_EQ(static_cast<const void*>(host_bytes.value()), static_cast<const void*>(mirror.device_buffer().mapped()));
    EXPECT_EQ(device->staging().chunks_uploaded(), uploads_before);
    EXPECT_EQ(device->staging().chunks_downloaded(), downloads_before);
  } else {
    EXPECT_NE(static_cast<const void*>(host_bytes.value()), static_cast<const void*>(mirror.device_buffer().mapped()));
    EXPECT_EQ(device->staging().chunks_downloaded(), downloads_before + 1);
    EXPECT_EQ(device->staging().chunks_uploaded(), uploads_before + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(ZeroCopyAndStaging, VulkanResidency, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "zero_copy" : "staging"; });

// Many staging chunks each way with an odd byte count; the device side is checked by a
// device copy into a mapped buffer, not by the staging path under test.
TEST(VulkanStaging, ChunkedRoundTripOfAnOddSize) {
  std::string why_not;
  auto device = open_or_skip(/*zero_copy=*/false, &why_not, /*slot_bytes=*/4096 + 12);
  if (!device) GTEST_SKIP() << "no Vulkan device: " << why_not;
  testing::SeededRng rng;
  const size_t bytes = 100000 + static_cast<size_t>(rng.integer(1, 3));
  std::vector<std::byte> pattern(bytes), second(bytes);
  for (auto& b : pattern) b = static_cast<std::byte>(rng.integer(0, 255));
  for (auto& b : second) b = static_cast<std::byte>(rng.integer(0, 255));

  auto buffer = device->allocate(bytes);
  ASSERT_TRUE(buffer) << buffer.status().message();
  Buffer& resident = *buffer.value();
  std::memcpy(resident.host_write().value(), pattern.data(), bytes);
  const uint64_t uploads_before = device->staging().chunks_uploaded();
  ASSERT_TRUE(resident.ensure_device_current().ok());
  EXPECT_EQ(device->staging().chunks_uploaded() - uploads_before, (bytes + 4107) / 4108);
  auto check = gpu::DeviceBuffer::create(device->allocator(), bytes, gpu::MemoryUse::staging);
  ASSERT_TRUE(check);
  device_copy(*device, mirror_of(resident).device_buffer(), check.value(), bytes);
  EXPECT_EQ(std::memcmp(check->mapped(), pattern.data(), bytes), 0);

  std::memcpy(check->mapped(), second.data(), bytes);
  device_copy(*device, check.value(), mirror_of(resident).device_buffer(), bytes);
  resident.mark_device_written();
  auto host = resident.host_read();
  ASSERT_TRUE(host);
  EXPECT_EQ(std::memcmp(host.value(), second.data(), bytes), 0);
}

// An existing host buffer (here standing in for a mapped, read-only weight) gains a
// device home; its bytes reach the device on the first ensure_device_current().
TEST(VulkanStaging, AttachesAnExistingReadOnlyBuffer) {
  std::string why_not;
  auto device = open_or_skip(/*zero_copy=*/true, &why_not);
  if (!device) GTEST_SKIP() << "no Vulkan device: " << why_not;
  testing::SeededRng rng;
  const size_t bytes = 777;
  std::vector<std::byte> weights(bytes);
  for (auto& b : weights) b = static_cast<std::byte>(rng.integer(0, 255));
  auto wrapped = Buffer::wrap(weights.data(), bytes, nullptr, /*writable=*/false);
  ASSERT_TRUE(device->attach(*wrapped).ok());
  EXPECT_EQ(wrapped->residency(), Residency::host);
  ASSERT_TRUE(wrapped->ensure_device_current().ok());
  EXPECT_EQ(wrapped->residency(), Residency::both);
  auto check = gpu::DeviceBuffer::create(device->allocator(), bytes, gpu::MemoryUse::staging);
  ASSERT_TRUE(check);
  device_copy(*device, mirror_of(*wrapped).device_buffer(), check.value(), bytes);
  EXPECT_EQ(std::memcmp(check->mapped(), weights.data(), bytes), 0);
  EXPECT_FALSE(wrapped->host_write());  // still read-only on the host
}

// Whole q4_0 blocks attached split: the device holds every block's codes, then every
// scale; a download gives the host the file's layout back, byte for byte. Blocks that do
// not fill the buffer are refused.
TEST(VulkanStaging, SplitBlocksAreRearrangedOnTheWayUpAndBack) {
  std::string why_not;
  auto device = open_or_skip(/*zero_copy=*/false, &why_not, /*slot_bytes=*/1000);
  if (!device) GTEST_SKIP() << "no Vulkan device: " << why_not;
  testing::SeededRng rng;
  constexpr size_t kBlocks = 131;  // several staging slots
  const size_t bytes = kBlocks * 18;
  std::vector<std::byte> file_layout(bytes);
  for (auto& b : file_layout) b = static_cast<std::byte>(rng.integer(0, 255));
  auto buffer = Buffer::allocate(bytes);
  ASSERT_TRUE(buffer);
  std::memcpy(buffer.value()->host_write().value(), file_layout.data(), bytes);
  ASSERT_TRUE(device->attach(*buffer.value(), gpu::WeightType::q4_0).ok());
  EXPECT_EQ(mirror_of(*buffer.value()).block_layout(), gpu::BlockLayout::split);
  ASSERT_TRUE(buffer.value()->ensure_device_current().ok());
  auto seen = gpu::DeviceBuffer::create(device->allocator(), bytes, gpu::MemoryUse::staging);
  ASSERT_TRUE(seen);
  device_copy(*device, mirror_of(*buffer.value()).device_buffer(), seen.value(), bytes);
  const auto* device_bytes = static_cast<const std::byte*>(seen->mapped());
  for (size_t block = 0; block < kBlocks; ++block) {
    ASSERT_EQ(std::memcmp(device_bytes + 16 * block, file_layout.data() + 18 * block + 2, 16), 0) << "codes " << block;
    ASSERT_EQ(std::memcmp(device_bytes + 16 * kBlocks + 2 * block, file_layout.data() + 18 * block, 2), 0)
        << "scale " << block;
  }
  // As if a shader had written it: the host's next read downloads and joins the blocks.
  std::memset(buffer.value()->host_write().value(), 0, bytes);
  buffer.value()->mark_device_written();
  auto read = buffer.value()->host_read();
  ASSERT_TRUE(read);
  EXPECT_EQ(std::memcmp(read.value(), file_layout.data(), bytes), 0);

  auto ragged = Buffer::allocate(bytes + 4);
  ASSERT_TRUE(ragged);
  const Status refused = device->attach(*ragged.value(), gpu::WeightType::q4_0);
  EXPECT_EQ(refused.code(), ErrorCode::invalid_argument);
  EXPECT_NE(refused.message().find("not whole blocks"), std::string::npos) << refused.message();
}

// Several threads moving their own buffers through the one staging ring and running
// kernels on the one queue at the same time: each sees only its own bytes.
TEST(VulkanStaging, ThreadsShareTheRingAndTheQueue) {
  std::string why_not;
  auto device = open_or_skip(/*zero_copy=*/false, &why_not, /*slot_bytes=*/1024);
  if (!device) GTEST_SKIP() << "no Vulkan device: " << why_not;
  const uint64_t seed = testing::SeededRng().seed();
  constexpr uint32_t kRows = 9, kN = 33;
  constexpr size_t kBytes = size_t{kRows} * kN * sizeof(float);
  gpu::DeviceBuffer w_buffer = mapped_buffer(device->allocator(), identity(kN));
  std::atomic<int> mismatches{0};
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 engine(seed + static_cast<uint64_t>(t));
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (int round = 0; round < 10; ++round) {
        auto buffer = device->allocate(kBytes);
        auto y = gpu::DeviceBuffer::create(device->allocator(), kBytes, gpu::MemoryUse::staging);
        if (!buffer || !y) {
          errors[t] = "allocation failed";
          return;
        }
        std::vector<float> values(size_t{kRows} * kN);
        for (float& v : values) v = dist(engine);
        std::memcpy(buffer.value()->host_write().value(), values.data(), kBytes);
        if (!buffer.value()->ensure_device_current().ok()) {
          errors[t] = "upload failed";
          return;
        }
        const gpu::Status run = device->linear().run({.x = &mirror_of(*buffer.value()).device_buffer(), .rows = kRows,
                                                      .k = kN, .weights = &w_buffer, .n = kN, .y = &y.value()});
        if (!run) {
          errors[t] = run.message();
          return;
        }
        if (std::memcmp(y->mapped(), values.data(), kBytes) != 0) ++mismatches;
        std::memcpy(y->mapped(), values.data() + 1, kBytes - sizeof(float));
        device_copy(*device, y.value(), mirror_of(*buffer.value()).device_buffer(), kBytes);
        buffer.value()->mark_device_written();
        auto host = buffer.value()->host_read();
        if (!host || std::memcmp(host.value(), values.data() + 1, kBytes - sizeof(float)) != 0) ++mismatches;
      }
    });
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(VulkanStaging, BadDeviceIndexIsAnErrorValue) {
  std::string why_not;
  if (!open_or_skip(true, &why_not)) GTEST_SKIP() << "no Vulkan device: " << why_not;
  auto device = VulkanDevice::open({.device_index = 4000u});
  ASSERT_FALSE(device);
  EXPECT_EQ(device.status().code(), ErrorCode::invalid_argument);
  EXPECT_NE(device.status().message().find("device index 4000"), std::string::npos) << device.status().message();
}

}  // namespace
}  // namespace ember
