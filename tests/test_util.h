// Helpers shared by the test suites: seeded random data and poisoned outputs.
//
// Each test draws a fresh seed (std::random_device) unless EMBER_TEST_SEED is set, and
// SeededRng prints it through SCOPED_TRACE, so any failure says how to replay it.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ember::testing {

inline uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("EMBER_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

class SeededRng {
 public:
  SeededRng() : seed_(fresh_seed()), engine_(seed_), trace_(__FILE__, __LINE__, "EMBER_TEST_SEED=" + std::to_string(seed_)) {}
  uint64_t seed() const { return seed_; }
  std::mt19937_64& engine() { return engine_; }

  std::vector<float> uniform(size_t count, float low = -1.0f, float high = 1.0f) {
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(count);
    for (float& v : values) v = dist(engine_);
    return values;
  }
  std::vector<float> normal(size_t count, float stddev = 1.0f) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> values(count);
    for (float& v : values) v = dist(engine_);
    return values;
  }
  int64_t integer(int64_t low, int64_t high) {  // inclusive
    return std::uniform_int_distribution<int64_t>(low, high)(engine_);
  }

 private:
  uint64_t seed_;
  std::mt19937_64 engine_;
  ::testing::ScopedTrace trace_;
};

// An output buffer pre-filled with NaN, so an element the kernel forgets to write fails.
inline std::vector<float> poisoned(size_t count) {
  return std::vector<float>(count, std::numeric_limits<float>::quiet_NaN());
}

// Largest |a - b| / (|b| + floor): the relative error with an absolute floor near zero.
inline double max_relative_error(const std::vector<float>& actual, const std::vector<float>& expected,
                                 double floor = 1e-3) {
  double worst = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    const double err = std::isnan(actual[i]) ? std::numeric_limits<double>::infinity()
                                             : diff / (std::fabs(static_cast<double>(expected[i])) + floor);
    if (!(err <= worst)) worst = err;
  }
  return worst;
}

}  // namespace ember::testing
