// q4_K and q6_K with AVX2, byte-identical to quant::quantize_row_q4_k_reference and
// quantize_row_q6_k_reference. The costly part of each reference is the scale search run on
// every sub-block on its own; here lane j of every vector walks sub-block j, so one pass
// runs eight searches.
// Each lane performs exactly the reference's float operations in the same order (the same
// sums built element by element, true divisions, nearest_int's rounding), and blends
// replace the reference's branches, so every lane ends with the reference's values.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/quantize.h"
#include "quant/block_formats.h"
#include "quant/quantize.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace, and nothing from quant/'s inline
// headers is called: an inline function shared by name with a file built for another ISA
// could be merged by the linker into the wrong variant.
namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;

constexpr int kSubBlock = 32;
constexpr int kSubBlocks = quant::kQK_K / kSubBlock;  // one per lane
constexpr int kMaxCode = 15;
constexpr int kMaxScaleCode = 63;
// The reference's search: inverse scales (kFirstStep + kStep * s + kMaxCode) / range.
constexpr float kFirstStep = -1.0f;
constexpr float kStep = 0.1f;
constexpr int kSteps = 20;

// quant::nearest_int lane by lane: the sum with 1.5 * 2^23 rounds half to even and leaves
// the integer in the low mantissa bits. Same bits as the reference for every input.
__m256i nearest_int(__m256 value) {
  const __m256 shifted = _mm256_add_ps(value, _mm256_set1_ps(12582912.0f));
  const __m256i mantissa = _mm256_and_si256(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x007fffff));
  return _mm256_sub_epi32(mantissa, _mm256_set1_epi32(0x00400000));
}

int nearest_int(float value) { return _mm256_cvtsi256_si32(nearest_int(_mm256_set1_ps(value))); }

// nearest_int clamped to [0, kMaxCode], as a float (the reference converts the int code
// to float wherever it multiplies with one).
__m256 code_of(__m256 value) {
  const __m256i code = _mm256_min_epi32(_mm256_max_epi32(nearest_int(value), _mm256_setzero_si256()),
                                        _mm256_set1_epi32(kMaxCode));
  return _mm256_cvtepi32_ps(code);
}

// Eight consecutive sub-blocks of kLength floats turned so that x[i] holds element i of
// sub-block j in lane j.
template <int kLength>
void transpose_sub_blocks(const float* in, __m256 (&x)[kLength]) {
  for (int column = 0; column < kLength; column += 8) {
    __m256 row[8];
    for (int j = 0; j < 8; ++j) row[j] = _mm256_loadu_ps(in + j * kLength + column);
    const __m256 t0 = _mm256_unpacklo_ps(row[0], row[1]);
    const __m256 t1 = _mm256_unpackhi_ps(row[0], row[1]);
    const __m256 t2 = _mm256_unpacklo_ps(row[2], row[3]);
    const __m256 t3 = _mm256_unpackhi_ps(row[2], row[3]);
    const __m256 t4 = _mm256_unpacklo_ps(row[4], row[5]);
    const __m256 t5 = _mm256_unpackhi_ps(row[4], row[5]);
    const __m256 t6 = _mm256_unpacklo_ps(row[6], row[7]);
    const __m256 t7 = _mm256_unpackhi_ps(row[6], row[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    x[column + 0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    x[column + 1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    x[column + 2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    x[column + 3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    x[column + 4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    x[column + 5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    x[column + 6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    x[column + 7] = _mm256_permute2f128_ps(u3, u7, 0x31);
  }
}

// Weighted squared error of the fit scale * code + min against x, summed in element order.
__m256 fit_error(const __m256 (&x)[kSubBlock], const __m256 (&weights)[kSubBlock], const __m256 (&codes)[kSubBlock],
                 __m256 scale, __m256 min) {
  __m256 error = _mm256_setzero_ps();
  for (int i = 0; i < kSubBlock; ++i) {
    const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, codes[i]), min), x[i]);
    error = _mm256_add_ps(error, _mm256_mul_ps(weights[i], _mm256_mul_ps(diff, diff)));
  }
  return error;
}

struct SubBlockFits {
  alignas(32) float scale[kSubBlocks];
  alignas(32) float offset[kSubBlocks];
  // codes[i][j]: element i of sub-block j, as the fit left it.
  alignas(32) float codes[kSubBlock][kSubBlocks];
};

// The reference's weights and fit_scale_and_offset for all eight sub-blocks at once.
void fit_sub_blocks(const float* in, SubBlockFits& fits) {
  __m256 x[kSubBlock];
  transpose_sub_blocks<kSubBlock>(in, x);

  __m256 sum_x2 = _mm256_setzero_ps();
  for (int i = 0; i < kSubBlock; ++i) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(x[i], x[i]));
  const __m256 rms = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(static_cast<float>(kSubBlock))));
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 weights[kSubBlock];
  for (int i = 0; i < kSubBlock; ++i) weights[i] = _mm256_add_ps(rms, _mm256_andnot_ps(sign_bit, x[i]));

  // minps/maxps return their second operand unless the first is strictly beyond it,
  // which keeps the first extreme on a tie as std::min/std::max do (it matters for ±0).
  __m256 min = x[0];
  __m256 max = x[0];
  __m256 sum_w = weights[0];
  __m256 sum_x = _mm256_mul_ps(sum_w, x[0]);
  for (int i = 1; i < kSubBlock; ++i) {
    min = _mm256_min_ps(x[i], min);
    max = _mm256_max_ps(x[i], max);
    sum_w = _mm256_add_ps(sum_w, weights[i]);
    sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(weights[i], x[i]));
  }
  min = _mm256_min_ps(_mm256_setzero_ps(), min);
  // Lanes with no range take the reference's early return: codes 0, scale 0. Their
  // search below runs on infinities and its results are discarded.
  const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
  const __m256 original_min = min;

  __m256 inverse = _mm256_div_ps(_mm256_set1_ps(static_cast<float>(kMaxCode)), _mm256_sub_ps(max, min));
  __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), inverse);
  __m256 codes[kSubBlock];
  for (int i = 0; i < kSubBlock; ++i) codes[i] = code_of(_mm256_mul_ps(inverse, _mm256_sub_ps(x[i], min)));
  __m256 best_error = fit_error(x, weights, codes, scale, min);

  const __m256 zero = _mm256_setzero_ps();
  for (int s = 0; s <= kSteps; ++s) {
    // Scalar, in the reference's order: ((first_step + step * s) + max_code).
    const float numerator = kFirstStep + kStep * static_cast<float>(s) + static_cast<float>(kMaxCode);
    // The reference divides by max - min with min as the best fit so far has moved it.
    inverse = _mm256_div_ps(_mm256_set1_ps(numerator), _mm256_sub_ps(max, min));
    __m256 trial[kSubBlock];
    __m256 sum_l = zero;
    __m256 sum_l2 = zero;
    __m256 sum_xl = zero;
    for (int i = 0; i < kSubBlock; ++i) {
      const __m256 l = code_of(_mm256_mul_ps(inverse, _mm256_sub_ps(x[i], min)));
      trial[i] = l;
      const __m256 weighted = _mm256_mul_ps(weights[i], l);
      sum_l = _mm256_add_ps(sum_l, weighted);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(weighted, l));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(weighted, x[i]));
    }
    const __m256 determinant = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    const __m256 solvable = _mm256_cmp_ps(determinant, zero, _CMP_GT_OQ);  // false on NaN, as the reference
    __m256 trial_scale =
        _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), determinant);
    __m256 trial_min =
        _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), determinant);
    const __m256 positive_min = _mm256_cmp_ps(trial_min, zero, _CMP_GT_OQ);
    trial_min = _mm256_blendv_ps(trial_min, zero, positive_min);
    trial_scale = _mm256_blendv_ps(trial_scale, _mm256_div_ps(sum_xl, sum_l2), positive_min);
    const __m256 error = fit_error(x, weights, trial, trial_scale, trial_min);
    // Strictly lower only, so the first best wins a tie as in the reference.
    const __m256 better =
        _mm256_andnot_ps(flat, _mm256_and_ps(solvable, _mm256_cmp_ps(error, best_error, _CMP_LT_OQ)));
    if (_mm256_movemask_ps(better) == 0) continue;
    for (int i = 0; i < kSubBlock; ++i) codes[i] = _mm256_blendv_ps(codes[i], trial[i], better);
    best_error = _mm256_blendv_ps(best_error, error, better);
    scale = _mm256_blendv_ps(scale, trial_scale, better);
    min = _mm256_blendv_ps(min, trial_min, better);
  }

  // A flat lane never improves, so its min is still the original one.
  _mm256_store_ps(fits.scale, _mm256_blendv_ps(scale, zero, flat));
  _mm256_store_ps(fits.offset, _mm256_xor_ps(_mm256_blendv_ps(min, original_min, flat), sign_bit));
  for (int i = 0; i < kSubBlock; ++i) _mm256_store_ps(fits.codes[i], _mm256_blendv_ps(codes[i], zero, flat));
}

uint16_t to_half(float value) { return _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT); }
float from_half(uint16_t half) { return _cvtsh_ss(half); }

// The reference's narrowing to a byte, then the clamp to 6 bits.
uint8_t scale_code(float inverse, float value) {
  const auto code = static_cast<uint8_t>(nearest_int(inverse * value));
  return code < kMaxScaleCode ? code : static_cast<uint8_t>(kMaxScaleCode);
}

void quantize_block_q4_k(const float* in, BlockQ4_K& y) {
  SubBlockFits fits;
  fit_sub_blocks(in, fits);

  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int s = 0; s < kSubBlocks; ++s) {
    if (max_scale < fits.scale[s]) max_scale = fits.scale[s];
    if (max_min < fits.offset[s]) max_min = fits.offset[s];
  }
  const float inverse_scale = max_scale > 0.0f ? kMaxScaleCode / max_scale : 0.0f;
  const float inverse_min = max_min > 0.0f ? kMaxScaleCode / max_min : 0.0f;
  uint8_t scale_codes[kSubBlocks];
  uint8_t min_codes[kSubBlocks];
  for (int s = 0; s < kSubBlocks; ++s) {
    scale_codes[s] = scale_code(inverse_scale, fits.scale[s]);
    min_codes[s] = scale_code(inverse_min, fits.offset[s]);
    quant::pack_q4_k_scale_min(y.scales, s, scale_codes[s], min_codes[s]);
  }
  y.d = to_half(max_scale / kMaxScaleCode);
  y.dmin = to_half(max_min / kMaxScaleCode);

  // Re-quantize against the scales as stored; a sub-block whose scale rounded to zero
  // keeps the codes of its fit.
  const float d = from_half(y.d);
  const float dmin = from_half(y.dmin);
  alignas(32) int32_t codes[quant::kQK_K];
  for (int s = 0; s < kSubBlocks; ++s) {
    const float sub_scale = d * static_cast<float>(scale_codes[s]);
    int32_t* sub_codes = codes + s * kSubBlock;
    if (sub_scale == 0.0f) {
      for (int i = 0; i < kSubBlock; ++i) sub_codes[i] = static_cast<int32_t>(fits.codes[i][s]);
      continue;
    }
    const __m256 divisor = _mm256_set1_ps(sub_scale);
    const __m256 offset = _mm256_set1_ps(dmin * static_cast<float>(min_codes[s]));
    for (int i = 0; i < kSubBlock; i += 8) {
      const __m256 value = _mm256_add_ps(_mm256_loadu_ps(in + s * kSubBlock + i), offset);
      const __m256i code = _mm256_min_epi32(
          _mm256_max_epi32(nearest_int(_mm256_div_ps(value, divisor)), _mm256_setzero_si256()),
          _mm256_set1_epi32(kMaxCode));
      _mm256_store_si256(reinterpret_cast<__m256i*>(sub_codes + i), code);
    }
  }

  // Sub-blocks 2g and 2g + 1 share 32 bytes: low nibble from the first, high from the second.
  for (int group = 0; group < kSubBlocks / 2; ++group) {
    const int32_t* low = codes + group * 2 * kSubBlock;
    for (int i = 0; i < kSubBlock; ++i)
      y.qs[group * kSubBlock + i] = static_cast<uint8_t>(low[i] | low[i + kSubBlock] << 4);
  }
}

// q6_K: sixteen sub-blocks of 16, run as two sets of eight lanes.
constexpr int kQ6SubBlock = 16;
constexpr int kQ6SubBlocks = quant::kQK_K / kQ6SubBlock;
constexpr int kQ6CodeOffset = 32;  // codes are stored as q + 32 in [0, 63]
constexpr float kQ6AllZero = 1e-15f;  // ggml's GROUP_MAX_EPS

// nearest_int clamped to [-32, 31], as the float the reference's sums multiply with.
__m256 signed_code_of(__m256 value) {
  const __m256i code = _mm256_min_epi32(_mm256_max_epi32(nearest_int(value), _mm256_set1_epi32(-kQ6CodeOffset)),
                                        _mm256_set1_epi32(kQ6CodeOffset - 1));
  return _mm256_cvtepi32_ps(code);
}

struct SymmetricFits {
  alignas(32) float scale[8];
  // codes[i][j]: element i of sub-block j, stored as the reference stores it (q + 32,
  // or 0 for an all-zero sub-block).
  alignas(32) float codes[kQ6SubBlock][8];
};

// The reference's fit_symmetric_scale for eight consecutive sub-blocks at once.
void fit_symmetric_sub_blocks(const float* in, SymmetricFits& fits) {
  __m256 x[kQ6SubBlock];
  transpose_sub_blocks<kQ6SubBlock>(in, x);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);

  // The first element of largest magnitude: only a strictly larger one replaces it.
  __m256 amax = zero;
  __m256 extreme = zero;
  for (int i = 0; i < kQ6SubBlock; ++i) {
    const __m256 magnitude = _mm256_andnot_ps(sign_bit, x[i]);
    const __m256 larger = _mm256_cmp_ps(magnitude, amax, _CMP_GT_OQ);
    amax = _mm256_blendv_ps(amax, magnitude, larger);
    extreme = _mm256_blendv_ps(extreme, x[i], larger);
  }
  // Lanes below the threshold take the reference's early return: codes 0, scale 0.
  const __m256 all_zero = _mm256_cmp_ps(amax, _mm256_set1_ps(kQ6AllZero), _CMP_LT_OQ);

  __m256 inverse = _mm256_div_ps(_mm256_set1_ps(static_cast<float>(-kQ6CodeOffset)), extreme);
  __m256 codes[kQ6SubBlock];
  __m256 sum_lx = zero;
  __m256 sum_l2 = zero;
  for (int i = 0; i < kQ6SubBlock; ++i) {
    const __m256 l = signed_code_of(_mm256_mul_ps(inverse, x[i]));
    codes[i] = l;
    const __m256 w = _mm256_mul_ps(x[i], x[i]);
    sum_lx = _mm256_add_ps(sum_lx, _mm256_mul_ps(_mm256_mul_ps(w, x[i]), l));
    sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(_mm256_mul_ps(w, l), l));
  }
  // sum_l2 != 0, true on NaN as in the reference.
  __m256 scale = _mm256_and_ps(_mm256_div_ps(sum_lx, sum_l2), _mm256_cmp_ps(sum_l2, zero, _CMP_NEQ_UQ));
  __m256 best = _mm256_mul_ps(scale, sum_lx);
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    // Scalar, in the reference's order: -(limit + 0.1 * step), then the division.
    const float numerator = -(static_cast<float>(kQ6CodeOffset) + 0.1f * static_cast<float>(step));
    inverse = _mm256_div_ps(_mm256_set1_ps(numerator), extreme);
    __m256 trial[kQ6SubBlock];
    __m256 trial_lx = zero;
    __m256 trial_l2 = zero;
    for (int i = 0; i < kQ6SubBlock; ++i) {
      const __m256 l = signed_code_of(_mm256_mul_ps(inverse, x[i]));
      trial[i] = l;
      const __m256 w = _mm256_mul_ps(x[i], x[i]);
      trial_lx = _mm256_add_ps(trial_lx, _mm256_mul_ps(_mm256_mul_ps(w, x[i]), l));
      trial_l2 = _mm256_add_ps(trial_l2, _mm256_mul_ps(_mm256_mul_ps(w, l), l));
    }
    const __m256 better =
        _mm256_and_ps(_mm256_cmp_ps(trial_l2, zero, _CMP_GT_OQ),
                      _mm256_cmp_ps(_mm256_mul_ps(trial_lx, trial_lx), _mm256_mul_ps(best, trial_l2), _CMP_GT_OQ));
    if (_mm256_movemask_ps(better) == 0) continue;
    for (int i = 0; i < kQ6SubBlock; ++i) codes[i] = _mm256_blendv_ps(codes[i], trial[i], better);
    scale = _mm256_blendv_ps(scale, _mm256_div_ps(trial_lx, trial_l2), better);
    best = _mm256_blendv_ps(best, _mm256_mul_ps(scale, trial_lx), better);
  }

  _mm256_store_ps(fits.scale, _mm256_blendv_ps(scale, zero, all_zero));
  const __m256 offset = _mm256_set1_ps(static_cast<float>(kQ6CodeOffset));
  for (int i = 0; i < kQ6SubBlock; ++i)
    _mm256_store_ps(fits.codes[i], _mm256_blendv_ps(_mm256_add_ps(codes[i], offset), zero, all_zero));
}

void quantize_block_q6_k(const float* in, BlockQ6_K& y) {
  SymmetricFits fits[2];
  fit_symmetric_sub_blocks(in, fits[0]);
  fit_symmetric_sub_blocks(in + quant::kQK_K / 2, fits[1]);

  float scales[kQ6SubBlocks];
  float max_scale = 0.0f;
  float max_abs_scale = 0.0f;
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    scales[s] = fits[s / 8].scale[s % 8];
    const float magnitude = scales[s] < 0.0f ? -scales[s] : scales[s];
    if (magnitude > max_abs_scale) {
      max_abs_scale = magnitude;
      max_scale = scales[s];
    }
  }
  if (max_abs_scale < kQ6AllZero) {
    std::memset(&y, 0, sizeof y);
    return;
  }

  const float inverse = -128.0f / max_scale;
  y.d = to_half(1.0f / inverse);
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    const int code = nearest_int(inverse * scales[s]);
    y.scales[s] = static_cast<int8_t>(code < 127 ? code : 127);
  }

  // Re-quantize against the scales as stored; a sub-block whose scale rounded to zero
  // keeps the codes of its fit.
  const float d = from_half(y.d);
  alignas(32) int32_t codes[quant::kQK_K];
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    const float sub_scale = d * static_cast<float>(y.scales[s]);
    int32_t* sub_codes = codes + s * kQ6SubBlock;
    if (sub_scale == 0.0f) {
      for (int i = 0; i < kQ6SubBlock; ++i) sub_codes[i] = static_cast<int32_t>(fits[s / 8].codes[i][s % 8]);
      continue;
    }
    const __m256 divisor = _mm256_set1_ps(sub_scale);
    for (int i = 0; i < kQ6SubBlock; i += 8) {
      const __m256 value = _mm256_loadu_ps(in + s * kQ6SubBlock + i);
      const __m256i code = _mm256_add_epi32(_mm256_cvttps_epi32(signed_code_of(_mm256_div_ps(value, divisor))),
                                            _mm256_set1_epi32(kQ6CodeOffset));
      _mm256_store_si256(reinterpret_cast<__m256i*>(sub_codes + i), code);
    }
  }

  // The layout of block_formats.h, as the reference writes it.
  for (int half = 0; half < 2; ++half) {
    const int32_t* q = codes + half * 128;
    uint8_t* ql = y.ql + half * 64;
    uint8_t* qh = y.qh + half * 32;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((q[l] & 0x0f) | (q[l + 64] & 0x0f) << 4);
      ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0x0f) | (q[l + 96] & 0x0f) << 4);
      qh[l] = static_cast<uint8_t>(q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
    }
  }
}

}  // namespace

void quantize_q4_k_avx2(const float* x, void* blocks, int64_t count) {
  auto* y = static_cast<BlockQ4_K*>(blocks);
  for (int64_t b = 0; b < count / quant::kQK_K; ++b) quantize_block_q4_k(x + b * quant::kQK_K, y[b]);
}

void quantize_q6_k_avx2(const float* x, void* blocks, int64_t count) {
  auto* y = static_cast<BlockQ6_K*>(blocks);
  for (int64_t b = 0; b < count / quant::kQK_K; ++b) quantize_block_q6_k(x + b * quant::kQK_K, y[b]);
}

}  // namespace ember::cpu::x86
