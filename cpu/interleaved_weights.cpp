#include "cpu/interleaved_weights.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "cpu/threads.h"
#include "quant/block_formats.h"

namespace ember::cpu {
namespace {

constexpr int64_t kDwordBytes = 4;
constexpr int64_t kLaneBytes = 64;  // one dword per row of the group
constexpr int64_t kHalfBytes = 2;

// A span of a block's bytes that a record stores dword-interleaved.
struct DwordRun {
  int64_t offset;       // in the plain block
  int64_t dwords;
  uint8_t code_offset;  // added to every byte: q8_0's signed codes become unsigned
  // Adding 128 to a byte is flipping its top bit, so a whole dword takes one xor.
  uint32_t dword_offset() const { return code_offset * 0x01010101u; }
};

// Where a block's parts lie in its plain form, in the order a record stores them: the
// dword runs, then the f16 fields (one 16-row array each).
struct RecordShape {
  int64_t block_bytes;
  std::vector<DwordRun> runs;
  std::vector<int64_t> half_offsets;
  bool paired = false;

  int64_t body_bytes() const {
    int64_t bytes = 0;
    for (const DwordRun& run : runs) bytes += run.dwords * kLaneBytes;
    return bytes;
  }
  int64_t halves_bytes() const { return static_cast<int64_t>(half_offsets.size()) * kInterleavedRows * kHalfBytes; }
  RecordPlace place(int64_t b, int64_t blocks) const {
    return record_place(b, blocks, body_bytes(), halves_bytes(), paired);
  }
};

RecordShape record_shape(ElementType type) {
  switch (type) {
    case ElementType::q8_0:
      return {sizeof(quant::BlockQ8_0),
              {{offsetof(quant::BlockQ8_0, qs), quant::kQK8_0 / 4, 0x80}},
              {0},
              pairs_records(ElementType::q8_0)};
    case ElementType::q4_k:
      return {sizeof(quant::BlockQ4_K),
              {{offsetof(quant::BlockQ4_K, qs), quant::kQK_K / 8, 0}, {offsetof(quant::BlockQ4_K, scales), 3, 0}},
              {offsetof(quant::BlockQ4_K, d), offsetof(quant::BlockQ4_K, dmin)}};
    case ElementType::q6_k:
      return {sizeof(quant::BlockQ6_K),
              {{offsetof(quant::BlockQ6_K, ql), quant::kQK_K / 8, 0},
               {offsetof(quant::BlockQ6_K, qh), quant::kQK_K / 16, 0},
               {offsetof(quant::BlockQ6_K, scales), quant::kQK_K / 64, 0}},
              {offsetof(quant::BlockQ6_K, d)}};
    default: return {sizeof(quant::BlockQ4_0), {{offsetof(quant::BlockQ4_0, qs), quant::kQK4_0 / 8, 0}}, {0}};
  }
}

void interleave_record(const RecordShape& shape, const std::byte* const (&blocks)[kInterleavedRows], std::byte* out,
                       std::byte* halves) {
  for (const DwordRun& run : shape.runs) {
    for (int64_t i = 0; i < run.dwords; ++i)
      for (int64_t j = 0; j < kInterleavedRows; ++j) {
        uint32_t dword;
        std::memcpy(&dword, blocks[j] + run.offset + i * kDwordBytes, kDwordBytes);
        dword ^= run.dword_offset();
        std::memcpy(out + i * kLaneBytes + j * kDwordBytes, &dword, kDwordBytes);
      }
    out += run.dwords * kLaneBytes;
  }
  for (const int64_t offset : shape.half_offsets) {
    for (int64_t j = 0; j < kInterleavedRows; ++j) std::memcpy(halves + j * kHalfBytes, blocks[j] + offset, kHalfBytes);
    halves += kInterleavedRows * kHalfBytes;
  }
}

// Row j of a record back in its plain block form: interleave_record undone.
void deinterleave_block(const RecordShape& shape, const std::byte* record, const std::byte* halves, int64_t j,
                        std::byte* block) {
  for (const DwordRun& run : shape.runs) {
    for (int64_t i = 0; i < run.dwords; ++i) {
      uint32_t dword;
      std::memcpy(&dword, record + i * kLaneBytes + j * kDwordBytes, kDwordBytes);
      dword ^= run.dword_offset();
      std::memcpy(block + run.offset + i * kDwordBytes, &dword, kDwordBytes);
    }
    record += run.dwords * kLaneBytes;
  }
  for (const int64_t offset : shape.half_offsets) {
    std::memcpy(block + offset, halves + j * kHalfBytes, kHalfBytes);
    halves += kInterleavedRows * kHalfBytes;
  }
}

// The tile for ISAs without an interleaved kernel (tests force them): each group's rows
// are put back in the file layout and the plain scalar tile runs over them, so the sums
// are the plain layout's by construction.
template <ElementType kType>
void interleaved_tile_scalar(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                             int64_t cols, int64_t blocks, float* y, int64_t ldy) {
  const RecordShape shape = record_shape(kType);
  const QuantizedTile plain_tile = quantized_tile(kType, Isa::scalar);
  std::vector<std::byte> plain(static_cast<size_t>(kInterleavedRows * w_stride));
  for (int64_t first = 0; first < rows; first += kInterleavedRows) {
    const int64_t present = std::min(kInterleavedRows, rows - first);
    const std::byte* group = static_cast<const std::byte*>(w) + first * w_stride;
    for (int64_t j = 0; j < present; ++j)
      for (int64_t b = 0; b < blocks; ++b) {
        const RecordPlace place = shape.place(b, blocks);
        deinterleave_block(shape, group + place.body, group + place.halves, j,
                           plain.data() + j * w_stride + b * shape.block_bytes);
      }
    plain_tile(plain.data(), w_stride, present, a, a_stride, cols, blocks, y + first, ldy);
  }
}

}  // namespace

bool interleaving_pays(ElementType type, Isa isa) {
  return has_avx512_vnni(isa) && (type == ElementType::q8_0 || type == ElementType::q4_0 ||
                                  type == ElementType::q4_k || type == ElementType::q6_k);
}

int64_t interleaved_bytes(ElementType type, int64_t rows, int64_t in_features) {
  const int64_t groups = (rows + kInterleavedRows - 1) / kInterleavedRows;
  return groups * kInterleavedRows * element_row_bytes(type, in_features);
}

void interleave_rows(ElementType type, const void* weight, int64_t rows, int64_t in_features, void* out) {
  const RecordShape shape = record_shape(type);
  const int64_t row_bytes = element_row_bytes(type, in_features);
  const int64_t blocks = in_features / block_elements(type);
  const int64_t groups = (rows + kInterleavedRows - 1) / kInterleavedRows;
  const std::byte zero_block[sizeof(quant::BlockQ6_K)] = {};
  const auto* plain = static_cast<const std::byte*>(weight);
#pragma omp parallel for num_threads(threads()) schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    std::byte* group = static_cast<std::byte*>(out) + g * kInterleavedRows * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
      const std::byte* sources[kInterleavedRows];
      for (int64_t j = 0; j < kInterleavedRows; ++j) {
        const int64_t row = g * kInterleavedRows + j;
        sources[j] = row < rows ? plain + row * row_bytes + b * shape.block_bytes : zero_block;
      }
      const RecordPlace place = shape.place(b, blocks);
      interleave_record(shape, sources, group + place.body, group + place.halves);
    }
  }
}

QuantizedTile interleaved_tile(ElementType type, Isa isa) {
  if (interleaving_pays(type, isa)) {
    if (type == ElementType::q4_k) return x86::tile_q4_k_interleaved_avx512vnni;
    if (type == ElementType::q6_k) return x86::tile_q6_k_interleaved_avx512vnni;
    return x86::blocks32_interleaved_tile_avx512vnni(type);
  }
  switch (type) {
    case ElementType::q8_0: return interleaved_tile_scalar<ElementType::q8_0>;
    case ElementType::q4_0: return interleaved_tile_scalar<ElementType::q4_0>;
    case ElementType::q4_k: return interleaved_tile_scalar<ElementType::q4_k>;
    case ElementType::q6_k: return interleaved_tile_scalar<ElementType::q6_k>;
    default: return nullptr;
  }
}

}  // namespace ember::cpu
