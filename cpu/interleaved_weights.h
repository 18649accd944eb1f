// The interleaved weight layout: q8_0, q4_0, q4_K and q6_K matrices rearranged once (when a
// model's weights first meet the CPU) so the 512-bit VNNI kernels read them as one forward
// stream with no transposing. The plain GGUF rows stay the format on disk and for every
// other consumer; only cpu::quantized_matmul reads this layout.
//
// Rows go in groups of kInterleavedRows (the last group padded with zero rows). For each
// group and each block index b there is one record of kInterleavedRows × the block's
// bytes: its body, the group's codes dword-interleaved (dword i of row j at byte 64 i +
// 4 j; q4_0 has 4 dwords of packed nibbles per row, q8_0 8 dwords of codes offset by +128
// to unsigned bytes; the K-quants interleave each part of their block as such a run in
// turn: q4_K its 32 dwords of packed nibbles, then its 12 packed scale bytes as 3 dwords;
// q6_K its 32 ql, 16 qh and 4 scale dwords), and its halves, each f16 field of the block
// as an array of 16 (the scales d; for q4_K then dmin). A body is a whole number of
// 64-byte lines; a q8_0 record (544 bytes) is not, so q8_0 records go in pairs, blocks 2p
// and 2p + 1: both bodies, then both halves (a last odd block is a pair of one), and every
// vector load lands on one cache line. Paired, M's q8_0 decoding ran 11-18% faster; q4_0
// (288-byte records, which its kernel prefetches) measured no gain and stays single
// (docs/PERFORMANCE.md, twenty-first session). A group takes exactly the bytes of its
// rows in the plain layout and starts where its first row would.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"
#include "cpu/isa.h"
#include "cpu/quantized_dot.h"

namespace ember::cpu {

inline constexpr int64_t kInterleavedRows = 16;

// Whether records of `type` go in pairs.
constexpr bool pairs_records(ElementType type) { return type == ElementType::q8_0; }

// Where block b's body and halves start, in bytes from its group's first record, for a
// group of `blocks` blocks whose records have body_bytes and halves_bytes.
struct RecordPlace {
  int64_t body, halves;
};
constexpr RecordPlace record_place(int64_t b, int64_t blocks, int64_t body_bytes, int64_t halves_bytes, bool paired) {
  const int64_t record_bytes = body_bytes + halves_bytes;
  if (!paired) return {b * record_bytes, b * record_bytes + body_bytes};
  const int64_t first = b - b % 2;
  const int64_t pair = first * record_bytes;
  const int64_t bodies = blocks - first < 2 ? 1 : 2;
  const int64_t second = b - first;
  return {pair + second * body_bytes, pair + bodies * body_bytes + second * halves_bytes};
}

// Whether weights of `type` run faster interleaved on `isa` (avx512_vnni and up: q8_0, q4_0, q4_K, q6_K),
// which is when rearranging them pays.
bool interleaving_pays(ElementType type, Isa isa);

// Bytes of `rows` rows of `in_features` elements in the layout: a whole number of groups.
int64_t interleaved_bytes(ElementType type, int64_t rows, int64_t in_features);

// Writes plain rows `weight` (q8_0, q4_0, q4_K or q6_K) into `out` (interleaved_bytes long) in the layout.
void interleave_rows(ElementType type, const void* weight, int64_t rows, int64_t in_features, void* out);

// The QuantizedTile over the layout for `type` on `isa` (a plain C++ one where the ISA has
// none, for tests that force a lower ISA): `w` addresses the tile's first group and
// w_stride is a plain row's bytes. q8_0 and q4_0 give the same bits as the plain layout's
// tile on any ISA; q4_K and q6_K those of the plain C++ tile, whose integer sums and float
// order their kernels keep.
QuantizedTile interleaved_tile(ElementType type, Isa isa);

namespace x86 {
QuantizedTile blocks32_interleaved_tile_avx512vnni(ElementType weight_type);
void tile_q4_k_interleaved_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                                      int64_t cols, int64_t blocks, float* y, int64_t ldy);
void tile_q6_k_interleaved_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                                      int64_t cols, int64_t blocks, float* y, int64_t ldy);
}  // namespace x86

}  // namespace ember::cpu
