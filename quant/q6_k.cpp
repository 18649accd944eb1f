#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {
namespace {

constexpr int kSubBlock = 16;
constexpr int kSubBlocks = kQK_K / kSubBlock;
constexpr int kCodeOffset = 32;  // codes are stored as q + 32 in [0, 63]
// ggml's GROUP_MAX_EPS: below this a group is treated as all zeros.
constexpr float kAllZero = 1e-15f;

// ggml's make_qx_quants with rmse_type 1 and no importance weights: symmetric codes in
// [-32, 31], weighted by x² so large values are fitted best. Starts from the scale that
// maps the signed extreme to -32, then tries 18 nearby inverse scales and keeps the one
// with the best least-squares fit. Returns the scale; codes come back offset by 32.
float fit_symmetric_scale(const float* x, int8_t* codes) {
  constexpr int kLimit = kCodeOffset;
  float amax = 0.0f;
  float extreme = 0.0f;
  for (int i = 0; i < kSubBlock; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      extreme = x[i];
    }
  }
  if (amax < kAllZero) {
    std::fill(codes, codes + kSubBlock, 0);
    return 0.0f;
  }
  float inverse = -kLimit / extreme;
  float sum_lx = 0.0f;
  float sum_l2 = 0.0f;
  for (int i = 0; i < kSubBlock; ++i) {
    const int l = std::clamp(nearest_int(inverse * x[i]), -kLimit, kLimit - 1);
    codes[i] = static_cast<int8_t>(l + kLimit);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * l;
    sum_l2 += w * l * l;
  }
  float scale = sum_l2 != 0.0f ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    inverse = -(kLimit + 0.1f * step) / extreme;
    sum_lx = 0.0f;
    sum_l2 = 0.0f;
    for (int i = 0; i < kSubBlock; ++i) {
      const int l = std::clamp(nearest_int(inverse * x[i]), -kLimit, kLimit - 1);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * l;
      sum_l2 += w * l * l;
    }
    // Maximising sum_lx² / sum_l2 minimises the weighted squared error at the best scale.
    if (sum_l2 > 0.0f && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < kSubBlock; ++i)
        codes[i] = static_cast<int8_t>(std::clamp(nearest_int(inverse * x[i]), -kLimit, kLimit - 1) + kLimit);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

}  // namespace

void quantize_row_q6_k_reference(const float* x, BlockQ6_K* y, int64_t count) {
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK_K;
    int8_t codes[kQK_K];
    float scales[kSubBlocks];
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    for (int s = 0; s < kSubBlocks; ++s) {
      scales[s] = fit_symmetric_scale(in + s * kSubBlock, codes + s * kSubBlock);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    if (max_abs_scale < kAllZero) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }

    // The sub-block scale of largest magnitude maps to -128, the int8 end with room.
    const float inverse = -128.0f / max_scale;
    y[b].d = f32_to_f16(1.0f / inverse);
    for (int s = 0; s < kSubBlocks; ++s)
      y[b].scales[s] = static_cast<int8_t>(std::min(127, nearest_int(inverse * scales[s])));

    // Re-quantize against the scales as stored; a sub-block whose scale rounded to zero
    // keeps the codes of its fit.
    const float d = f16_to_f32(y[b].d);
    for (int s = 0; s < kSubBlocks; ++s) {
      const float sub_scale = d * y[b].scales[s];
      if (sub_scale == 0.0f) continue;
      for (int i = 0; i < kSubBlock; ++i) {
        const int l = std::clamp(nearest_int(in[s * kSubBlock + i] / sub_scale), -kCodeOffset, kCodeOffset - 1);
        codes[s * kSubBlock + i] = static_cast<int8_t>(l + kCodeOffset);
      }
    }

    for (int half = 0; half < 2; ++half) {
      const int8_t* q = codes + half * 128;
      uint8_t* ql = y[b].ql + half * 64;
      uint8_t* qh = y[b].qh + half * 32;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((q[l] & 0x0f) | (q[l + 64] & 0x0f) << 4);
        ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0x0f) | (q[l + 96] & 0x0f) << 4);
        qh[l] = static_cast<uint8_t>(q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
      }
    }
  }
}

void dequantize_row_q6_k(const BlockQ6_K* x, float* y, int64_t count) {
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + half * 64;
      const uint8_t* qh = x[b].qh + half * 32;
      const int8_t* sc = x[b].scales + half * 8;
      float* out = y + b * kQK_K + half * 128;
      for (int l = 0; l < 32; ++l) {
        const int sub = l / 16;
        const int q0 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - kCodeOffset;
        const int q1 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - kCodeOffset;
        const int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - kCodeOffset;
        const int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - kCodeOffset;
        out[l] = d * sc[sub] * q0;
        out[l + 32] = d * sc[sub + 2] * q1;
        out[l + 64] = d * sc[sub + 4] * q2;
        out[l + 96] = d * sc[sub + 6] * q3;
      }
    }
  }
}

}  // namespace ember::quant
