// Device faults during a graph run, raised through the gpu/ fault hook: a pipeline that
// cannot be created, device memory running out (once: freeing spare blocks and retrying
// saves the node; for good: the CPU runs it), and a lost device. Each time the results
// equal the CPU backend's and one warning names the fault, however often it recurs.
#include <gtest/gtest.h>

#include <string>

#include "core/logit_compare.h"
#include "ember/log.h"
#include "offload_fixtures.h"

namespace ember {
namespace {

using testing::nodes_run_by;
using testing::TwoLinears;

size_t occurrences(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

class VulkanFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A fresh device each test: a lost device stays lost.
    device_ = testing::open_device_or_null(&why_not_);
    if (!device_) GTEST_SKIP() << "no Vulkan device: " << why_not_;
    set_log_level(LogLevel::warn);
    executor_.prefer_backend(std::make_shared<VulkanBackend>(device_, VulkanRouting{}));
    Executor cpu;
    expected_ = graph_.run(cpu);
  }

  gpu::FaultInjector& faults() { return device_->context().faults(); }

  // Runs the graph `runs` times and returns what was logged; every run must give the
  // CPU backend's results: exactly where the CPU ran every node (tolerance 0).
  std::string run_and_capture_log(int runs, double tolerance) {
    ::testing::internal::CaptureStderr();
    for (int run = 0; run < runs; ++run) {
      const std::vector<Tensor> actual = graph_.run(executor_);
      EXPECT_EQ(actual.size(), expected_.size());
      for (size_t i = 0; i < actual.size() && i < expected_.size(); ++i)
        EXPECT_LE(testing::relative_error(actual[i], expected_[i]), tolerance)
            << "run " << run << ", output " << i;
    }
    return ::testing::internal::GetCapturedStderr();
  }

  // Arms `fault` for `calls` calls and runs the graph twice: the CPU must run both nodes,
  // and the log hold just one line, the warning starting with `warning`.
  void expect_cpu_runs_with_one_warning(gpu::InjectedFault fault, int calls, const std::string& warning) {
    faults().arm(fault, calls);
    const std::string log = run_and_capture_log(2, 0.0);
    EXPECT_EQ(nodes_run_by(executor_, "cpu"), 2u);
    EXPECT_EQ(occurrences(log, "ember warning: Vulkan: " + warning), 1u) << log;
    EXPECT_EQ(occurrences(log, "\n"), 1u) << log;
  }

  std::shared_ptr<VulkanDevice> device_;
  std::string why_not_;
  testing::SeededRng rng_;
  TwoLinears graph_{DType::q8_0, 3, 64, 96, 32, rng_};
  Executor executor_;
  std::vector<Tensor> expected_;
};

TEST_F(VulkanFaultTest, PipelineCreationFailureRunsTheNodeOnTheCpu) {
  expect_cpu_runs_with_one_warning(gpu::InjectedFault::pipeline_creation, 1000, "vkCreateComputePipelines");

  faults().arm(gpu::InjectedFault::pipeline_creation, 0);
  EXPECT_EQ(run_and_capture_log(1, testing::cpu_tolerance(DType::q8_0, *device_)), "");
  EXPECT_EQ(nodes_run_by(executor_, "vulkan"), 2u) << "the pipeline is created once the fault is gone";
}

TEST_F(VulkanFaultTest, OutOfMemoryOnceIsSurvivedByTrimmingAndRetrying) {
  faults().arm(gpu::InjectedFault::out_of_device_memory, 1);
  EXPECT_EQ(run_and_capture_log(1, testing::cpu_tolerance(DType::q8_0, *device_)), "");
  EXPECT_EQ(nodes_run_by(executor_, "vulkan"), 2u);
}

TEST_F(VulkanFaultTest, OutOfMemoryForGoodRunsTheNodesOnTheCpu) {
  expect_cpu_runs_with_one_warning(gpu::InjectedFault::out_of_device_memory, 1000,
                                   "out of device memory after freeing spare blocks");
}

TEST_F(VulkanFaultTest, LostDeviceIsDroppedForTheRestOfTheSession) {
  // One failed submission; the device itself would work on, but is not asked again.
  expect_cpu_runs_with_one_warning(gpu::InjectedFault::device_lost, 1, "the device was lost");
  EXPECT_TRUE(device_->context().device_lost());
}

}  // namespace
}  // namespace ember
