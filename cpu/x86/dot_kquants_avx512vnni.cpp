// q4_K · q8_K and q6_K · q8_K tiles with AVX-512 VNNI. A vector holds 64 weights (two
// q4_K sub-blocks, four q6_K ones) against 64 contiguous activations; vpdpbusd sums their
// products four to an int32 lane, two such vectors narrow exactly into one of words, and
// one vpdpwssd applies the scales of both (three multiplies per 128 weights and output).
//
// Loops over a micro-tile's rows, cols and sub-blocks are unrolled outright so that the
// sums and accumulators stay in registers: GCC otherwise keeps the loop over rows and
// moves the accumulators to the stack, which halves the speed.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/dot_kquants.h"
#include "cpu/interleaved_weights.h"
#include "cpu/x86/dot_kquants_common.h"
#include "quant/block_formats.h"

namespace ember::cpu::x86 {
namespace {

// The lanes of v added in one fixed order, whatever tile the vector came from.
float horizontal_sum(__m512 v) {
  const __m256 octet = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  return horizontal_sum(octet);
}

// 16-bit shift counts: the first 32 bytes of a vector by `low`, the last 32 by `high`.
__m512i half_shifts(short low, short high) {
  return _mm512_inserti64x4(_mm512_set1_epi16(low), _mm256_set1_epi16(high), 1);
}

// Σ of 64 unsigned codes times 64 signed activations, four to an int32 lane, for two
// vectors, narrowed into one vector of 16-bit words (lane L: words 0-3 from `first`, 4-7
// from `second`). Four products of 6-bit codes and 8-bit activations fit a word, so the
// narrowing is exact and one vpdpwssd then applies eight scales at once.
__m512i paired_dots(__m512i first_codes, const int8_t* first_activations, __m512i second_codes,
                    const int8_t* second_activations) {
  const __m512i first = _mm512_dpbusd_epi32(_mm512_setzero_si512(), first_codes, _mm512_loadu_si512(first_activations));
  const __m512i second =
      _mm512_dpbusd_epi32(_mm512_setzero_si512(), second_codes, _mm512_loadu_si512(second_activations));
  return _mm512_packs_epi32(first, second);
}

// The float side, shared by both formats: per output, a 16-lane accumulator of
// d·d_a·(integer sums); for q4_K also four lanes of a per-activation-row vector that
// gathers dmin·d_a·(mins against activation sums) for every weight row of the tile.
// Lanes are reduced in one fixed order.
template <int kRows, int kCols>
struct Accumulators {
  __m512 scaled[kRows][kCols];
  __m512 offsets[kCols];  // lanes 4r .. 4r + 3 belong to weight row r

  Accumulators() {
    for (auto& row : scaled)
      for (auto& v : row) v = _mm512_setzero_ps();
    for (auto& v : offsets) v = _mm512_setzero_ps();
  }

  void store(float* y, int64_t ldy) const {
    for (int c = 0; c < kCols; ++c) {
      alignas(64) float offset_lanes[16];
      _mm512_store_ps(offset_lanes, offsets[c]);
      for (int r = 0; r < kRows; ++r) {
        const float* lanes = offset_lanes + 4 * r;
        y[c * ldy + r] = horizontal_sum(scaled[r][c]) - ((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]));
      }
    }
  }
};

// The 128-bit lanes where weight row r of a micro-tile keeps its per-row values.
__mmask16 row_lanes(int r) { return static_cast<__mmask16>(0xf << (4 * r)); }

// q4_k_scales_and_mins for up to four rows at once, one per 128-bit lane.
__m512i q4_k_scales_and_mins(__m512i packed) {
  const __m512i low = _mm512_and_si512(packed, _mm512_set1_epi8(0x3f));
  const __m512i nibbles = _mm512_and_si512(
      _mm512_srlv_epi32(_mm512_shuffle_epi32(packed, _MM_PERM_CCCC), _mm512_set4_epi32(0, 0, 4, 0)),
      _mm512_set1_epi8(0x0f));
  const __m512i high =
      _mm512_or_si512(nibbles, _mm512_and_si512(_mm512_srli_epi32(packed, 2), _mm512_set1_epi8(0x30)));
  return _mm512_unpacklo_epi32(low, high);
}

struct Q4K {
  // Group g of a q4_K block (32 bytes: sub-block 2g in the low nibbles, 2g + 1 in the
  // high) is read into both halves of a vector and each half keeps its own nibble, which
  // lines the 64 codes up with activations 64g .. 64g + 63. The scales and mins of all
  // the tile's rows are unpacked together, one row per 128-bit lane.
  template <int kRows, int kCols>
  static void run(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    static_assert(kRows <= 4, "one 128-bit lane per row");
    const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
    const __m512i nibble_shifts = half_shifts(0, 4);
    // After paired_dots of groups 2p and 2p + 1, lane L holds sub-blocks 4p + L / 2
    // (words 0-3) and 4p + 2 + L / 2 (words 4-7); row r's scales are words 8r .. 8r + 7.
    __m512i scale_index[kRows][2];
    for (int r = 0; r < kRows; ++r)
      for (int pair = 0; pair < 2; ++pair) {
        alignas(64) int16_t index[32];
        for (int word = 0; word < 32; ++word) {
          const int lane = word / 8;
          index[word] = static_cast<int16_t>(8 * r + 4 * pair + (word % 8 < 4 ? 0 : 2) + lane / 2);
        }
        scale_index[r][pair] = _mm512_load_si512(index);
      }
    Accumulators<kRows, kCols> acc;
    for (int64_t b = 0; b < blocks; ++b) {
      prefetch_decode<BlockQ4_K, kRows, kCols>(w, w_stride, b, blocks);
      const BlockQ4_K* wb[kRows];
      __m512i packed_scales = _mm512_setzero_si512();
      __m512 min_scales = _mm512_setzero_ps();  // lanes of row r: its dmin
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        wb[r] = reinterpret_cast<const BlockQ4_K*>(w + r * w_stride) + b;
        // 16 bytes from the 12 scale bytes on: the last 4 are codes, unused.
        packed_scales = _mm512_mask_broadcast_i32x4(packed_scales, row_lanes(r),
                                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[r]->scales)));
        min_scales = _mm512_mask_mov_ps(min_scales, row_lanes(r), _mm512_set1_ps(half_to_float(wb[r]->dmin)));
      }
      const __m512i scales_and_mins = q4_k_scales_and_mins(packed_scales);
      const __m512i scale_words = _mm512_unpacklo_epi8(scales_and_mins, _mm512_setzero_si512());
      const __m512i min_words = _mm512_unpackhi_epi8(scales_and_mins, _mm512_setzero_si512());

      const BlockQ8_K* x[kCols];
      __m512 x_scale[kCols];
#pragma GCC unroll 16
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        x_scale[c] = _mm512_set1_ps(x[c]->d);
        // The activation sums of the eight 32-element sub-blocks against every row's mins.
        const __m256i group_sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->bsums));
        const __m512i pair_sums = _mm512_broadcast_i32x4(
            _mm_hadd_epi16(_mm256_castsi256_si128(group_sums), _mm256_extracti128_si256(group_sums, 1)));
        const __m512 offsets = _mm512_cvtepi32_ps(_mm512_madd_epi16(min_words, pair_sums));
        acc.offsets[c] = _mm512_fmadd_ps(_mm512_mul_ps(min_scales, x_scale[c]), offsets, acc.offsets[c]);
      }
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        __m512i codes[4];
#pragma GCC unroll 16
        for (int group = 0; group < 4; ++group) {
          const __m512i packed =
              _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r]->qs + 32 * group)));
          codes[group] = _mm512_and_si512(_mm512_srlv_epi16(packed, nibble_shifts), low_nibbles);
        }
        const __m512i pair_scales[2] = {_mm512_permutexvar_epi16(scale_index[r][0], scale_words),
                                        _mm512_permutexvar_epi16(scale_index[r][1], scale_words)};
        const __m512 d = _mm512_set1_ps(half_to_float(wb[r]->d));
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c) {
          __m512i sums = _mm512_setzero_si512();
#pragma GCC unroll 16
          for (int pair = 0; pair < 2; ++pair) {
            const int8_t* q = x[c]->qs + 128 * pair;
            sums = _mm512_dpwssd_epi32(sums, paired_dots(codes[2 * pair], q, codes[2 * pair + 1], q + 64),
                                       pair_scales[pair]);
          }
          acc.scaled[r][c] =
              _mm512_fmadd_ps(_mm512_mul_ps(d, x_scale[c]), _mm512_cvtepi32_ps(sums), acc.scaled[r][c]);
        }
      }
    }
    acc.store(y, ldy);
  }
};

struct Q6K {
  // A half block's 64 ql bytes give weights 0-63 (low nibbles) and 64-127 (high nibbles)
  // in order; its 32 qh bytes, read into both halves of a vector, supply the top two bits
  // at a per-half shift. Each 128-bit lane then covers one 16-element sub-block. The +32
  // code offset comes off in the integer sums through the activation group sums.
  template <int kRows, int kCols>
  static void run(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
    const __m512i top_bits = _mm512_set1_epi8(0x30);
    const __m512i low_half_shifts = half_shifts(4, 2);   // qh bits 0-1 | 2-3 up to bits 4-5
    const __m512i high_half_shifts = half_shifts(0, 2);  // qh bits 4-5 | 6-7 down to bits 4-5
    Accumulators<kRows, kCols> acc;
    for (int64_t b = 0; b < blocks; ++b) {
      prefetch_decode<BlockQ6_K, kRows, kCols>(w, w_stride, b, blocks);
      const BlockQ8_K* x[kCols];
      __m512 x_scale[kCols];
      __m256i group_sums[kCols];
#pragma GCC unroll 16
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        x_scale[c] = _mm512_set1_ps(x[c]->d);
        group_sums[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->bsums));
      }
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        const auto* wb = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride) + b;
        const __m256i scale_words =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb->scales)));
        const __m256i offset_scales = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(scale_words, 5));
        __m512i codes[4];
        __m512i pair_scales[2];
#pragma GCC unroll 16
        for (int half = 0; half < 2; ++half) {
          const __m512i low_bits = _mm512_loadu_si512(wb->ql + 64 * half);
          const __m512i high_bits =
              _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb->qh + 32 * half)));
          constexpr int kSelectOr = 0xea;  // (x & top_bits) | y
          codes[2 * half] = _mm512_ternarylogic_epi32(_mm512_sllv_epi16(high_bits, low_half_shifts), top_bits,
                                                      _mm512_and_si512(low_bits, low_nibbles), kSelectOr);
          codes[2 * half + 1] =
              _mm512_ternarylogic_epi32(_mm512_srlv_epi16(high_bits, high_half_shifts), top_bits,
                                        _mm512_and_si512(_mm512_srli_epi16(low_bits, 4), low_nibbles), kSelectOr);
          // After paired_dots of this half's two vectors, lane L holds sub-blocks
          // 8h + L (words 0-3) and 8h + 4 + L (words 4-7).
          const int base = 8 * half;
          pair_scales[half] = _mm512_permutexvar_epi16(
              _mm512_set_epi16(base + 7, base + 7, base + 7, base + 7, base + 3, base + 3, base + 3, base + 3,
                               base + 6, base + 6, base + 6, base + 6, base + 2, base + 2, base + 2, base + 2,
                               base + 5, base + 5, base + 5, base + 5, base + 1, base + 1, base + 1, base + 1,
                               base + 4, base + 4, base + 4, base + 4, base + 0, base + 0, base + 0, base + 0),
              _mm512_zextsi256_si512(scale_words));
        }
        const __m512 d = _mm512_set1_ps(half_to_float(wb->d));
#pragma GCC unroll 16
        for (int c = 0; c < kCols; ++c) {
          __m512i sums = _mm512_zextsi256_si512(_mm256_madd_epi16(group_sums[c], offset_scales));
#pragma GCC unroll 16
          for (int half = 0; half < 2; ++half) {
            const int8_t* q = x[c]->qs + 128 * half;
            sums = _mm512_dpwssd_epi32(sums, paired_dots(codes[2 * half], q, codes[2 * half + 1], q + 64),
                                       pair_scales[half]);
          }
          acc.scaled[r][c] =
              _mm512_fmadd_ps(_mm512_mul_ps(d, x_scale[c]), _mm512_cvtepi32_ps(sums), acc.scaled[r][c]);
        }
      }
    }
    acc.store(y, ldy);
  }
};

// What the interleaved K-quant kernels below share. Records ahead that decoding
// prefetches: 4.6 KB of q4_K, 6.7 KB of q6_K, about as far as the blocks32 records reach.
constexpr int64_t kPrefetchRecords = 2;

template <int64_t kRecordBytes>
[[gnu::always_inline]] inline void prefetch_record(const char* record) {
  for (int64_t line = 0; line < kRecordBytes; line += 64) _mm_prefetch(record + line, _MM_HINT_T0);
}

__m512i broadcast_dword(const int8_t* p) {
  int32_t value;
  std::memcpy(&value, p, sizeof value);
  return _mm512_set1_epi32(value);
}

// A vpshufb control repeated in every 128-bit lane: dword m takes the bytes lane(m) names.
template <class Lane>
__m512i dword_shuffle(Lane lane) {
  return _mm512_set4_epi32(static_cast<int>(lane(3)), static_cast<int>(lane(2)), static_cast<int>(lane(1)),
                           static_cast<int>(lane(0)));
}

// Byte k of every dword of v, zero-extended to the dword.
__m512i byte_of_each_dword(__m512i v, int k) {
  return _mm512_shuffle_epi8(v, dword_shuffle([k](int m) { return 0x80808000u | static_cast<uint32_t>(4 * m + k); }));
}

// Byte k of every dword of v, sign-extended to the dword.
__m512i signed_byte_of_each_dword(__m512i v, int k) {
  return _mm512_srai_epi32(
      _mm512_shuffle_epi8(v, dword_shuffle([k](int m) { return 0x00808080u | static_cast<uint32_t>(4 * m + k) << 24; })),
      24);
}

// Bytes k and k + 1 of every dword of v as its two 16-bit words, zero-extended.
__m512i byte_pair_of_each_dword(__m512i v, int k) {
  return _mm512_shuffle_epi8(v, dword_shuffle([k](int m) {
                               const auto at = static_cast<uint32_t>(4 * m + k);
                               return 0x80008000u | at | (at + 1) << 16;
                             }));
}

// Bytes k and k + 1 of every dword of v as its two 16-bit words, sign-extended.
__m512i signed_byte_pair_of_each_dword(__m512i v, int k) {
  return _mm512_srai_epi16(_mm512_shuffle_epi8(v, dword_shuffle([k](int m) {
                                                 const auto at = static_cast<uint32_t>(4 * m + k);
                                                 return 0x00800080u | at << 8 | (at + 1) << 24;
                                               })),
                           8);
}

template <int kCols>
void store_lanes(const __m512 (&acc)[kCols], int rows, float* y, int64_t ldy) {
  const auto present = static_cast<__mmask16>((1u << rows) - 1);
  for (int c = 0; c < kCols; ++c) _mm512_mask_storeu_ps(y + c * ldy, present, acc[c]);
}

// q4_K in cpu/interleaved_weights.h's layout: sixteen weight rows down the lanes of a
// vector, one record (a super-block of all sixteen) read as a single forward stream. Per
// lane, eight vpdpbusd give a sub-block's integer dot, a vpmulld by the lane's 6-bit
// scale adds it to the block's total, and four vpdpwssd sum its mins against the
// activations' sub-block sums: the plain C++ kernel's exact integers, combined in its
// float order (scale · total − min_scale · mins per block), so both give the same bits.
// Per weight this is about half the work of the row-per-vector Q4K above, which decoding
// on few cores is bound by.
struct Q4KInterleaved {
  static constexpr int kLanes = kInterleavedRows;
  // Activation rows per pass over a slab's records: their sums, totals and accumulators
  // stay in registers.
  static constexpr int kColumnGroup = 4;
  static constexpr int64_t kRecordBytes = kLanes * static_cast<int64_t>(sizeof(BlockQ4_K));
  static constexpr int64_t kCodeDwords = quant::kQK_K / 8;
  static constexpr int64_t kScalesAt = 64 * kCodeDwords;
  static constexpr int64_t kHalvesAt = kScalesAt + 64 * 3;

  template <int kCols>
  static void run(const char* records, int rows, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
    const __m512i six_bits = _mm512_set1_epi8(0x3f);
    const __m512i top_bits = _mm512_set1_epi8(0x30);
    __m512 acc[kCols];
    for (auto& v : acc) v = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const char* record = records + b * kRecordBytes;
      if constexpr (kCols == 1) prefetch_record<kRecordBytes>(record + kPrefetchRecords * kRecordBytes);
      // The 12 scale bytes of block_formats.h, lane by lane: scales 0-3 and 4-7, mins 0-3 and 4-7.
      const __m512i packed[3] = {_mm512_loadu_si512(record + kScalesAt), _mm512_loadu_si512(record + kScalesAt + 64),
                                 _mm512_loadu_si512(record + kScalesAt + 128)};
      const __m512i scales[2] = {
          _mm512_and_si512(packed[0], six_bits),
          _mm512_or_si512(_mm512_and_si512(packed[2], low_nibbles),
                          _mm512_and_si512(_mm512_srli_epi32(packed[0], 2), top_bits))};
      const __m512i mins[2] = {
          _mm512_and_si512(packed[1], six_bits),
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(packed[2], 4), low_nibbles),
                          _mm512_and_si512(_mm512_srli_epi32(packed[1], 2), top_bits))};

      const BlockQ8_K* x[kCols];
      __m512i totals[kCols];
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        totals[c] = _mm512_setzero_si512();
      }
#pragma GCC unroll 4
      for (int group = 0; group < 4; ++group) {
        __m512i low_sums[kCols], high_sums[kCols];
        for (int c = 0; c < kCols; ++c) low_sums[c] = high_sums[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          const __m512i codes = _mm512_loadu_si512(record + 64 * (8 * group + i));
          const __m512i low = _mm512_and_si512(codes, low_nibbles);
          const __m512i high = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low_nibbles);
          for (int c = 0; c < kCols; ++c) {
            const int8_t* q = x[c]->qs + 64 * group + 4 * i;
            low_sums[c] = _mm512_dpbusd_epi32(low_sums[c], low, broadcast_dword(q));
            high_sums[c] = _mm512_dpbusd_epi32(high_sums[c], high, broadcast_dword(q + 32));
          }
        }
        const __m512i low_scale = byte_of_each_dword(scales[group / 2], 2 * (group % 2));
        const __m512i high_scale = byte_of_each_dword(scales[group / 2], 2 * (group % 2) + 1);
        for (int c = 0; c < kCols; ++c)
          totals[c] = _mm512_add_epi32(_mm512_add_epi32(totals[c], _mm512_mullo_epi32(low_sums[c], low_scale)),
                                       _mm512_mullo_epi32(high_sums[c], high_scale));
      }
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(record + kHalvesAt)));
      const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(record + kHalvesAt + 32)));
      for (int c = 0; c < kCols; ++c) {
        // Sub-block sums 2t and 2t + 1 as the words of dword t.
        const __m256i group_sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c]->bsums));
        alignas(16) int32_t pair_sums[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(pair_sums),
                        _mm_hadd_epi16(_mm256_castsi256_si128(group_sums), _mm256_extracti128_si256(group_sums, 1)));
        __m512i offsets = _mm512_setzero_si512();
        for (int t = 0; t < 4; ++t)
          offsets = _mm512_dpwssd_epi32(offsets, byte_pair_of_each_dword(mins[t / 2], 2 * (t % 2)),
                                        _mm512_set1_epi32(pair_sums[t]));
        const __m512 activation_scale = _mm512_set1_ps(x[c]->d);
        const __m512 scaled = _mm512_mul_ps(_mm512_mul_ps(activation_scale, d), _mm512_cvtepi32_ps(totals[c]));
        const __m512 offset = _mm512_mul_ps(_mm512_mul_ps(activation_scale, dmin), _mm512_cvtepi32_ps(offsets));
        acc[c] = _mm512_add_ps(acc[c], _mm512_sub_ps(scaled, offset));
      }
    }
    store_lanes(acc, rows, y, ldy);
  }
};

// q6_K in the same layout: a record holds each row's 32 ql dwords, 16 qh dwords and 4
// scale dwords, dword-interleaved, then the 16 d. One ql dword from each half of a half
// block's 64 ql bytes and the qh dword beside them give four vectors of codes, 32 weights
// apart; four vpdpbusd of a vector finish a 16-element sub-block, and a vpmulld by its
// signed scale adds it to the block's total. The +32 code offset comes off once per
// block: eight vpdpwssd of the scales against the activation group sums. Exact integers
// in the plain C++ kernel's float order again, so the bits are that kernel's.
struct Q6KInterleaved {
  static constexpr int kLanes = kInterleavedRows;
  static constexpr int kColumnGroup = 4;
  static constexpr int64_t kRecordBytes = kLanes * static_cast<int64_t>(sizeof(BlockQ6_K));
  static constexpr int64_t kHighBitsAt = 64 * 32;
  static constexpr int64_t kScalesAt = kHighBitsAt + 64 * 16;
  static constexpr int64_t kHalvesAt = kScalesAt + 64 * 4;

  template <int kCols>
  static void run(const char* records, int rows, const uint8_t* a, int64_t a_stride, int64_t blocks, float* y,
                  int64_t ldy) {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
    const __m512i top_bits = _mm512_set1_epi8(0x30);
    constexpr int kSelectOr = 0xea;  // (x & top_bits) | y
    __m512 acc[kCols];
    for (auto& v : acc) v = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const char* record = records + b * kRecordBytes;
      if constexpr (kCols == 1) prefetch_record<kRecordBytes>(record + kPrefetchRecords * kRecordBytes);
      const __m512i scales[4] = {
          _mm512_loadu_si512(record + kScalesAt), _mm512_loadu_si512(record + kScalesAt + 64),
          _mm512_loadu_si512(record + kScalesAt + 128), _mm512_loadu_si512(record + kScalesAt + 192)};
      const BlockQ8_K* x[kCols];
      __m512i totals[kCols];
      for (int c = 0; c < kCols; ++c) {
        x[c] = reinterpret_cast<const BlockQ8_K*>(a + c * a_stride) + b;
        // Σ scale · 32 · group sum, taken off at the start.
        __m512i offsets = _mm512_setzero_si512();
        for (int t = 0; t < 8; ++t) {
          int32_t pair;
          std::memcpy(&pair, x[c]->bsums + 2 * t, sizeof pair);
          offsets = _mm512_dpwssd_epi32(offsets, signed_byte_pair_of_each_dword(scales[t / 2], 2 * (t % 2)),
                                        _mm512_set1_epi32(pair));
        }
        totals[c] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(offsets, 5));
      }
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half)
#pragma GCC unroll 2
        for (int quarter = 0; quarter < 2; ++quarter) {
          // sums[k]: sub-block 8 half + 2 k + quarter, the weights 32 k on from 128 half + 16 quarter.
          __m512i sums[4][kCols];
          for (auto& per_part : sums)
            for (auto& v : per_part) v = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int i = 4 * quarter; i < 4 * quarter + 4; ++i) {
            const __m512i first = _mm512_loadu_si512(record + 64 * (16 * half + i));
            const __m512i second = _mm512_loadu_si512(record + 64 * (16 * half + 8 + i));
            const __m512i high = _mm512_loadu_si512(record + kHighBitsAt + 64 * (8 * half + i));
            const __m512i codes[4] = {
                _mm512_ternarylogic_epi32(_mm512_slli_epi16(high, 4), top_bits, _mm512_and_si512(first, low_nibbles),
                                          kSelectOr),
                _mm512_ternarylogic_epi32(_mm512_slli_epi16(high, 2), top_bits, _mm512_and_si512(second, low_nibbles),
                                          kSelectOr),
                _mm512_ternarylogic_epi32(high, top_bits,
                                          _mm512_and_si512(_mm512_srli_epi16(first, 4), low_nibbles), kSelectOr),
                _mm512_ternarylogic_epi32(_mm512_srli_epi16(high, 2), top_bits,
                                          _mm512_and_si512(_mm512_srli_epi16(second, 4), low_nibbles), kSelectOr)};
            for (int k = 0; k < 4; ++k)
              for (int c = 0; c < kCols; ++c)
                sums[k][c] = _mm512_dpbusd_epi32(sums[k][c], codes[k], broadcast_dword(x[c]->qs + 128 * half + 32 * k + 4 * i));
          }
          for (int k = 0; k < 4; ++k) {
            const int sub_block = 8 * half + 2 * k + quarter;
            const __m512i scale = signed_byte_of_each_dword(scales[sub_block / 4], sub_block % 4);
            for (int c = 0; c < kCols; ++c) totals[c] = _mm512_add_epi32(totals[c], _mm512_mullo_epi32(sums[k][c], scale));
          }
        }
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(record + kHalvesAt)));
      for (int c = 0; c < kCols; ++c)
        acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(x[c]->d), d), _mm512_cvtepi32_ps(totals[c])));
    }
    store_lanes(acc, rows, y, ldy);
  }
};

// At most four rows: q4_K keeps one row per 128-bit lane of its scale vectors. 4 x 4
// measured at least as fast as 4 x 2, 2 x 4, 3 x 4 and 4 x 3.
constexpr int kMaxRows = 4;
constexpr int kMaxCols = 4;
constexpr int kDecodeRows = 4;

}  // namespace

void tile_q4_k_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                          int64_t cols, int64_t blocks, float* y, int64_t ldy) {
  tile<Q4K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

void tile_q6_k_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                          int64_t cols, int64_t blocks, float* y, int64_t ldy) {
  tile<Q6K, kMaxRows, kMaxCols, kDecodeRows>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

// The last cols (< kColumnGroup) activation rows of a slab.
template <class Kernel, int kCols = Kernel::kColumnGroup - 1>
void interleaved_column_tail(const char* records, int rows, const uint8_t* a, int64_t a_stride, int64_t cols,
                             int64_t blocks, float* y, int64_t ldy) {
  if constexpr (kCols > 0) {
    if (cols == kCols) return Kernel::template run<kCols>(records, rows, a, a_stride, blocks, y, ldy);
    interleaved_column_tail<Kernel, kCols - 1>(records, rows, a, a_stride, cols, blocks, y, ldy);
  }
}

template <class Kernel>
void interleaved_k_tile(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                        int64_t blocks, float* y, int64_t ldy) {
  const auto* activations = static_cast<const uint8_t*>(a);
  for (int64_t r = 0; r < rows; r += Kernel::kLanes) {
    const char* records = static_cast<const char*>(w) + r * w_stride;
    const int present = static_cast<int>(std::min<int64_t>(Kernel::kLanes, rows - r));
    int64_t c = 0;
    for (; c + Kernel::kColumnGroup <= cols; c += Kernel::kColumnGroup)
      Kernel::template run<Kernel::kColumnGroup>(records, present, activations + c * a_stride, a_stride, blocks,
                                                 y + c * ldy + r, ldy);
    interleaved_column_tail<Kernel>(records, present, activations + c * a_stride, a_stride, cols - c, blocks,
                                    y + c * ldy + r, ldy);
  }
}

void tile_q4_k_interleaved_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                                      int64_t cols, int64_t blocks, float* y, int64_t ldy) {
  interleaved_k_tile<Q4KInterleaved>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

void tile_q6_k_interleaved_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                                      int64_t cols, int64_t blocks, float* y, int64_t ldy) {
  interleaved_k_tile<Q6KInterleaved>(w, w_stride, rows, a, a_stride, cols, blocks, y, ldy);
}

}  // namespace ember::cpu::x86
