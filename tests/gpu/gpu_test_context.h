// The Vulkan context the GPU suites share. Without a loader or a device the tests skip
// with the reason (the CPU then runs everything, which is not a failure); with one they
// must pass.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "gpu/context.h"

namespace ember::testing {

// Created once per test program: instance and device creation cost more than most tests.
inline gpu::Context* shared_gpu_context(std::string* why_not) {
  static auto created = gpu::Context::create();
  if (!created) {
    *why_not = created.status().message();
    return nullptr;
  }
  return created.value().get();
}

}  // namespace ember::testing

#define EMBER_GPU_CONTEXT_OR_SKIP(name)                                               \
  std::string name##_missing;                                                         \
  ::ember::gpu::Context* name##_pointer = ::ember::testing::shared_gpu_context(&name##_missing); \
  if (name##_pointer == nullptr) GTEST_SKIP() << "no Vulkan device: " << name##_missing;        \
  ::ember::gpu::Context& name = *name##_pointer
