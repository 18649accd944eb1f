// Activation functions shared by the fused kernels (linear, add_relu) and the plain ones.
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu/fast_math.h"

namespace ember::cpu {

enum class Activation : uint8_t { none, relu, gelu_tanh, gelu_erf, silu };

// Written with fast_exp / fast_erfc so a loop over activate() vectorises; each form is
// rewritten so nothing overflows: gelu_tanh(x) = x·σ(2u) with u = √(2/π)(x + 0.044715x³)
// (since 1 + tanh(u) = 2σ(2u)), gelu_erf(x) = x·erfc(-x/√2)/2, silu(x) = x·σ(x).
inline float activate(Activation act, float x) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return x > 0.0f ? x : 0.0f;
    case Activation::gelu_tanh: {
      constexpr float kTwoSqrt2OverPi = 1.5957691216057308f;
      return x / (1.0f + fast_exp(-kTwoSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case Activation::gelu_erf: return 0.5f * x * fast_erfc(-0.7071067811865476f * x);
    case Activation::silu: return x / (1.0f + fast_exp(-x));
  }
  return x;
}

// y[i] = act(x[i]); y may alias x. Parallel over the array.
void activation(Activation act, const float* x, float* y, int64_t count);

}  // namespace ember::cpu
