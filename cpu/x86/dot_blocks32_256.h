// The 256-bit tile kernels of cpu/dot_blocks32.h, shared by the AVX2 and AVX-VNNI files:
// they differ only in the `Dot` that sums unsigned × signed byte products into int32
// lanes. Everything sits in an anonymous namespace, so each including file (compiled for
// its own ISA) gets its own copy.
//
// The layout is the AVX-512 kernel's on 8 lanes: eight weight rows go down the lanes of a
// vector, codes[i] holding bytes 4i .. 4i + 3 of each row's block (as unsigned bytes), so
// eight dot steps against activation dwords broadcast from memory leave each lane with its
// row's whole block dot product. Per output that is exactly
//   acc = fma(float(Σ q_w q_a), d_w · d_a, acc)      (q4_1: then acc = fma(m_w, s_a, acc))
// block after block, streamed or transposed: the same bits as the other ISA levels' (and
// the scalar kernel's) for any split into tiles.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/x86/dot_blocks32_tiles.h"
#include "quant/block_formats.h"

namespace ember::cpu::x86 {
namespace {

constexpr int kVectorRows = 8;
constexpr int kDwords = quant::kQK8_0 / 4;

// `signs` only for q8_0 under a saturating Dot, which takes |w| against a with w's sign.
struct TransposedBlock {
  __m256i codes[kDwords];
  __m256i signs[kDwords];
  __m256 scale;
  __m256 min;
};

// The 8 × 4 dword matrix rows[j][0..3] (16 bytes per row) as 4 vectors, lane j of vector i
// holding rows[j] dword i: rows m and m + 4 in the two 128-bit halves, then an in-half
// 4 × 4 transpose.
[[gnu::always_inline]] inline void transpose_8x4(const uint8_t* const (&rows)[kVectorRows], int offset,
                                                 __m256i (&out)[4]) {
  __m256i by_row[4];
  for (int m = 0; m < 4; ++m)
    by_row[m] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(rows[m + 4] + offset),
                                    reinterpret_cast<const __m128i*>(rows[m] + offset));
  const __m256i t0 = _mm256_unpacklo_epi32(by_row[0], by_row[1]);
  const __m256i t1 = _mm256_unpackhi_epi32(by_row[0], by_row[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(by_row[2], by_row[3]);
  const __m256i t3 = _mm256_unpackhi_epi32(by_row[2], by_row[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

// The f16 field at byte `offset` of each of the 8 blocks, as floats.
[[gnu::always_inline]] inline __m256 halves_at(const uint8_t* const (&blocks)[kVectorRows], size_t offset) {
  alignas(16) uint16_t halves[kVectorRows];
  for (int j = 0; j < kVectorRows; ++j) std::memcpy(&halves[j], blocks[j] + offset, sizeof halves[j]);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(halves)));
}

void unpack_nibbles(const __m256i (&packed)[4], TransposedBlock& out) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int i = 0; i < 4; ++i) {
    out.codes[i] = _mm256_and_si256(packed[i], low);
    out.codes[i + 4] = _mm256_and_si256(_mm256_srli_epi16(packed[i], 4), low);
  }
}

// q8_0 weights against q8_0. A Dot without saturation (vpdpbusd) takes the weights offset
// by 128 into unsigned bytes and starts each sum at -128 Σ a; maddubs would saturate
// 255 · 127 · 2 in int16, so it takes |w| against a with w's sign, from zero.
template <class Dot>
struct Q8_0Format {
  using WeightBlock = quant::BlockQ8_0;
  using ActivationBlock = quant::BlockQ8_0;
  static constexpr bool kHasMin = false;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m256i half[4];
    for (int h = 0; h < 2; ++h) {
      transpose_8x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)) + 16 * h, half);
      for (int i = 0; i < 4; ++i) {
        if constexpr (Dot::kSaturates) {
          out.codes[4 * h + i] = _mm256_sign_epi8(half[i], half[i]);
          out.signs[4 * h + i] = half[i];
        } else {
          out.codes[4 * h + i] = _mm256_xor_si256(half[i], _mm256_set1_epi8(static_cast<char>(0x80)));
        }
      }
    }
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t code_sum) {
    return {_cvtsh_ss(block.d), Dot::kSaturates ? 0 : -128 * code_sum, 0.0f};
  }
  static __m256i dot(__m256i sums, const TransposedBlock& w, int i, __m256i activation) {
    if constexpr (Dot::kSaturates) return Dot::dot(sums, w.codes[i], _mm256_sign_epi8(activation, w.signs[i]));
    return Dot::dot(sums, w.codes[i], activation);
  }
};

// q4_0 weights against q8_0: codes 0-15 as unsigned bytes, sums start at -8 Σ a.
template <class Dot>
struct Q4_0Format {
  using WeightBlock = quant::BlockQ4_0;
  using ActivationBlock = quant::BlockQ8_0;
  static constexpr bool kHasMin = false;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m256i packed[4];
    transpose_8x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)), packed);
    unpack_nibbles(packed, out);
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t code_sum) {
    return {_cvtsh_ss(block.d), -8 * code_sum, 0.0f};
  }
  static __m256i dot(__m256i sums, const TransposedBlock& w, int i, __m256i activation) {
    return Dot::dot(sums, w.codes[i], activation);
  }
};

// q4_1 weights against q8_1: sums start at zero, and m_w s_a follows each block's fma.
template <class Dot>
struct Q4_1Format {
  using WeightBlock = quant::BlockQ4_1;
  using ActivationBlock = quant::BlockQ8_1;
  static constexpr bool kHasMin = true;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m256i packed[4];
    transpose_8x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)), packed);
    unpack_nibbles(packed, out);
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
    out.min = halves_at(blocks, offsetof(WeightBlock, m));
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t) {
    return {_cvtsh_ss(block.d), 0, _cvtsh_ss(block.s)};
  }
  static __m256i dot(__m256i sums, const TransposedBlock& w, int i, __m256i activation) {
    return Dot::dot(sums, w.codes[i], activation);
  }
};

__m256i broadcast_dword(const int8_t* p) {
  int32_t value;
  std::memcpy(&value, p, sizeof value);
  return _mm256_set1_epi32(value);
}

// The ISA half of dot_blocks32_tiles.h's driver.
struct Kernel {
  static constexpr int kLanes = kVectorRows;
  // Activation rows per pass over the transposed weights: 4 sums and 4 accumulators in registers.
  static constexpr int kColumnGroup = 4;
  using TransposedBlock = x86::TransposedBlock;
  using Vector = __m256;
  static Vector zero() { return _mm256_setzero_ps(); }

  // The running sums of 8 weight rows against kCols activation rows for one block.
  template <class Format, int kCols>
  [[gnu::always_inline]] static void accumulate(const TransposedBlock& w, const char* a, int64_t a_stride, int64_t b,
                                                const ActivationTerms* terms, int64_t blocks, __m256 (&acc)[kCols]) {
    using ActivationBlock = typename Format::ActivationBlock;
    __m256i sums[kCols];
    const int8_t* codes[kCols];
    for (int c = 0; c < kCols; ++c) {
      codes[c] = reinterpret_cast<const ActivationBlock*>(a + c * a_stride)[b].qs;
      sums[c] = _mm256_set1_epi32(terms[c * blocks + b].start);
    }
    for (int i = 0; i < kDwords; ++i)
      for (int c = 0; c < kCols; ++c) sums[c] = Format::dot(sums[c], w, i, broadcast_dword(codes[c] + 4 * i));
    for (int c = 0; c < kCols; ++c) {
      const ActivationTerms& t = terms[c * blocks + b];
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[c]), _mm256_mul_ps(w.scale, _mm256_set1_ps(t.scale)), acc[c]);
      if constexpr (Format::kHasMin) acc[c] = _mm256_fmadd_ps(w.min, _mm256_set1_ps(t.sum), acc[c]);
    }
  }

  template <int kCols>
  static void store(const __m256 (&acc)[kCols], int rows, float* y, int64_t ldy) {
    const __m256i present = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int c = 0; c < kCols; ++c) _mm256_maskstore_ps(y + c * ldy, present, acc[c]);
  }
};

}  // namespace
}  // namespace ember::cpu::x86
