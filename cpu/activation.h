// Activation functions shared by the fused kernels (linear, add_relu) and the plain ones.
#pragma once

#include <cmath>
#include <cstdint>

namespace ember::cpu {

enum class Activation : uint8_t { none, relu, gelu_tanh, gelu_erf, silu };

inline float activate(Activation act, float x) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return x > 0.0f ? x : 0.0f;
    case Activation::gelu_tanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case Activation::gelu_erf: return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case Activation::silu: return x / (1.0f + std::exp(-x));
  }
  return x;
}

// y[i] = act(x[i]); y may alias x. Parallel over the array.
void activation(Activation act, const float* x, float* y, int64_t count);

}  // namespace ember::cpu
