// f16/bf16 conversions against the hardware (F16C) and against the format's definition.
#include <cpuid.h>
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "quant/bf16.h"
#include "quant/convert.h"
#include "quant/f16.h"
#include "test_util.h"

namespace ember::quant {
namespace {

// The hardware conversions, compiled for F16C whatever the build targets; callers check
// the CPU has it first.
__attribute__((target("f16c"))) float hardware_widen(uint16_t half) { return _cvtsh_ss(half); }
__attribute__((target("f16c"))) uint16_t hardware_narrow(float value) {
  return _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT);
}

// From CPUID itself: clang 14's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// Every one of the 65536 halves widens exactly as F16C widens it (NaN stays NaN).
TEST(F16, WideningMatchesF16CForEveryHalf) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "CPU lacks F16C";
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float ours = f16_to_f32(static_cast<uint16_t>(bits));
    const float hardware = hardware_widen(static_cast<uint16_t>(bits));
    if (std::isnan(hardware)) {
      EXPECT_TRUE(std::isnan(ours)) << bits;
    } else {
      EXPECT_EQ(ours, hardware) << "half bits " << bits;  // exact: both are the format's definition
    }
  }
}

// Narrowing rounds to nearest even exactly as F16C does, on random floats of every magnitude.
TEST(F16, NarrowingMatchesF16C) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "CPU lacks F16C";
  ember::testing::SeededRng rng;
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 2000000; ++i) {
    const float value = from_bits(any_bits(rng.engine()));
    const uint16_t hardware = hardware_narrow(value);
    const uint16_t ours = f32_to_f16(value);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(ours)));
    } else {
      ASSERT_EQ(ours, hardware) << "float " << value;  // exact bit pattern
    }
  }
}

TEST(F16, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(f32_to_f16(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
}

TEST(BF16, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // above tie
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));  // NaN must not become inf
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
}

TEST(Convert, RowsMatchScalar) {
  ember::testing::SeededRng rng;
  const int64_t count = 1000 + 13;
  auto values = rng.normal(count, 100.0f);
  std::vector<uint16_t> halves(count), brains(count);
  std::vector<float> widened = ember::testing::poisoned(count), widened_bf = ember::testing::poisoned(count);
  f32_to_f16_row(values.data(), halves.data(), count);
  f32_to_bf16_row(values.data(), brains.data(), count);
  f16_to_f32_row(halves.data(), widened.data(), count);
  bf16_to_f32_row(brains.data(), widened_bf.data(), count);
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(halves[i], f32_to_f16(values[i]));  // exact: row and scalar paths agree
    ASSERT_EQ(brains[i], f32_to_bf16(values[i]));
    ASSERT_EQ(widened[i], f16_to_f32(halves[i]));
    ASSERT_EQ(widened_bf[i], bf16_to_f32(brains[i]));
  }
}

}  // namespace
}  // namespace ember::quant
