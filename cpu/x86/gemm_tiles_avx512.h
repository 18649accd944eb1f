// What the two AVX-512 linear-layer GEMMs share: the register tile, the 16×16 transpose of
// 32-bit elements that packs weight panels, and the loop over column panels and depth
// chunks. They differ in a `Step` policy: gemm_avx512.cpp multiplies one k per step
// (f32 A broadcast, FMA), gemm_avx512bf16.cpp a pair of k (bf16 pair broadcast,
// vdpbf16ps). In an anonymous namespace, so each including file (compiled for its own
// ISA) gets its own copy.
//
// A Step provides:
//   Activation, Packed   element types of A and of a packed weight chunk
//   kPerStep             k per step
//   Weights, broadcast(a), load(packed), multiply_add(a, w, sum)
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace ember::cpu::x86 {
namespace {

// The register tile: kTileRows activation rows × kTileColumns outputs (kVectors vectors of
// 16): 16 accumulators, each weight load feeding kTileRows multiply-adds and each A
// broadcast kVectors.
constexpr int kTileRows = 8;
constexpr int kVectors = 2;
constexpr int64_t kTileColumns = 16 * kVectors;

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

// Stores (accumulate: adds to what c holds) kRows × kVectors sums, of which only the first
// `columns` outputs of each row exist.
template <int kRows>
void store_tile(__m512 (&sums)[kRows][kVectors], float* c, int64_t ldc, int64_t columns, bool accumulate) {
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

// c[r][0..kTileColumns) (+)= Σ_s a[r][step s] · packed[s][..] for kRows rows of A;
// `accumulate` adds to what c holds (every depth chunk after the first). Only `columns`
// outputs are stored.
template <class Step, int kRows>
void tile_kernel(const typename Step::Activation* a, int64_t lda, const typename Step::Packed* packed, int64_t steps,
                 float* c, int64_t ldc, int64_t columns, bool accumulate) {
  __m512 sums[kRows][kVectors];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVectors; ++v) sums[r][v] = _mm512_setzero_ps();
  for (int64_t s = 0; s < steps; ++s) {
    typename Step::Weights weights[kVectors];
    for (int v = 0; v < kVectors; ++v) weights[v] = Step::load(packed + s * kTileColumns + 16 * v);
    for (int r = 0; r < kRows; ++r) {
      const auto a_value = Step::broadcast(a + r * lda + s * Step::kPerStep);
      for (int v = 0; v < kVectors; ++v) sums[r][v] = Step::multiply_add(a_value, weights[v], sums[r][v]);
    }
  }
  store_tile<kRows>(sums, c, ldc, columns, accumulate);
}

template <class Step>
using TileKernel = void (*)(const typename Step::Activation*, int64_t, const typename Step::Packed*, int64_t, float*,
                            int64_t, int64_t, bool);
template <class Step>
constexpr TileKernel<Step> kTileKernels[kTileRows + 1] = {
    nullptr,                tile_kernel<Step, 1>, tile_kernel<Step, 2>, tile_kernel<Step, 3>, tile_kernel<Step, 4>,
    tile_kernel<Step, 5>, tile_kernel<Step, 6>, tile_kernel<Step, 7>, tile_kernel<Step, 8>};

// c[m, n] = a · packed weights, inside a parallel region. Each thread owns whole column
// panels (a static split): for each depth chunk of `chunk_depth` k it calls
// pack(first_column, columns, first_k, depth) to fill `packed`, its own buffer, then runs
// every row tile of A over it. Sums over k run in one fixed order per output.
template <class Step, class Pack>
void multiply_panels(const typename Step::Activation* a, int64_t lda, float* c, int64_t ldc, int64_t m, int64_t n,
                     int64_t k, int64_t chunk_depth, const typename Step::Packed* packed, Pack pack) {
  const int64_t panels = (n + kTileColumns - 1) / kTileColumns;
#pragma omp for schedule(static)
  for (int64_t panel = 0; panel < panels; ++panel) {
    const int64_t first_column = panel * kTileColumns;
    const int64_t columns = std::min(kTileColumns, n - first_column);
    for (int64_t first_k = 0; first_k < k; first_k += chunk_depth) {
      const int64_t depth = std::min(chunk_depth, k - first_k);
      pack(first_column, columns, first_k, depth);
      const int64_t steps = (depth + Step::kPerStep - 1) / Step::kPerStep;
      for (int64_t first_row = 0; first_row < m; first_row += kTileRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kTileRows, m - first_row));
        kTileKernels<Step>[rows](a + first_row * lda + first_k, lda, packed, steps, c + first_row * ldc + first_column,
                                 ldc, columns, first_k > 0);
      }
    }
  }
}

}  // namespace
}  // namespace ember::cpu::x86
