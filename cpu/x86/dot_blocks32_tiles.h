// The ISA-independent half of the blocks32 tile kernels (cpu/dot_blocks32.h): activation
// terms, where each weight row's blocks lie, and the walk over slabs of weight rows and
// groups of activation rows. `Kernel` is the ISA's half: kLanes weight rows per vector,
// kColumnGroup activation rows per pass, its TransposedBlock and float Vector, and
// accumulate (one block's dot products into the accumulators) and store. Included by files
// compiled for different ISAs, so everything sits in an anonymous namespace.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/interleaved_weights.h"
#include "quant/block_formats.h"

namespace ember::cpu::x86 {
namespace {

// Per activation row and block: d_a, the int32 start of every sum (the weights' unsigned
// offset times -Σ a) and, for q8_1, s_a.
struct ActivationTerms {
  float scale;
  int32_t start;
  float sum;
};

// Read in place of the rows a partial slab lacks; larger than any block.
const uint8_t kZeroBlock[64] = {};

// How far ahead of each weight row the streamed path prefetches, every other block (a
// cache line holds more than two blocks of q4_0 and q4_1 and nearly two of q8_0): with
// 8 or 16 rows streaming at once the hardware prefetchers alone fall well short of the
// memory bandwidth (about 22 → 28 GB/s for q4_0 on Zen 5). Prefetches never fault, so
// running past a row's end is harmless.
constexpr int64_t kPrefetchBlocks = 32;

// Where block b of each weight row of a slab lies: a full slab's rows are w_stride apart,
// the rows a partial slab lacks read a zero block.
template <class WeightBlock>
struct FullSlab {
  const char* w;
  int64_t w_stride;
  const uint8_t* block(int j, int64_t b) const {
    return reinterpret_cast<const uint8_t*>(reinterpret_cast<const WeightBlock*>(w + j * w_stride) + b);
  }
  // What to prefetch `distance` blocks ahead of block b of row j: past the row's end, the
  // same row of the next slab (kLanes rows on), so the next slab starts warm. Rows of a
  // short matrix (2048 wide: 64 blocks of q4_0) end long before the hardware prefetchers
  // ramp up, and a slab's 16 rows would all start cold. Past the matrix it is harmless:
  // prefetches never fault.
  template <int kLanes>
  const uint8_t* prefetch_target(int j, int64_t b, int64_t distance, int64_t blocks) const {
    return b + distance < blocks ? block(j, b + distance) : block(j + kLanes, b + distance - blocks);
  }
};

template <class WeightBlock, int kLanes>
struct PartialSlab {
  const uint8_t* rows[kLanes];
  int64_t block_bytes[kLanes];
  PartialSlab(const char* w, int64_t w_stride, int present) {
    for (int j = 0; j < kLanes; ++j) {
      rows[j] = j < present ? reinterpret_cast<const uint8_t*>(w + j * w_stride) : kZeroBlock;
      block_bytes[j] = j < present ? static_cast<int64_t>(sizeof(WeightBlock)) : 0;
    }
  }
  const uint8_t* block(int j, int64_t b) const { return rows[j] + b * block_bytes[j]; }
  // The last slab of a tile: nothing of its own lies past its rows' ends.
  template <int>
  const uint8_t* prefetch_target(int j, int64_t b, int64_t distance, int64_t) const {
    return block(j, b + distance);
  }
};

// A slab of cpu/interleaved_weights.h's layout: block b of all kLanes rows is one record
// (a body of Format::kBodyBytes, halves of Format::kHalvesBytes; paired where
// Format::kPairedRecords), already in TransposedBlock order, the slab's records (and then
// the next slab's) one after another, so the whole tile is a single forward stream.
template <class Format>
struct InterleavedSlab {
  const char* records;
  int64_t blocks;
};

// Block b of every row of a slab as the kernels take it: transposed from the plain rows,
// or read as it stands from an interleaved record.
template <class Format, int kLanes, class Slab, class TransposedBlock>
[[gnu::always_inline]] inline void load_block(const Slab& slab, int64_t b, TransposedBlock& out) {
  const uint8_t* blocks[kLanes];
  for (int j = 0; j < kLanes; ++j) blocks[j] = slab.block(j, b);
  Format::transpose(blocks, out);
}

template <class Format, int kLanes, class TransposedBlock>
[[gnu::always_inline]] inline void load_block(const InterleavedSlab<Format>& slab, int64_t b, TransposedBlock& out) {
  const RecordPlace place =
      record_place(b, slab.blocks, Format::kBodyBytes, Format::kHalvesBytes, Format::kPairedRecords);
  Format::load(slab.records + place.body, slab.records + place.halves, out);
}

// Prefetches for the streamed path while it uses block b: kPrefetchBlocks ahead in each
// row, every other block.
template <int kLanes, class Slab>
[[gnu::always_inline]] inline void prefetch_ahead(const Slab& slab, int64_t b, int64_t blocks) {
  if (b % 2 != 0) return;
  for (int j = 0; j < kLanes; ++j)
    _mm_prefetch(reinterpret_cast<const char*>(slab.template prefetch_target<kLanes>(j, b, kPrefetchBlocks, blocks)),
                 _MM_HINT_T0);
}

// An interleaved slab is one forward stream (the next slab's records follow its own).
// Where Format::kPrefetchStreamBytes is not zero the stream's bytes that far ahead of
// block b's record are prefetched line by line, a record's worth, as the K-quants'
// interleaved kernels do: q4_0 decoding measured faster with it, q8_0 slower (docs/
// PERFORMANCE.md, twentieth and twenty-first sessions).
template <int kLanes, class Format>
[[gnu::always_inline]] inline void prefetch_ahead(const InterleavedSlab<Format>& slab, int64_t b, int64_t) {
  if constexpr (Format::kPrefetchStreamBytes > 0) {
    constexpr int64_t kAhead = (Format::kPrefetchStreamBytes + Format::kRecordBytes - 1) / Format::kRecordBytes;
    const char* record = slab.records + (b + kAhead) * Format::kRecordBytes;
    for (int64_t line = 0; line < Format::kRecordBytes; line += 64) _mm_prefetch(record + line, _MM_HINT_T0);
  }
}

// Σ of 32 signed bytes: sad sums bytes as unsigned, so bias them by 128 and take 32 · 128 off.
int32_t code_sum(const int8_t* qs) {
  const __m256i biased = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)),
                                          _mm256_set1_epi8(static_cast<char>(0x80)));
  const __m256i partial = _mm256_sad_epu8(biased, _mm256_setzero_si256());
  const __m128i halves = _mm_add_epi64(_mm256_castsi256_si128(partial), _mm256_extracti128_si256(partial, 1));
  return static_cast<int32_t>(_mm_cvtsi128_si64(_mm_add_epi64(halves, _mm_unpackhi_epi64(halves, halves)))) -
         quant::kQK8_0 * 128;
}

// d_a and the sums' start (or s_a) of every block of `cols` activation rows, row-major.
template <class Format>
void activation_terms(const char* a, int64_t a_stride, int64_t cols, int64_t blocks, ActivationTerms* out) {
  using ActivationBlock = typename Format::ActivationBlock;
  for (int64_t c = 0; c < cols; ++c) {
    const auto* row = reinterpret_cast<const ActivationBlock*>(a + c * a_stride);
    for (int64_t b = 0; b < blocks; ++b) out[c * blocks + b] = Format::terms(row[b], code_sum(row[b].qs));
  }
}


// Up to kLanes weight rows × kCols, each weight block transposed as it is used: for few
// activation rows (decoding), where the weights stream from memory once.
template <class Kernel, class Format, int kCols, class Slab>
void streamed_columns(const Slab& slab, int rows, const char* a, int64_t a_stride, int64_t blocks,
                      const ActivationTerms* terms, float* y, int64_t ldy) {
  typename Kernel::Vector acc[kCols];
  for (auto& v : acc) v = Kernel::zero();
  for (int64_t b = 0; b < blocks; ++b) {
    typename Kernel::TransposedBlock block;
    prefetch_ahead<Kernel::kLanes>(slab, b, blocks);
    load_block<Format, Kernel::kLanes>(slab, b, block);
    Kernel::template accumulate<Format, kCols>(block, a, a_stride, b, terms, blocks, acc);
  }
  Kernel::store(acc, rows, y, ldy);
}

// kCols activation rows against weight rows transposed beforehand (prompt batches).
template <class Kernel, class Format, int kCols>
void transposed_columns(const typename Kernel::TransposedBlock* w, int rows, const char* a, int64_t a_stride,
                        int64_t blocks, const ActivationTerms* terms, float* y, int64_t ldy) {
  typename Kernel::Vector acc[kCols];
  for (auto& v : acc) v = Kernel::zero();
  for (int64_t b = 0; b < blocks; ++b)
    Kernel::template accumulate<Format, kCols>(w[b], a, a_stride, b, terms, blocks, acc);
  Kernel::store(acc, rows, y, ldy);
}

// From this many activation rows on, transposing a slab once pays for itself.
constexpr int64_t kTransposeColumns = 4;

template <class Kernel, class Format, int kCols = Kernel::kColumnGroup>
void column_tail(const typename Kernel::TransposedBlock* w, int rows, const char* a, int64_t a_stride, int64_t cols,
                 int64_t blocks, const ActivationTerms* terms, float* y, int64_t ldy) {
  if constexpr (kCols > 0) {
    if (cols == kCols) return transposed_columns<Kernel, Format, kCols>(w, rows, a, a_stride, blocks, terms, y, ldy);
    column_tail<Kernel, Format, kCols - 1>(w, rows, a, a_stride, cols, blocks, terms, y, ldy);
  }
}

template <class Kernel, class Format, class Slab>
void streamed_tail(const Slab& slab, int rows, const char* a, int64_t a_stride, int64_t cols, int64_t blocks,
                   const ActivationTerms* terms, float* y, int64_t ldy) {
  static_assert(kTransposeColumns == 4);
  switch (cols) {
    case 1: return streamed_columns<Kernel, Format, 1>(slab, rows, a, a_stride, blocks, terms, y, ldy);
    case 2: return streamed_columns<Kernel, Format, 2>(slab, rows, a, a_stride, blocks, terms, y, ldy);
    default: return streamed_columns<Kernel, Format, 3>(slab, rows, a, a_stride, blocks, terms, y, ldy);
  }
}

// The whole tile for one slab of up to kLanes weight rows.
template <class Kernel, class Format, class Slab>
void slab_tile(const Slab& slab, int rows, const char* a, int64_t a_stride, int64_t cols, int64_t blocks,
               const ActivationTerms* terms, float* y, int64_t ldy) {
  if (cols < kTransposeColumns)
    return streamed_tail<Kernel, Format>(slab, rows, a, a_stride, cols, blocks, terms, y, ldy);
  thread_local std::vector<typename Kernel::TransposedBlock> transposed;
  transposed.resize(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) load_block<Format, Kernel::kLanes>(slab, b, transposed[b]);
  constexpr int kGroup = Kernel::kColumnGroup;
  int64_t c = 0;
  for (; c + kGroup <= cols; c += kGroup)
    transposed_columns<Kernel, Format, kGroup>(transposed.data(), rows, a + c * a_stride, a_stride, blocks,
                                               terms + c * blocks, y + c * ldy, ldy);
  if (c < cols)
    column_tail<Kernel, Format>(transposed.data(), rows, a + c * a_stride, a_stride, cols - c, blocks,
                                terms + c * blocks, y + c * ldy, ldy);
}

// The terms of every block of `cols` activation rows, in a per-thread scratch.
template <class Format>
const ActivationTerms* prepared_terms(const char* a, int64_t a_stride, int64_t cols, int64_t blocks) {
  thread_local std::vector<ActivationTerms> terms;
  terms.resize(static_cast<size_t>(cols * blocks));
  activation_terms<Format>(a, a_stride, cols, blocks, terms.data());
  return terms.data();
}

template <class Kernel, class Format>
void tile(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols, int64_t blocks,
          float* y, int64_t ldy) {
  constexpr int kLanes = Kernel::kLanes;
  using WeightBlock = typename Format::WeightBlock;
  const auto* weights = static_cast<const char*>(w);
  const auto* activations = static_cast<const char*>(a);
  const ActivationTerms* terms = prepared_terms<Format>(activations, a_stride, cols, blocks);
  int64_t r = 0;
  for (; r + kLanes <= rows; r += kLanes)
    slab_tile<Kernel, Format>(FullSlab<WeightBlock>{weights + r * w_stride, w_stride}, kLanes, activations, a_stride,
                              cols, blocks, terms, y + r, ldy);
  if (r < rows) {
    const int present = static_cast<int>(rows - r);
    slab_tile<Kernel, Format>(PartialSlab<WeightBlock, kLanes>(weights + r * w_stride, w_stride, present), present,
                              activations, a_stride, cols, blocks, terms, y + r, ldy);
  }
}

// The QuantizedTile contract over weights in the interleaved layout: `w` is the record
// block of the tile's first slab and row r's slab starts at w + (r / kLanes) · kLanes ·
// w_stride, w_stride being a plain row's bytes. The sums are those of tile<Kernel,
// Format>, in the same order, so both layouts give the same bits.
template <class Kernel, class Format>
void interleaved_tile(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                      int64_t blocks, float* y, int64_t ldy) {
  constexpr int kLanes = Kernel::kLanes;
  const auto* weights = static_cast<const char*>(w);
  const auto* activations = static_cast<const char*>(a);
  const ActivationTerms* terms = prepared_terms<Format>(activations, a_stride, cols, blocks);
  for (int64_t r = 0; r < rows; r += kLanes)
    slab_tile<Kernel, Format>(InterleavedSlab<Format>{weights + r * w_stride, blocks},
                              static_cast<int>(std::min<int64_t>(kLanes, rows - r)), activations, a_stride, cols,
                              blocks, terms, y + r, ldy);
}

}  // namespace
}  // namespace ember::cpu::x86
