#include <algorithm>
#include <cmath>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {
namespace {

constexpr int kSubBlock = 32;
constexpr int kSubBlocks = kQK_K / kSubBlock;
constexpr int kMaxCode = 15;
constexpr int kMaxScaleCode = 63;

struct ScaleAndMin {
  int scale;
  int min;
};

// The packing described in block_formats.h: 6-bit pairs 0-3 whole in bytes 0-7, pairs 4-7
// split into a nibble byte and the two spare top bits of the first eight bytes.
ScaleAndMin unpack_scale_min(const uint8_t* scales, int sub_block) {
  if (sub_block < 4) return {scales[sub_block] & 63, scales[sub_block + 4] & 63};
  return {(scales[sub_block + 4] & 0x0f) | (scales[sub_block - 4] >> 6) << 4,
          (scales[sub_block + 4] >> 4) | (scales[sub_block] >> 6) << 4};
}

// ggml's make_qkx2_quants: fits x ≈ scale * code - offset with codes in [0, max_code] by
// weighted least squares, trying nstep + 1 inverse scales around max_code / range and
// keeping the lowest weighted squared error. Returns the scale and sets *offset (>= 0).
float fit_scale_and_offset(const float* x, const float* weights, uint8_t* codes, float* offset, int max_code,
                           float first_step, float step, int steps) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < kSubBlock; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  // The offset only ever shifts down: a block of positive values keeps 0 as its floor.
  min = std::min(min, 0.0f);
  if (max == min) {
    std::fill(codes, codes + kSubBlock, 0);
    *offset = -min;
    return 0.0f;
  }
  float inverse = max_code / (max - min);
  float scale = 1.0f / inverse;
  float best_error = 0.0f;
  for (int i = 0; i < kSubBlock; ++i) {
    codes[i] = static_cast<uint8_t>(std::clamp(nearest_int(inverse * (x[i] - min)), 0, max_code));
    const float diff = scale * codes[i] + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  uint8_t trial[kSubBlock];
  for (int s = 0; s <= steps; ++s) {
    inverse = (first_step + step * s + max_code) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < kSubBlock; ++i) {
      const int l = std::clamp(nearest_int(inverse * (x[i] - min)), 0, max_code);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += weights[i] * l;
      sum_l2 += weights[i] * l * l;
      sum_xl += weights[i] * l * x[i];
    }
    const float determinant = sum_w * sum_l2 - sum_l * sum_l;
    if (!(determinant > 0.0f)) continue;  // also skips a NaN, as ggml's D > 0 does
    float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant;
    float trial_min = (sum_l2 * sum_x - sum_l * sum_xl) / determinant;
    if (trial_min > 0.0f) {
      trial_min = 0.0f;
      trial_scale = sum_xl / sum_l2;
    }
    float error = 0.0f;
    for (int i = 0; i < kSubBlock; ++i) {
      const float diff = trial_scale * trial[i] + trial_min - x[i];
      error += weights[i] * (diff * diff);
    }
    if (error < best_error) {
      std::copy(trial, trial + kSubBlock, codes);
      best_error = error;
      scale = trial_scale;
      min = trial_min;
    }
  }
  *offset = -min;
  return scale;
}

}  // namespace

void pack_q4_k_scale_min(uint8_t* scales, int sub_block, uint8_t scale, uint8_t min) {
  if (sub_block < 4) {
    scales[sub_block] = scale;
    scales[sub_block + 4] = min;
    return;
  }
  scales[sub_block + 4] = static_cast<uint8_t>((scale & 0x0f) | (min & 0x0f) << 4);
  scales[sub_block - 4] |= static_cast<uint8_t>((scale >> 4) << 6);
  scales[sub_block] |= static_cast<uint8_t>((min >> 4) << 6);
}

void quantize_row_q4_k_reference(const float* x, BlockQ4_K* y, int64_t count) {
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK_K;
    uint8_t codes[kQK_K];
    float scales[kSubBlocks];
    float mins[kSubBlocks];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int s = 0; s < kSubBlocks; ++s) {
      const float* sub = in + s * kSubBlock;
      // Weights favour large values (they dominate a dot product) but keep a floor of
      // the sub-block's RMS so small values are not ignored.
      float sum_x2 = 0.0f;
      for (int i = 0; i < kSubBlock; ++i) sum_x2 += sub[i] * sub[i];
      const float rms = std::sqrt(sum_x2 / kSubBlock);
      float weights[kSubBlock];
      for (int i = 0; i < kSubBlock; ++i) weights[i] = rms + std::fabs(sub[i]);
      scales[s] = fit_scale_and_offset(sub, weights, codes + s * kSubBlock, &mins[s], kMaxCode, -1.0f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[s]);
      max_min = std::max(max_min, mins[s]);
    }

    const float inverse_scale = max_scale > 0.0f ? kMaxScaleCode / max_scale : 0.0f;
    const float inverse_min = max_min > 0.0f ? kMaxScaleCode / max_min : 0.0f;
    for (int s = 0; s < kSubBlocks; ++s) {
      // Narrowed to a byte before the clamp, exactly as ggml does.
      const auto scale_code = static_cast<uint8_t>(nearest_int(inverse_scale * scales[s]));
      const auto min_code = static_cast<uint8_t>(nearest_int(inverse_min * mins[s]));
      pack_q4_k_scale_min(y[b].scales, s, std::min<uint8_t>(kMaxScaleCode, scale_code),
                     std::min<uint8_t>(kMaxScaleCode, min_code));
    }
    y[b].d = f32_to_f16(max_scale / kMaxScaleCode);
    y[b].dmin = f32_to_f16(max_min / kMaxScaleCode);

    // Re-quantize against the scales as stored (6-bit codes times f16 factors); a
    // sub-block whose scale rounded to zero keeps the codes of its fit.
    const float d = f16_to_f32(y[b].d);
    const float dmin = f16_to_f32(y[b].dmin);
    for (int s = 0; s < kSubBlocks; ++s) {
      const ScaleAndMin packed = unpack_scale_min(y[b].scales, s);
      const float sub_scale = d * packed.scale;
      if (sub_scale == 0.0f) continue;
      const float sub_min = dmin * packed.min;
      for (int i = 0; i < kSubBlock; ++i) {
        const int l = nearest_int((in[s * kSubBlock + i] + sub_min) / sub_scale);
        codes[s * kSubBlock + i] = static_cast<uint8_t>(std::clamp(l, 0, kMaxCode));
      }
    }

    for (int group = 0; group < kSubBlocks / 2; ++group) {
      const uint8_t* low = codes + group * 2 * kSubBlock;
      for (int i = 0; i < kSubBlock; ++i)
        y[b].qs[group * kSubBlock + i] = static_cast<uint8_t>(low[i] | low[i + kSubBlock] << 4);
    }
  }
}

void dequantize_row_q4_k(const BlockQ4_K* x, float* y, int64_t count) {
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    float* out = y + b * kQK_K;
    for (int group = 0; group < kSubBlocks / 2; ++group) {
      const ScaleAndMin low = unpack_scale_min(x[b].scales, 2 * group);
      const ScaleAndMin high = unpack_scale_min(x[b].scales, 2 * group + 1);
      const float low_scale = d * low.scale;
      const float low_min = dmin * low.min;
      const float high_scale = d * high.scale;
      const float high_min = dmin * high.min;
      const uint8_t* q = x[b].qs + group * kSubBlock;
      for (int i = 0; i < kSubBlock; ++i) {
        out[2 * group * kSubBlock + i] = low_scale * (q[i] & 0x0f) - low_min;
        out[(2 * group + 1) * kSubBlock + i] = high_scale * (q[i] >> 4) - high_min;
      }
    }
  }
}

}  // namespace ember::quant
