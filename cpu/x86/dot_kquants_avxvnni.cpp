// q4_K · q8_K and q6_K · q8_K tiles with AVX-VNNI. vpdpbusd sums codes times activations
// four to an int32 lane; four products of 6-bit codes and 8-bit activations fit 16 bits,
// so two such vectors narrow exactly into one of words, and one vpdpwssd applies the
// scales of both (three multiplies per 64 weights instead of four).
//
// Loops over a micro-tile's rows, cols and sub-blocks are unrolled outright so that the
// sums and accumulators stay in registers: GCC otherwise keeps the loop over rows and
// moves the accumulators to the stack.
#include "cpu/dot_kquants.h"
#include "cpu/x86/dot_kquants_common.h"

namespace ember::cpu::x86 {
namespace {

// Σ of codes times activations over two vectors of 32, narrowed to words: each 128-bit
// lane holds four sums from `first` (words 0-3), then four from `second` (words 4-7).
__m256i paired_dots(__m256i first_codes, const int8_t* first_activations, __m256i second_codes,
                    const int8_t* second_activations) {
  const __m256i first = _mm256_dpbusd_avx_epi32(
      _mm256_setzero_si256(), first_codes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first_activations)));
  const __m256i second = _mm256_dpbusd_avx_epi32(
      _mm256_setzero_si256(), second_codes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second_activations)));
  return _mm256_packs_epi32(first, second);
}

// A shuffle that, in each 128-bit lane, repeats word `first` over words 0-3 and word
// `second` over words 4-7.
__m256i word_pair_pattern(int first, int second) {
  const auto word = [](int w) { return static_cast<short>((2 * w) | (2 * w + 1) << 8); };
  return _mm256_setr_epi16(word(first), word(first), word(first), word(first), word(second), word(second),
                           word(second), word(second), word(first), word(first), word(first), word(first),
                           word(second), word(second), word(second), word(second));
}

struct Q4K {
  // Group g (32 bytes) holds sub-block 2g in its low nibbles and 2g + 1 in its high ones,
  // against activations 64g .. 64g + 31 and 64g + 32 .. 64g + 63.
  template <int kRows, int kCols>
  static void run(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
    __m256 acc[kRows][kCols];
    for (auto& row : acc)
      for (auto& v : row) v = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const BlockQ8_K* x[kCols];
      __m128i pair_sums[kCols];  // the activation sums of the eight 32-element sub-blocks
#pragma GCC unroll 16
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        const __m256i group_sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->bsums));
        pair_sums[c] = _mm_hadd_epi16(_mm256_castsi256_si128(group_sums), _mm256_extracti128_si256(group_sums, 1));
      }
      const BlockQ4_K* wb[kRows];
      __m256i scales[kRows];  // the eight scales as words, in both lanes
      __m128i mins[kRows];
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        wb[r] = reinterpret_cast<const BlockQ4_K*>(w + r * w_stride) + b;
        const __m256i scales_and_mins = _mm256_cvtepu8_epi16(q4_k_scales_and_mins(*wb[r]));
        scales[r] = _mm256_permute2x128_si256(scales_and_mins, scales_and_mins, 0x00);
        mins[r] = _mm256_extracti128_si256(scales_and_mins, 1);
      }
      __m256i sums[kRows][kCols];
      for (auto& row : sums)
        for (auto& v : row) v = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (int group = 0; group < 4; ++group) {
#pragma GCC unroll 16
        for (int r = 0; r < kRows; ++r) {
          const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r]->qs + 32 * group));
          const __m256i low = _mm256_and_si256(packed, low_nibbles);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
          const __m256i scale = _mm256_shuffle_epi8(scales[r], word_pair_pattern(2 * group, 2 * group + 1));
#pragma GCC unroll 16
          for (int c = 0; c < kCols; ++c) {
            const int8_t* q = x[c]->qs + 64 * group;
            sums[r][c] = _mm256_dpwssd_avx_epi32(sums[r][c], paired_dots(low, q, high, q + 32), scale);
          }
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        const float d = half_to_float(wb[r]->d);
        const float dmin = half_to_float(wb[r]->dmin);
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c) {
          const __m128 offsets = _mm_cvtepi32_ps(_mm_madd_epi16(mins[r], pair_sums[c]));
          acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[c]->d), _mm256_cvtepi32_ps(sums[r][c]), acc[r][c]);
          acc[r][c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * x[c]->d), _mm256_zextps128_ps256(offsets), acc[r][c]);
        }
      }
    }
    for (int c = 0; c < kCols; ++c)
      for (int r = 0; r < kRows; ++r) y[c * ldy + r] = horizontal_sum(acc[r][c]);
  }
};

struct Q6K {
  // Vector v (v < 8) holds weights 32v .. 32v + 31 as 6-bit codes: sub-block 2v in its low
  // lane, 2v + 1 in its high one. Vectors 2p and 2p + 1 are paired, so lane L of pair p
  // covers sub-blocks 4p + L and 4p + 2 + L. The +32 code offset comes off in the integer
  // sums through the activation group sums.
  template <int kRows, int kCols>
  static void run(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
    const __m256i top_bits = _mm256_set1_epi8(0x30);
    // Scales as words with the even sub-blocks in the low lane and the odd ones in the
    // high lane: pair p then takes words 2p and 2p + 1 of each lane.
    const __m128i evens_then_odds = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m256i words_evens_then_odds =
        _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7,
                         10, 11, 14, 15);
    __m256 acc[kRows][kCols];
    for (auto& row : acc)
      for (auto& v : row) v = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const BlockQ8_K* x[kCols];
      __m256i group_sums[kCols];  // in the scales' evens | odds order
#pragma GCC unroll 16
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->bsums));
        group_sums[c] = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(sums, words_evens_then_odds), 0xd8);
      }
      const BlockQ6_K* wb[kRows];
      __m256i scales[kRows];
      __m256i sums[kRows][kCols];
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        wb[r] = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride) + b;
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[r]->scales));
        scales[r] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, evens_then_odds));
        // -32 · scale against the group sums: the code offset.
        const __m256i offset_scales = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(scales[r], 5));
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c) sums[r][c] = _mm256_madd_epi16(group_sums[c], offset_scales);
      }
#pragma GCC unroll 16
      for (int half = 0; half < 2; ++half) {
#pragma GCC unroll 16
        for (int r = 0; r < kRows; ++r) {
          const uint8_t* ql = wb[r]->ql + 64 * half;
          const __m256i low_bits_a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
          const __m256i low_bits_b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
          const __m256i high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r]->qh + 32 * half));
          const __m256i codes[4] = {
              _mm256_or_si256(_mm256_and_si256(low_bits_a, low_nibbles),
                              _mm256_and_si256(_mm256_slli_epi16(high_bits, 4), top_bits)),
              _mm256_or_si256(_mm256_and_si256(low_bits_b, low_nibbles),
                              _mm256_and_si256(_mm256_slli_epi16(high_bits, 2), top_bits)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low_bits_a, 4), low_nibbles),
                              _mm256_and_si256(high_bits, top_bits)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low_bits_b, 4), low_nibbles),
                              _mm256_and_si256(_mm256_srli_epi16(high_bits, 2), top_bits))};
#pragma GCC unroll 16
          for (int pair = 0; pair < 2; ++pair) {
            const int p = 2 * half + pair;
            const __m256i scale = _mm256_shuffle_epi8(scales[r], word_pair_pattern(2 * p, 2 * p + 1));
#pragma GCC unroll 16
            for (int c = 0; c < kCols; ++c) {
              const int8_t* q = x[c]->qs + 64 * p;
              sums[r][c] = _mm256_dpwssd_avx_epi32(
                  sums[r][c], paired_dots(codes[2 * pair], q, codes[2 * pair + 1], q + 32), scale);
            }
          }
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        const float d = half_to_float(wb[r]->d);
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c)
          acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[c]->d), _mm256_cvtepi32_ps(sums[r][c]), acc[r][c]);
      }
    }
    for (int c = 0; c < kCols; ++c)
      for (int r = 0; r < kRows; ++r) y[c * ldy + r] = horizontal_sum(acc[r][c]);
  }
};

// Sixteen ymm registers: a 2 x 2 tile keeps its sums and accumulators in them.
constexpr int kMaxRows = 2;
constexpr int kMaxCols = 2;
constexpr int kDecodeRows = 4;

}  // namespace

void tile_q4_k_avxvnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                       int64_t blocks, float* y, int64_t ldy) {
  tile<Q4K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

void tile_q6_k_avxvnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                       int64_t blocks, float* y, int64_t ldy) {
  tile<Q6K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

}  // namespace ember::cpu::x86
