// Elementwise ops over up to 4 dimensions with NumPy broadcasting.
#pragma once

#include <array>
#include <cstdint>

#include "cpu/activation.h"

namespace ember::cpu {

using Dims4 = std::array<int64_t, 4>;

// An f32 operand addressed with element strides; stride 0 on an axis broadcasts it.
struct StridedInput {
  const float* data = nullptr;
  Dims4 strides{};
};

enum class BinaryOp : uint8_t { add, sub, mul, div };

// out[i] = post(a[i] op b[i]) for every index i of dims; out is contiguous over dims.
// `post` fuses a following activation (add→relu becomes one pass).
void binary(BinaryOp op, StridedInput a, StridedInput b, float* out, const Dims4& dims,
            Activation post = Activation::none);

// out[i] = x[i] * scale[i] + shift[i] (the fused mul→add), all broadcast like binary.
void affine(StridedInput x, StridedInput scale, StridedInput shift, float* out, const Dims4& dims);

// y[i] = x[i] * factor; y may alias x.
void scale(const float* x, float factor, float* y, int64_t count);

// y[i] = silu(gate[i]) * up[i]  (the SwiGLU feed-forward gate).
void swiglu(const float* gate, const float* up, float* y, int64_t count);

}  // namespace ember::cpu
