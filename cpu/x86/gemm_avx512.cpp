#include <immintrin.h>

#include <algorithm>
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

inline __m512 widen16(const uint16_t* p, bool f16) {
  const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return f16 ? _mm512_cvtph_ps(halves) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

// The pack functions copy weight rows [first_column, first_column + columns) × depth
// [first_k, first_k + depth) into `packed` as [depth][kTileColumns] floats, widened to
// f32, missing columns zero. Weights are [n, k] row-major (the linear layout), so this is
// a transpose; it costs one pass over the chunk, against kTileColumns · m multiply-adds.
void pack_rows(const float* b, int64_t ldb, int64_t first_column, int64_t columns, int64_t first_k, int64_t depth,
               float* packed) {
  for (int64_t c = 0; c < kTileColumns; ++c) {
    if (c >= columns) {
      for (int64_t kk = 0; kk < depth; ++kk) packed[kk * kTileColumns + c] = 0.0f;
      continue;
    }
    const float* row = b + (first_column + c) * ldb + first_k;
    for (int64_t kk = 0; kk < depth; ++kk) packed[kk * kTileColumns + c] = row[kk];
  }
}

void pack_rows_16bit(const uint16_t* b, int64_t ldb, int64_t first_column, int64_t columns, int64_t first_k,
                     int64_t depth, float* packed, bool f16) {
  alignas(64) float widened[16];
  for (int64_t c = 0; c < kTileColumns; ++c) {
    if (c >= columns) {
      for (int64_t kk = 0; kk < depth; ++kk) packed[kk * kTileColumns + c] = 0.0f;
      continue;
    }
    const uint16_t* row = b + (first_column + c) * ldb + first_k;
    int64_t kk = 0;
    for (; kk + 16 <= depth; kk += 16) {
      _mm512_store_ps(widened, widen16(row + kk, f16));
      for (int i = 0; i < 16; ++i) packed[(kk + i) * kTileColumns + c] = widened[i];
    }
    for (; kk < depth; ++kk) {
      const __m512 one = f16 ? _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<int16_t>(row[kk])))
                             : _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int32_t>(row[kk]) << 16));
      packed[kk * kTileColumns + c] = _mm512_cvtss_f32(one);
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
        switch (b_type) {
          case ElementType::f16:
          case ElementType::bf16:
            pack_rows_16bit(static_cast<const uint16_t*>(b), ldb, first_column, columns, first_k, depth, packed.data(),
                            b_type == ElementType::f16);
            break;
          default:
            pack_rows(static_cast<const float*>(b), ldb, first_column, columns, first_k, depth, packed.data());
            break;
        }
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
