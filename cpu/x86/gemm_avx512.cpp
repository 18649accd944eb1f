#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/threads.h"
#include "cpu/x86/gemm_kernels.h"

namespace ember::cpu::x86 {
// Everything but the exported entry point stays in an anonymous namespace: an inline
// function shared by name with a file built for another ISA could be merged by the
// linker into the wrong variant.
namespace {

// The register tile: kTileRows activation rows × kTileColumns outputs (kVectors vectors of
// 16): 16 accumulators, each B load feeding kTileRows FMAs and each A broadcast kVectors.
constexpr int kTileRows = 8;
constexpr int kVectors = 2;
constexpr int64_t kTileColumns = 16 * kVectors;
// A packed B chunk, kDepth × kTileColumns floats (32 KiB), stays in L1 while every row
// tile of A passes over it.
constexpr int64_t kDepth = 256;

// Transposes a 16×16 block of floats held as 16 vectors: afterwards rows[e] holds element
// e of every input vector, input vector i in lane i.
inline void transpose16(__m512 rows[16]) {
  __m512 pairs[16];  // in each 128-bit lane L: elements 4L, 4L+1 (even) or 4L+2, 4L+3 (odd) of two vectors
  for (int i = 0; i < 16; i += 2) {
    pairs[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
    pairs[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
  }
  __m512 quads[16];  // quads[4q + j], lane L: element 4L + j of vectors 4q .. 4q+3
  for (int q = 0; q < 4; ++q) {
    const __m512* pair = pairs + 4 * q;
    quads[4 * q + 0] = _mm512_shuffle_ps(pair[0], pair[2], 0x44);
    quads[4 * q + 1] = _mm512_shuffle_ps(pair[0], pair[2], 0xee);
    quads[4 * q + 2] = _mm512_shuffle_ps(pair[1], pair[3], 0x44);
    quads[4 * q + 3] = _mm512_shuffle_ps(pair[1], pair[3], 0xee);
  }
  // What is left is a 4×4 transpose of 128-bit lanes among quads[j], [4+j], [8+j], [12+j].
  for (int j = 0; j < 4; ++j) {
    const __m512 even_low = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0x88);
    const __m512 odd_low = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0xdd);
    const __m512 even_high = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0x88);
    const __m512 odd_high = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0xdd);
    rows[j] = _mm512_shuffle_f32x4(even_low, even_high, 0x88);
    rows[8 + j] = _mm512_shuffle_f32x4(even_low, even_high, 0xdd);
    rows[4 + j] = _mm512_shuffle_f32x4(odd_low, odd_high, 0x88);
    rows[12 + j] = _mm512_shuffle_f32x4(odd_low, odd_high, 0xdd);
  }
}

// 16 consecutive weights of one row from `p` widened to f32, only those `mask` selects
// read (the others zero): a chunk's last step may end before 16.
inline __m512 load16(const void* p, __mmask16 mask, ElementType type) {
  if (type == ElementType::f32) return _mm512_maskz_loadu_ps(mask, p);
  const __m256i halves = _mm256_maskz_loadu_epi16(mask, p);
  return type == ElementType::f16 ? _mm512_cvtph_ps(halves)
                                  : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

// Copies weight rows [first_column, first_column + columns) × depth [first_k, first_k +
// depth) into `packed` as [depth][kTileColumns] floats, widened to f32, missing columns
// zero. Weights are [n, k] row-major (the linear layout), so this is a transpose, made
// 16×16 at a time in registers; it costs one pass over the chunk, against
// kTileColumns · m multiply-adds.
void pack_panel(const void* b, ElementType type, int64_t ldb, int64_t first_column, int64_t columns, int64_t first_k,
                int64_t depth, float* packed) {
  const int64_t element_bytes = type == ElementType::f32 ? 4 : 2;
  const auto* bytes = static_cast<const std::byte*>(b);
  for (int v = 0; v < kVectors; ++v) {
    for (int64_t kk = 0; kk < depth; kk += 16) {
      const int64_t count = std::min<int64_t>(16, depth - kk);
      const auto mask = static_cast<__mmask16>((uint32_t{1} << count) - 1);
      __m512 block[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t column = 16 * v + i;
        block[i] = column < columns
                       ? load16(bytes + ((first_column + column) * ldb + first_k + kk) * element_bytes, mask, type)
                       : _mm512_setzero_ps();
      }
      transpose16(block);
      for (int64_t i = 0; i < count; ++i) _mm512_storeu_ps(packed + (kk + i) * kTileColumns + 16 * v, block[i]);
    }
  }
}

// c[r][0..kTileColumns) (+)= Σ_kk a[r][kk] · packed[kk][..] for kRows rows; `accumulate`
// adds to what c holds (every depth chunk after the first). Only `columns` outputs are
// stored.
template <int kRows>
void tile_kernel(const float* a, int64_t lda, const float* packed, int64_t depth, float* c, int64_t ldc,
                 int64_t columns, bool accumulate) {
  __m512 sums[kRows][kVectors];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVectors; ++v) sums[r][v] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < depth; ++kk) {
    __m512 weights[kVectors];
    for (int v = 0; v < kVectors; ++v) weights[v] = _mm512_loadu_ps(packed + kk * kTileColumns + 16 * v);
    for (int r = 0; r < kRows; ++r) {
      const __m512 a_value = _mm512_set1_ps(a[r * lda + kk]);
      for (int v = 0; v < kVectors; ++v) sums[r][v] = _mm512_fmadd_ps(a_value, weights[v], sums[r][v]);
    }
  }
  __mmask16 masks[kVectors];
  for (int v = 0; v < kVectors; ++v) {
    const int64_t left = columns - 16 * v;
    masks[v] = left >= 16 ? 0xffff : left <= 0 ? 0 : static_cast<__mmask16>((1u << left) - 1);
  }
  for (int r = 0; r < kRows; ++r) {
    float* row = c + r * ldc;
    for (int v = 0; v < kVectors; ++v) {
      if (accumulate) sums[r][v] = _mm512_add_ps(sums[r][v], _mm512_maskz_loadu_ps(masks[v], row + 16 * v));
      _mm512_mask_storeu_ps(row + 16 * v, masks[v], sums[r][v]);
    }
  }
}

using TileKernel = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);
constexpr TileKernel kTileKernels[kTileRows + 1] = {nullptr,         tile_kernel<1>, tile_kernel<2>,
                                                    tile_kernel<3>, tile_kernel<4>, tile_kernel<5>,
                                                    tile_kernel<6>, tile_kernel<7>, tile_kernel<8>};

}  // namespace

void gemm_weights_avx512(const float* a, int64_t lda, const void* b, ElementType b_type, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, int64_t k) {
  const int64_t panels = (n + kTileColumns - 1) / kTileColumns;
  // Each thread owns whole column panels: it packs a depth chunk of its weights once and
  // runs every row tile of A over it. Sums over k run in one fixed order per output.
#pragma omp parallel num_threads(threads())
  {
    std::vector<float> packed(static_cast<size_t>(kDepth * kTileColumns));
#pragma omp for schedule(static)
    for (int64_t panel = 0; panel < panels; ++panel) {
      const int64_t first_column = panel * kTileColumns;
      const int64_t columns = std::min(kTileColumns, n - first_column);
      for (int64_t first_k = 0; first_k < k; first_k += kDepth) {
        const int64_t depth = std::min(kDepth, k - first_k);
        pack_panel(b, b_type, ldb, first_column, columns, first_k, depth, packed.data());
        for (int64_t first_row = 0; first_row < m; first_row += kTileRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kTileRows, m - first_row));
          kTileKernels[rows](a + first_row * lda + first_k, lda, packed.data(), depth, c + first_row * ldc + first_column,
                             ldc, columns, first_k > 0);
        }
      }
    }
  }
}

}  // namespace ember::cpu::x86
