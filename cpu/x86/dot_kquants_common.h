// What the x86 K-quant tiles share: small helpers and the walk of a tile in register
// micro-tiles.
//
// Everything here is in an anonymous namespace: each including file gets its own copy,
// compiled for its own ISA, which the linker cannot merge with another's.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "quant/block_formats.h"

namespace ember::cpu::x86 {
namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;
using quant::BlockQ8_K;

// The lanes of v added in one fixed order, whatever tile the vector came from.
inline float horizontal_sum(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

inline float half_to_float(uint16_t half) { return _cvtsh_ss(half); }

// q4_K's 12 scale bytes as 16 bytes: the eight 6-bit scales, then the eight 6-bit mins
// (the packing of block_formats.h). Reads 16 bytes: the last 4 are codes, unused.
inline __m128i q4_k_scales_and_mins(const BlockQ4_K& block) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales));
  // Dword 0: scales 0-3, dword 1: mins 0-3.
  const __m128i low = _mm_and_si128(packed, _mm_set1_epi8(0x3f));
  // Dword 0: scales 4-7, dword 1: mins 4-7; low nibbles from dword 2, top bits from the
  // spare bits of dwords 0 and 1.
  const __m128i nibbles =
      _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(packed, 0xaa), _mm_setr_epi32(0, 4, 0, 0)), _mm_set1_epi8(0x0f));
  const __m128i high = _mm_or_si128(nibbles, _mm_and_si128(_mm_srli_epi32(packed, 2), _mm_set1_epi8(0x30)));
  return _mm_unpacklo_epi32(low, high);
}

// Decoding (one activation row) streams every weight once, kRows rows at a time. Rows of
// a 2048-wide layer (8 blocks) end before the hardware prefetchers ramp up, so the loop
// over blocks prefetches kDecodePrefetchBlocks blocks ahead in each row and, past a
// row's end, the start of the row kRows on, which the next micro-tile reads. Prefetches
// never fault, so running past the matrix is harmless.
constexpr int64_t kDecodePrefetchBlocks = 4;

template <class Block, int kRows, int kCols>
[[gnu::always_inline]] inline void prefetch_decode(const uint8_t* w, int64_t w_stride, int64_t b, int64_t blocks) {
  if constexpr (kCols == 1) {
    const int64_t target = b + kDecodePrefetchBlocks;
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* block = target < blocks ? w + r * w_stride + target * static_cast<int64_t>(sizeof(Block))
                                             : w + (r + kRows) * w_stride +
                                                   (target - blocks) * static_cast<int64_t>(sizeof(Block));
      for (size_t line = 0; line < sizeof(Block); line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(block + line), _MM_HINT_T0);
    }
  }
}

// A kernel's micro-tile: y[c * ldy + r] for its fixed rows and cols.
using MicroTile = void (*)(const uint8_t* w, int64_t w_stride, const uint8_t* a, int64_t a_stride, int64_t blocks,
                           float* y, int64_t ldy);

// Every micro-tile shape up to kMaxRows x kMaxCols, indexed by (rows - 1) * kMaxCols + cols - 1.
template <class Kernel, int kMaxRows, int kMaxCols, size_t... kShape>
constexpr std::array<MicroTile, sizeof...(kShape)> micro_tiles(std::index_sequence<kShape...>) {
  return {&Kernel::template run<static_cast<int>(kShape) / kMaxCols + 1, static_cast<int>(kShape) % kMaxCols + 1>...};
}

// The tile walked in micro-tiles of up to kMaxRows weight rows by kMaxCols activation
// rows (kDecodeRows when there is one activation row). Every micro-tile shape computes an
// output with the same operations, so the split never shows in the result.
template <class Kernel, int kMaxRows, int kMaxCols, int kDecodeRows>
void tile(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
          int64_t blocks, float* y, int64_t ldy) {
  static constexpr auto kTiles = micro_tiles<Kernel, kMaxRows, kMaxCols>(std::make_index_sequence<kMaxRows * kMaxCols>());
  static constexpr auto kDecodeTiles = micro_tiles<Kernel, kDecodeRows, 1>(std::make_index_sequence<kDecodeRows>());
  const auto* weights = static_cast<const uint8_t*>(w);
  const auto* activations = static_cast<const uint8_t*>(a);
  if (cols == 1) {
    for (int64_t r = 0; r < rows; r += kDecodeRows)
      kDecodeTiles[std::min<int64_t>(kDecodeRows, rows - r) - 1](weights + r * w_stride, w_stride, activations,
                                                                  a_stride, blocks, y + r, ldy);
    return;
  }
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const int64_t tile_rows = std::min<int64_t>(kMaxRows, rows - r);
    for (int64_t c = 0; c < cols; c += kMaxCols) {
      const int64_t tile_cols = std::min<int64_t>(kMaxCols, cols - c);
      kTiles[(tile_rows - 1) * kMaxCols + tile_cols - 1](weights + r * w_stride, w_stride,
                                                         activations + c * a_stride, a_stride, blocks,
                                                         y + c * ldy + r, ldy);
    }
  }
}

}  // namespace
}  // namespace ember::cpu::x86
