// exp and erfc in plain, branch-free C++ so loops over them vectorise (libm's expf and
// tanhf are scalar calls: GELU through tanhf cost ~40 ns per element, more than the
// matmul it follows). Accuracy is stated per function and checked in tests/cpu.
#pragma once

#include <algorithm>
#include <cmath>
#include <bit>
#include <cstdint>

namespace ember::cpu {

// e^x with a relative error below 2e-7 for x in [-87.3, 88.3]; inputs outside are
// clamped to that range (so e^x never reaches 0 or infinity: callers rely on that).
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // Round x / ln 2 to the nearest integer n by adding 1.5·2^23: the integer lands in the
  // low mantissa bits, no float-to-int conversion call needed.
  constexpr float kRoundingShift = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kRoundingShift;
  const float n = shifted - kRoundingShift;
  const int32_t exponent = static_cast<int32_t>(std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRoundingShift));
  // r = x - n ln 2 in two parts (Cody-Waite) so r keeps its low bits; |r| ≤ ln2 / 2.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  // Cephes expf minimax polynomial for e^r on |r| ≤ ln2 / 2.
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  return e_r * std::bit_cast<float>(static_cast<uint32_t>(exponent + 127) << 23);
}

// erfc(x) with a relative error below 1.2e-7 (Numerical Recipes' Chebyshev fit of
// erfc(|x|) = t·exp(-x² + P(t)), t = 1/(1 + |x|/2)), extended to x < 0 by 2 - erfc(-x).
inline float fast_erfc(float x) {
  const float z = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float tail = t * fast_exp(p - z * z);
  return x >= 0.0f ? tail : 2.0f - tail;
}

}  // namespace ember::cpu
