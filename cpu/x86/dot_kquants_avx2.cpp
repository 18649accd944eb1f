// q4_K · q8_K and q6_K · q8_K tiles with AVX2: vpmaddubsw multiplies codes and
// activations in pairs, vpmaddwd applies the 16-bit sub-block scales.
//
// Loops over a micro-tile's rows, cols and sub-blocks are unrolled outright so that the
// sums and accumulators stay in registers: GCC otherwise keeps the loop over rows and
// moves the accumulators to the stack.
#include "cpu/dot_kquants.h"
#include "cpu/x86/dot_kquants_common.h"

namespace ember::cpu::x86 {
namespace {

// A shuffle that repeats 16-bit word `word` of each 128-bit lane across that lane.
inline __m256i word_broadcast_pattern(int word) {
  return _mm256_set1_epi16(static_cast<short>((2 * word) | (2 * word + 1) << 8));
}

struct Q4K {
  // y[c][r] for a kRows x kCols tile. Per super-block and output the integer sums stay in
  // eight int32 lanes; the float work is one fma with d and one with dmin per block.
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
      __m256i scales[kRows];
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
          const __m256i low_scale = _mm256_shuffle_epi8(scales[r], word_broadcast_pattern(2 * group));
          const __m256i high_scale = _mm256_shuffle_epi8(scales[r], word_broadcast_pattern(2 * group + 1));
#pragma GCC unroll 16
          for (int c = 0; c < kCols; ++c) {
            const int8_t* q = x[c]->qs + 64 * group;
            const __m256i low_products =
                _mm256_maddubs_epi16(low, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
            const __m256i high_products =
                _mm256_maddubs_epi16(high, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32)));
            sums[r][c] = _mm256_add_epi32(sums[r][c], _mm256_add_epi32(_mm256_madd_epi16(low_products, low_scale),
                                                                        _mm256_madd_epi16(high_products, high_scale)));
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
#pragma GCC unroll 16
    for (int c = 0; c < kCols; ++c)
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) y[c * ldy + r] = horizontal_sum(acc[r][c]);
  }
};

struct Q6K {
  // As Q4K; q6_K's +32 code offset comes off in the integer sums through the activation
  // group sums, which line up with its 16-element sub-blocks.
  template <int kRows, int kCols>
  static void run(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
    const __m256i top_bits = _mm256_set1_epi8(0x30);
    // Sub-block scales reordered to evens | odds, so one in-lane shuffle puts the scales of
    // sub-blocks 2k (low lane) and 2k + 1 (high lane) under vector k's products.
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
      __m256i offset_scales[kRows];  // -32 · scale: the code offset against the group sums
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        wb[r] = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride) + b;
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[r]->scales));
        scales[r] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, evens_then_odds));
        offset_scales[r] = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(scales[r], 5));
      }
      __m256i sums[kRows][kCols];
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c) sums[r][c] = _mm256_madd_epi16(group_sums[c], offset_scales[r]);
#pragma GCC unroll 16
      for (int half = 0; half < 2; ++half) {
#pragma GCC unroll 16
        for (int r = 0; r < kRows; ++r) {
          const uint8_t* ql = wb[r]->ql + 64 * half;
          const __m256i low_bits_a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
          const __m256i low_bits_b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
          const __m256i high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r]->qh + 32 * half));
          // Vector k holds weights 32k .. 32k + 31 of this half as 6-bit codes.
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
          for (int k = 0; k < 4; ++k) {
            const __m256i scale = _mm256_shuffle_epi8(scales[r], word_broadcast_pattern(4 * half + k));
#pragma GCC unroll 16
            for (int c = 0; c < kCols; ++c) {
              const __m256i activations =
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->qs + 128 * half + 32 * k));
              sums[r][c] = _mm256_add_epi32(sums[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(codes[k], activations), scale));
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
#pragma GCC unroll 16
    for (int c = 0; c < kCols; ++c)
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) y[c * ldy + r] = horizontal_sum(acc[r][c]);
  }
};

// Sixteen ymm registers: a 2 x 2 tile keeps its sums and accumulators in them.
constexpr int kMaxRows = 2;
constexpr int kMaxCols = 2;
constexpr int kDecodeRows = 4;

}  // namespace

void tile_q4_k_avx2(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                    int64_t blocks, float* y, int64_t ldy) {
  tile<Q4K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

void tile_q6_k_avx2(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                    int64_t blocks, float* y, int64_t ldy) {
  tile<Q6K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

}  // namespace ember::cpu::x86
