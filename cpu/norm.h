// Normalisations over the last axis of contiguous [rows, cols].
#pragma once

#include <cstdint>

namespace ember::cpu {

// y = x / sqrt(mean(x²) + eps) * weight; weight may be null (then 1). y may alias x.
void rms_norm(const float* x, const float* weight, float* y, int64_t rows, int64_t cols, float eps);

// y = (x - mean) / sqrt(var + eps) * weight + bias; weight and bias may be null. y may alias x.
void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int64_t cols,
                float eps);

}  // namespace ember::cpu
