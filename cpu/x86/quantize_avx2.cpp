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

constexpr int kLanes = 8;

uint16_t to_half(float value) { return _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT); }

__m256 absolute(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// Max and min are exact whatever the order, so a tree reduction matches a serial scan.
float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

float horizontal_min(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

int horizontal_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// roundf (half away from zero), which q8_0's reference uses: truncate, then step one away
// from zero where the dropped fraction is at least one half. v - trunc(v) is exact.
__m256 round_half_away(__m256 v) {
  const __m256 truncated = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 fraction = absolute(_mm256_sub_ps(v, truncated));
  const __m256 away = _mm256_cmp_ps(fraction, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 unit_step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
  return _mm256_add_ps(truncated, _mm256_and_ps(away, unit_step));
}

// The first element of x[0 .. 8 * kVectors) whose value (or magnitude) equals `target`.
// The references keep the first element that attains a max or min (strict comparisons),
// and which one matters: +0 and -0 compare equal but store different f16 bits.
template <bool kMagnitude, int kVectors>
float first_equal(const float* x, const __m256 (&v)[kVectors], float target) {
  const __m256 wanted = _mm256_set1_ps(target);
  for (int k = 0; k < kVectors; ++k) {
    const __m256 candidate = kMagnitude ? absolute(v[k]) : v[k];
    const int hits = _mm256_movemask_ps(_mm256_cmp_ps(candidate, wanted, _CMP_EQ_OQ));
    if (hits != 0) return x[k * kLanes + __builtin_ctz(hits)];
  }
  return target;
}

// The signed value of largest magnitude, the first one on a tie; +0 when all are zero.
template <int kVectors>
float signed_extreme(const float* x, const __m256 (&v)[kVectors], float& amax) {
  __m256 largest = absolute(v[0]);
  for (int k = 1; k < kVectors; ++k) largest = _mm256_max_ps(largest, absolute(v[k]));
  amax = horizontal_max(largest);
  return amax == 0.0f ? 0.0f : first_equal<true>(x, v, amax);
}

// 32 int32 codes (four vectors, in order) narrowed with signed saturation to 32 bytes.
// The packs work within 128-bit lanes, so the final permute restores element order.
void store_signed_bytes(int8_t* out, const __m256i (&codes)[4]) {
  const __m256i words_ab = _mm256_packs_epi32(codes[0], codes[1]);
  const __m256i words_cd = _mm256_packs_epi32(codes[2], codes[3]);
  const __m256i bytes = _mm256_packs_epi16(words_ab, words_cd);
  const __m256i in_order = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), in_order);
}

// Codes 0-15 of a 32-weight block: byte j = q[j] | q[j + 16] << 4.
void store_nibbles(uint8_t* out, const __m256i (&codes)[4]) {
  const __m256i first = _mm256_or_si256(codes[0], _mm256_slli_epi32(codes[2], 4));
  const __m256i second = _mm256_or_si256(codes[1], _mm256_slli_epi32(codes[3], 4));
  const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(first, second), _MM_SHUFFLE(3, 1, 2, 0));
  const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
}

// q8_0, and q8_1 which adds s = d * Σ codes (int sum times the f32 d, as its reference).
template <class Block>
void quantize_q8(const float* x, Block* y, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK8_0;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(in + k * kLanes);
    const __m256 largest = _mm256_max_ps(_mm256_max_ps(absolute(v[0]), absolute(v[1])),
                                         _mm256_max_ps(absolute(v[2]), absolute(v[3])));
    const float d = horizontal_max(largest) / 127.0f;
    const __m256 inverse = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = to_half(d);
    __m256i codes[4];
    for (int k = 0; k < 4; ++k) codes[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], inverse)));
    store_signed_bytes(y[b].qs, codes);
    if constexpr (std::is_same_v<Block, BlockQ8_1>) {
      const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(codes[0], codes[1]), _mm256_add_epi32(codes[2], codes[3]));
      y[b].s = to_half(static_cast<float>(horizontal_sum(sum)) * d);
    }
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t blocks) {
  const __m256i max_code = _mm256_set1_epi32(15);
  const __m256 bias = _mm256_set1_ps(8.5f);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK4_0;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(in + k * kLanes);
    float amax;
    const float d = signed_extreme(in, v, amax) / -8.0f;
    const __m256 inverse = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = to_half(d);
    __m256i codes[4];
    for (int k = 0; k < 4; ++k)
      codes[k] = _mm256_min_epi32(max_code, _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], inverse), bias)));
    store_nibbles(y[b].qs, codes);
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t blocks) {
  const __m256i max_code = _mm256_set1_epi32(15);
  const __m256 half = _mm256_set1_ps(0.5f);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK4_1;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(in + k * kLanes);
    const __m256 low = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
    const __m256 high = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    const float min = first_equal<false>(in, v, horizontal_min(low));
    const float max = first_equal<false>(in, v, horizontal_max(high));
    const float d = (max - min) / 15.0f;
    const __m256 inverse = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    const __m256 offset = _mm256_set1_ps(min);
    y[b].d = to_half(d);
    y[b].m = to_half(min);
    __m256i codes[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 scaled = _mm256_mul_ps(_mm256_sub_ps(v[k], offset), inverse);
      codes[k] = _mm256_min_epi32(max_code, _mm256_cvttps_epi32(_mm256_add_ps(scaled, half)));
    }
    store_nibbles(y[b].qs, codes);
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t blocks) {
  constexpr int kVectors = quant::kQK_K / kLanes;
  const __m256i max_code = _mm256_set1_epi32(127);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * quant::kQK_K;
    __m256 v[kVectors];
    for (int k = 0; k < kVectors; ++k) v[k] = _mm256_loadu_ps(in + k * kLanes);
    float amax;
    const float extreme = signed_extreme(in, v, amax);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);  // as the reference: d, codes and sums all zero
      continue;
    }
    const float inverse = -127.0f / extreme;
    const __m256 scale = _mm256_set1_ps(inverse);
    for (int k = 0; k < kVectors; k += 4) {
      __m256i codes[4];
      // cvtps rounds half to even under the default MXCSR, as the reference's nearest_int.
      for (int j = 0; j < 4; ++j)
        codes[j] = _mm256_min_epi32(max_code, _mm256_cvtps_epi32(_mm256_mul_ps(scale, v[k + j])));
      store_signed_bytes(y[b].qs + k * kLanes, codes);
      // Each bsums group of 16 is two vectors.
      y[b].bsums[k / 2] = static_cast<int16_t>(horizontal_sum(_mm256_add_epi32(codes[0], codes[1])));
      y[b].bsums[k / 2 + 1] = static_cast<int16_t>(horizontal_sum(_mm256_add_epi32(codes[2], codes[3])));
    }
    y[b].d = 1.0f / inverse;
  }
}

}  // namespace

void quantize_blocks_avx2(DType type, const float* x, void* blocks, int64_t count) {
  switch (type) {
    case DType::q8_0: quantize_q8(x, static_cast<BlockQ8_0*>(blocks), count / quant::kQK8_0); break;
    case DType::q8_1: quantize_q8(x, static_cast<BlockQ8_1*>(blocks), count / quant::kQK8_1); break;
    case DType::q4_0: quantize_q4_0(x, static_cast<BlockQ4_0*>(blocks), count / quant::kQK4_0); break;
    case DType::q4_1: quantize_q4_1(x, static_cast<BlockQ4_1*>(blocks), count / quant::kQK4_1); break;
    case DType::q8_k: quantize_q8_k(x, static_cast<BlockQ8_K*>(blocks), count / quant::kQK_K); break;
    case DType::q4_k: quantize_q4_k_avx2(x, blocks, count); break;
    case DType::q6_k: quantize_q6_k_avx2(x, blocks, count); break;
    default: quant::quantize_row_reference(type, x, blocks, count); break;
  }
}

}  // namespace ember::cpu::x86
