#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/quantize.h"
#include "quant/block_formats.h"
#include "quant/quantize.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ8_0;
using quant::BlockQ8_1;
using quant::BlockQ8_K;

constexpr int kLanes = 16;

uint16_t to_half(float value) { return _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT); }

// roundf (half away from zero), which q8_0's reference uses: truncate, then step one away
// from zero where the dropped fraction is at least one half. v - trunc(v) is exact.
__m512 round_half_away(__m512 v) {
  const __m512 truncated = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 fraction = _mm512_abs_ps(_mm512_sub_ps(v, truncated));
  const __mmask16 away = _mm512_cmp_ps_mask(fraction, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 unit_step = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
  return _mm512_mask_add_ps(truncated, away, truncated, unit_step);
}

// The first element of x[0 .. 16 * vectors) equal to `target` (which one of them is).
// The references keep the first element that attains a max or min (strict comparisons),
// and which one matters: +0 and -0 compare equal but store different f16 bits.
template <int kVectors>
float first_equal(const float* x, const __m512 (&v)[kVectors], float target) {
  const __m512 wanted = _mm512_set1_ps(target);
  for (int k = 0; k < kVectors; ++k) {
    const __mmask16 hits = _mm512_cmp_ps_mask(v[k], wanted, _CMP_EQ_OQ);
    if (hits != 0) return x[k * kLanes + __builtin_ctz(hits)];
  }
  return target;
}

// The signed value of largest magnitude, the first one on a tie; +0 when all are zero.
template <int kVectors>
float signed_extreme(const float* x, const __m512 (&v)[kVectors], float& amax) {
  __m512 largest = _mm512_abs_ps(v[0]);
  for (int k = 1; k < kVectors; ++k) largest = _mm512_max_ps(largest, _mm512_abs_ps(v[k]));
  amax = _mm512_reduce_max_ps(largest);
  if (amax == 0.0f) return 0.0f;
  const __m512 wanted = _mm512_set1_ps(amax);
  for (int k = 0; k < kVectors; ++k) {
    const __mmask16 hits = _mm512_cmp_ps_mask(_mm512_abs_ps(v[k]), wanted, _CMP_EQ_OQ);
    if (hits != 0) return x[k * kLanes + __builtin_ctz(hits)];
  }
  return 0.0f;
}

// q8_0, and q8_1 which adds s = d * Σ codes (int sum times the f32 d, as its reference).
template <class Block>
void quantize_q8(const float* x, Block* y, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK8_0;
    const __m512 v[2] = {_mm512_loadu_ps(in), _mm512_loadu_ps(in + kLanes)};
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
    const float d = amax / 127.0f;
    const __m512 inverse = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = to_half(d);
    __m512i codes[2];
    for (int k = 0; k < 2; ++k) {
      codes[k] = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v[k], inverse)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + k * kLanes), _mm512_cvtsepi32_epi8(codes[k]));
    }
    if constexpr (std::is_same_v<Block, BlockQ8_1>)
      y[b].s = to_half(static_cast<float>(_mm512_reduce_add_epi32(_mm512_add_epi32(codes[0], codes[1]))) * d);
  }
}

// Low nibbles from the first 16 codes, high nibbles from the last 16: byte j = q[j] | q[j+16] << 4.
void store_nibbles(uint8_t* out, __m512i low, __m512i high) {
  const __m512i packed = _mm512_or_si512(low, _mm512_slli_epi32(high, 4));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(packed));
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t blocks) {
  const __m512i max_code = _mm512_set1_epi32(15);
  const __m512 bias = _mm512_set1_ps(8.5f);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK4_0;
    const __m512 v[2] = {_mm512_loadu_ps(in), _mm512_loadu_ps(in + kLanes)};
    float amax;
    const float d = signed_extreme(in, v, amax) / -8.0f;
    const __m512 inverse = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = to_half(d);
    __m512i codes[2];
    for (int k = 0; k < 2; ++k)
      codes[k] = _mm512_min_epi32(max_code, _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(v[k], inverse), bias)));
    store_nibbles(y[b].qs, codes[0], codes[1]);
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t blocks) {
  const __m512i max_code = _mm512_set1_epi32(15);
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK4_1;
    const __m512 v[2] = {_mm512_loadu_ps(in), _mm512_loadu_ps(in + kLanes)};
    const float min = first_equal(in, v, _mm512_reduce_min_ps(_mm512_min_ps(v[0], v[1])));
    const float max = first_equal(in, v, _mm512_reduce_max_ps(_mm512_max_ps(v[0], v[1])));
    const float d = (max - min) / 15.0f;
    const __m512 inverse = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    const __m512 offset = _mm512_set1_ps(min);
    y[b].d = to_half(d);
    y[b].m = to_half(min);
    __m512i codes[2];
    for (int k = 0; k < 2; ++k) {
      const __m512 scaled = _mm512_mul_ps(_mm512_sub_ps(v[k], offset), inverse);
      codes[k] = _mm512_min_epi32(max_code, _mm512_cvttps_epi32(_mm512_add_ps(scaled, half)));
    }
    store_nibbles(y[b].qs, codes[0], codes[1]);
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t blocks) {
  constexpr int kVectors = quant::kQK_K / kLanes;  // one 16-element bsums group per vector
  const __m512i max_code = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK_K;
    __m512 v[kVectors];
    for (int k = 0; k < kVectors; ++k) v[k] = _mm512_loadu_ps(in + k * kLanes);
    float amax;
    const float extreme = signed_extreme(in, v, amax);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);  // as the reference: d, codes and sums all zero
      continue;
    }
    const float inverse = -127.0f / extreme;
    const __m512 scale = _mm512_set1_ps(inverse);
    for (int k = 0; k < kVectors; ++k) {
      // cvtps rounds half to even under the default MXCSR, as the reference's nearest_int.
      const __m512i codes = _mm512_min_epi32(max_code, _mm512_cvtps_epi32(_mm512_mul_ps(scale, v[k])));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + k * kLanes), _mm512_cvtsepi32_epi8(codes));
      y[b].bsums[k] = static_cast<int16_t>(_mm512_reduce_add_epi32(codes));
    }
    y[b].d = 1.0f / inverse;
  }
}

}  // namespace

void quantize_blocks_avx512(DType type, const float* x, void* blocks, int64_t count) {
  switch (type) {
    case DType::q8_0: quantize_q8(x, static_cast<BlockQ8_0*>(blocks), count / quant::kQK8_0); break;
    case DType::q8_1: quantize_q8(x, static_cast<BlockQ8_1*>(blocks), count / quant::kQK8_1); break;
    case DType::q4_0: quantize_q4_0(x, static_cast<BlockQ4_0*>(blocks), count / quant::kQK4_0); break;
    case DType::q4_1: quantize_q4_1(x, static_cast<BlockQ4_1*>(blocks), count / quant::kQK4_1); break;
    case DType::q8_k: quantize_q8_k(x, static_cast<BlockQ8_K*>(blocks), count / quant::kQK_K); break;
    default: quant::quantize_row_reference(type, x, blocks, count); break;
  }
}

}  // namespace ember::cpu::x86
