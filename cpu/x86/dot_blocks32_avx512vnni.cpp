#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/dot_blocks32.h"
#include "cpu/x86/dot_blocks32_tiles.h"
#include "quant/block_formats.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

// Sixteen weight rows go down the 16 lanes of a vector: for one block, codes[i] holds
// bytes 4i .. 4i + 3 of each row's 32 codes (as unsigned bytes), so eight vpdpbusd
// against activation dwords broadcast from memory leave each lane with its row's whole
// block dot product, and no lane ever needs summing across. Per output that is exactly
//   acc = fma(float(Σ q_w q_a), d_w · d_a, acc)      (q4_1: then acc = fma(m_w, s_a, acc))
// block after block, streamed or transposed: the same bits as the other ISA levels' (and
// the scalar kernel's) for any split into tiles.
constexpr int kVectorRows = 16;
constexpr int kDwords = quant::kQK8_0 / 4;

struct TransposedBlock {
  __m512i codes[kDwords];
  __m512 scale;
  __m512 min;
};

// The 16 × 4 dword matrix rows[j][0..3] (16 bytes per row) as 4 vectors, lane j of
// vector i holding rows[j] dword i: four rows per 128-bit chunk, then an in-chunk 4 × 4
// transpose.
[[gnu::always_inline]] inline void transpose_16x4(const uint8_t* const (&rows)[kVectorRows], int offset,
                                                  __m512i (&out)[4]) {
  __m512i by_row[4];
  // The chunk index of _mm512_inserti32x4 must be a literal: clang refuses a loop
  // variable outright, and GCC does too wherever the loop is left rolled (-O2 with ASan).
  const auto chunk = [&](int row) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[row] + offset)); };
  for (int m = 0; m < 4; ++m) {
    __m512i v = _mm512_castsi128_si512(chunk(m));
    v = _mm512_inserti32x4(v, chunk(4 + m), 1);
    v = _mm512_inserti32x4(v, chunk(8 + m), 2);
    v = _mm512_inserti32x4(v, chunk(12 + m), 3);
    by_row[m] = v;
  }
  const __m512i t0 = _mm512_unpacklo_epi32(by_row[0], by_row[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(by_row[0], by_row[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(by_row[2], by_row[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(by_row[2], by_row[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// The f16 field at byte `offset` of each of the 16 blocks, as floats. Plain loads through
// memory: a vpgatherdd costs more than the rest of a block's transpose.
[[gnu::always_inline]] inline __m512 halves_at(const uint8_t* const (&blocks)[kVectorRows], size_t offset) {
  alignas(32) uint16_t halves[kVectorRows];
  for (int j = 0; j < kVectorRows; ++j) std::memcpy(&halves[j], blocks[j] + offset, sizeof halves[j]);
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(halves)));
}

// An interleaved record's 16 f16 scales (its halves), as floats.
[[gnu::always_inline]] inline __m512 scales_at(const char* halves) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(halves)));
}

void unpack_nibbles(const __m512i (&packed)[4], TransposedBlock& out) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int i = 0; i < 4; ++i) {
    out.codes[i] = _mm512_and_si512(packed[i], low);
    out.codes[i + 4] = _mm512_and_si512(_mm512_srli_epi16(packed[i], 4), low);
  }
}

// A record of cpu/interleaved_weights.h's layout for `kType`: a body of kCodeVectors
// 64-byte code vectors, halves of the 16 f16 scales, paired as the layout pairs that type.
template <ElementType kType, class WeightBlock, int kCodeVectors>
struct InterleavedRecord {
  static constexpr int64_t kBodyBytes = 64 * kCodeVectors;
  static constexpr int64_t kHalvesBytes = kVectorRows * sizeof(uint16_t);
  static constexpr int64_t kRecordBytes = kBodyBytes + kHalvesBytes;
  static_assert(kRecordBytes == kVectorRows * sizeof(WeightBlock));
  static constexpr bool kPairedRecords = pairs_records(kType);
};

// q8_0 weights against q8_0: weights offset by 128 into unsigned bytes, sums start at
// -128 Σ a. Records: the 8 code vectors, already offset.
struct Q8_0Format : InterleavedRecord<ElementType::q8_0, quant::BlockQ8_0, kDwords> {
  using WeightBlock = quant::BlockQ8_0;
  using ActivationBlock = quant::BlockQ8_0;
  static constexpr int kOffset = 128;
  static constexpr bool kHasMin = false;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m512i half[4];
    for (int h = 0; h < 2; ++h) {
      transpose_16x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)) + 16 * h, half);
      for (int i = 0; i < 4; ++i)
        out.codes[4 * h + i] = _mm512_xor_si512(half[i], _mm512_set1_epi8(static_cast<char>(0x80)));
    }
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
  }
  // Decoding reads the records without software prefetches (dot_blocks32_tiles.h).
  static constexpr int64_t kPrefetchStreamBytes = 0;
  [[gnu::always_inline]] static void load(const char* body, const char* halves, TransposedBlock& out) {
    for (int i = 0; i < kDwords; ++i) out.codes[i] = _mm512_loadu_si512(body + 64 * i);
    out.scale = scales_at(halves);
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t code_sum) {
    return {_cvtsh_ss(block.d), -kOffset * code_sum, 0.0f};
  }
};

// q4_0 weights against q8_0: codes 0-15 as unsigned bytes, sums start at -8 Σ a.
// Records: the 4 packed code vectors.
struct Q4_0Format : InterleavedRecord<ElementType::q4_0, quant::BlockQ4_0, 4> {
  using WeightBlock = quant::BlockQ4_0;
  using ActivationBlock = quant::BlockQ8_0;
  static constexpr bool kHasMin = false;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m512i packed[4];
    transpose_16x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)), packed);
    unpack_nibbles(packed, out);
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
  }
  // Decoding prefetches the record 16 ahead (4.5 KiB), about as far as the K-quants reach.
  static constexpr int64_t kPrefetchStreamBytes = 4608;
  [[gnu::always_inline]] static void load(const char* body, const char* halves, TransposedBlock& out) {
    __m512i packed[4];
    for (int i = 0; i < 4; ++i) packed[i] = _mm512_loadu_si512(body + 64 * i);
    unpack_nibbles(packed, out);
    out.scale = scales_at(halves);
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t code_sum) {
    return {_cvtsh_ss(block.d), -8 * code_sum, 0.0f};
  }
};

// q4_1 weights against q8_1: sums start at zero, and m_w s_a follows each block's fma.
struct Q4_1Format {
  using WeightBlock = quant::BlockQ4_1;
  using ActivationBlock = quant::BlockQ8_1;
  static constexpr bool kHasMin = true;
  [[gnu::always_inline]] static void transpose(const uint8_t* const (&blocks)[kVectorRows], TransposedBlock& out) {
    __m512i packed[4];
    transpose_16x4(blocks, static_cast<int>(offsetof(WeightBlock, qs)), packed);
    unpack_nibbles(packed, out);
    out.scale = halves_at(blocks, offsetof(WeightBlock, d));
    out.min = halves_at(blocks, offsetof(WeightBlock, m));
  }
  static ActivationTerms terms(const ActivationBlock& block, int32_t) {
    return {_cvtsh_ss(block.d), 0, _cvtsh_ss(block.s)};
  }
};

__m512i broadcast_dword(const int8_t* p) {
  int32_t value;
  std::memcpy(&value, p, sizeof value);
  return _mm512_set1_epi32(value);
}

// The ISA half of dot_blocks32_tiles.h's driver.
struct Kernel {
  static constexpr int kLanes = kVectorRows;
  // Activation rows per pass over the transposed weights: 8 sums and 8 accumulators in registers.
  static constexpr int kColumnGroup = 8;
  using TransposedBlock = x86::TransposedBlock;
  using Vector = __m512;
  static Vector zero() { return _mm512_setzero_ps(); }

  // The running sums of 16 weight rows against kCols activation rows for one block.
  template <class Format, int kCols>
  [[gnu::always_inline]] static void accumulate(const TransposedBlock& w, const char* a, int64_t a_stride, int64_t b,
                                                const ActivationTerms* terms, int64_t blocks, __m512 (&acc)[kCols]) {
    using ActivationBlock = typename Format::ActivationBlock;
    __m512i sums[kCols];
    const int8_t* codes[kCols];
    for (int c = 0; c < kCols; ++c) {
      codes[c] = reinterpret_cast<const ActivationBlock*>(a + c * a_stride)[b].qs;
      sums[c] = _mm512_set1_epi32(terms[c * blocks + b].start);
    }
    for (int i = 0; i < kDwords; ++i)
      for (int c = 0; c < kCols; ++c)
        sums[c] = _mm512_dpbusd_epi32(sums[c], w.codes[i], broadcast_dword(codes[c] + 4 * i));
    for (int c = 0; c < kCols; ++c) {
      const ActivationTerms& t = terms[c * blocks + b];
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[c]), _mm512_mul_ps(w.scale, _mm512_set1_ps(t.scale)), acc[c]);
      if constexpr (Format::kHasMin) acc[c] = _mm512_fmadd_ps(w.min, _mm512_set1_ps(t.sum), acc[c]);
    }
  }

  template <int kCols>
  static void store(const __m512 (&acc)[kCols], int rows, float* y, int64_t ldy) {
    const auto present = static_cast<__mmask16>((1u << rows) - 1);
    for (int c = 0; c < kCols; ++c) _mm512_mask_storeu_ps(y + c * ldy, present, acc[c]);
  }
};

}  // namespace

QuantizedTile blocks32_interleaved_tile_avx512vnni(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q8_0: return interleaved_tile<Kernel, Q8_0Format>;
    case ElementType::q4_0: return interleaved_tile<Kernel, Q4_0Format>;
    default: return nullptr;
  }
}

QuantizedTile blocks32_tile_avx512vnni(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q8_0: return tile<Kernel, Q8_0Format>;
    case ElementType::q4_0: return tile<Kernel, Q4_0Format>;
    case ElementType::q4_1: return tile<Kernel, Q4_1Format>;
    default: return nullptr;
  }
}

}  // namespace ember::cpu::x86
