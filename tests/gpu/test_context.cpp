#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "gpu/context.h"
#include "gpu/device_buffer.h"
#include "gpu_test_context.h"

namespace ember::gpu {
namespace {

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_.empty()) unsetenv(name_);
    else setenv(name_, old_.c_str(), 1);
  }

 private:
  const char* name_;
  std::string old_;
};

TEST(GpuContext, ChosenDeviceIsListedAndMeetsTheMinimum) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  const DeviceCapabilities& caps = context.capabilities();
  EXPECT_TRUE(caps.meets_minimum());
  EXPECT_GE(caps.api_version, VK_API_VERSION_1_2);
  EXPECT_FALSE(caps.name.empty());
  EXPECT_FALSE(caps.memory_types.empty());
  EXPECT_FALSE(caps.heaps.empty());
  for (const MemoryTypeInfo& type : caps.memory_types) EXPECT_LT(type.heap, caps.heaps.size());
  EXPECT_GT(caps.subgroup_size, 0u);
  EXPECT_GE(caps.max_workgroup_invocations, 128u);

  auto devices = Context::list_devices();
  ASSERT_TRUE(devices) << devices.status().message();
  ASSERT_LT(caps.index, devices->size());
  EXPECT_EQ((*devices)[caps.index].name, caps.name);
  // The automatic choice is the best-ranked usable device.
  for (const DeviceCapabilities& other : devices.value()) {
    if (other.meets_minimum()) {
      EXPECT_GE(device_type_rank(other.type), device_type_rank(caps.type)) << other.name;
    }
  }
  const std::string text = describe(caps);
  EXPECT_NE(text.find("device " + std::to_string(caps.index) + ": " + caps.name), std::string::npos) << text;
  EXPECT_NE(text.find("subgroup size: " + std::to_string(caps.subgroup_size)), std::string::npos) << text;
}

TEST(GpuContext, EnvironmentPicksTheDeviceAndRejectsABadOne) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  const std::string index = std::to_string(context.capabilities().index);
  {
    ScopedEnv env("EMBER_VK_DEVICE", index.c_str());
    auto picked = Context::create();
    ASSERT_TRUE(picked) << picked.status().message();
    EXPECT_EQ(picked.value()->capabilities().index, context.capabilities().index);
  }
  {
    ScopedEnv env("EMBER_VK_DEVICE", "4000");
    auto missing = Context::create();
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.status().kind(), ErrorKind::invalid_argument);
    EXPECT_NE(missing.status().message().find("EMBER_VK_DEVICE 4000"), std::string::npos) << missing.status().message();
  }
  {
    ScopedEnv env("EMBER_VK_DEVICE", "4294967296");  // would wrap to 0 as a uint32_t
    auto wrapped = Context::create();
    ASSERT_FALSE(wrapped);
    EXPECT_EQ(wrapped.status().kind(), ErrorKind::invalid_argument);
  }
  {
    ScopedEnv env("EMBER_VK_DEVICE", "first");
    auto garbled = Context::create();
    ASSERT_FALSE(garbled);
    EXPECT_NE(garbled.status().message().find("'first'"), std::string::npos) << garbled.status().message();
  }
  auto explicit_option = Context::create({.device_index = 4000u});
  ASSERT_FALSE(explicit_option);
  EXPECT_NE(explicit_option.status().message().find("device index 4000"), std::string::npos);
}

// No driver for the loader to find: an error value naming the cause, for both entry points.
TEST(GpuContext, NoDriverIsAnErrorValue) {
  ScopedEnv old_name("VK_ICD_FILENAMES", "/nonexistent/ember_icd.json");
  ScopedEnv new_name("VK_DRIVER_FILES", "/nonexistent/ember_icd.json");
  auto context = Context::create();
  ASSERT_FALSE(context);
  EXPECT_EQ(context.status().kind(), ErrorKind::unavailable);
  EXPECT_FALSE(context.status().message().empty());
  EXPECT_EQ(context.status().message().find('\n'), std::string::npos);
  auto devices = Context::list_devices();
  ASSERT_FALSE(devices);
  EXPECT_EQ(devices.status().kind(), ErrorKind::unavailable);
}

TEST(GpuContext, RunsAnEmptySubmissionTwice) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  int recorded = 0;
  for (int i = 0; i < 2; ++i) {
    const Status status = context.run_and_wait([&](VkCommandBuffer) { ++recorded; });
    ASSERT_TRUE(status) << status.message();
  }
  EXPECT_EQ(recorded, 2);
}

// The device's time for a 32 MiB copy: positive, and no more than the host waited for it.
TEST(GpuContext, TimesRecordedCommandsOnTheDevice) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  if (context.capabilities().timestamp_valid_bits == 0) GTEST_SKIP() << "no timestamps on the compute queue";
  Allocator allocator(context);
  constexpr uint64_t kBytes = uint64_t{32} << 20;
  auto from = DeviceBuffer::create(allocator, kBytes, MemoryUse::device);
  auto to = DeviceBuffer::create(allocator, kBytes, MemoryUse::device);
  ASSERT_TRUE(from && to);
  for (int round = 0; round < 2; ++round) {
    const auto start = std::chrono::steady_clock::now();
    auto seconds = context.run_and_time([&](VkCommandBuffer commands) {
      const VkBufferCopy region{0, 0, kBytes};
      context.vk().vkCmdCopyBuffer(commands, from->handle(), to->handle(), 1, &region);
    });
    const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(seconds) << seconds.status().message();
    EXPECT_GT(seconds.value(), 0.0);
    EXPECT_LE(seconds.value(), waited.count());
  }
}

}  // namespace
}  // namespace ember::gpu
