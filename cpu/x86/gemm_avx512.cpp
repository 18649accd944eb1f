#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/threads.h"
#include "cpu/x86/gemm_kernels.h"
#include "cpu/x86/gemm_tiles_avx512.h"

namespace ember::cpu::x86 {
// Everything but the exported entry point stays in an anonymous namespace: an inline
// function shared by name with a file built for another ISA could be merged by the
// linker into the wrong variant.
namespace {

// A packed B chunk, kDepth × kTileColumns floats (32 KiB), stays in L1 while every row
// tile of A passes over it.
constexpr int64_t kDepth = 256;

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

// One k per step: an f32 of A broadcast against 32 packed f32 weights.
struct F32Step {
  using Activation = float;
  using Packed = float;
  using Weights = __m512;
  static constexpr int64_t kPerStep = 1;
  static __m512 broadcast(const float* a) { return _mm512_set1_ps(*a); }
  static __m512 load(const float* packed) { return _mm512_loadu_ps(packed); }
  static __m512 multiply_add(__m512 a, __m512 w, __m512 sum) { return _mm512_fmadd_ps(a, w, sum); }
};

}  // namespace

void gemm_weights_avx512(const float* a, int64_t lda, const void* b, ElementType b_type, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, int64_t k) {
#pragma omp parallel num_threads(threads())
  {
    std::vector<float> packed(static_cast<size_t>(kDepth * kTileColumns));
    multiply_panels<F32Step>(a, lda, c, ldc, m, n, k, kDepth, packed.data(),
                             [&](int64_t first_column, int64_t columns, int64_t first_k, int64_t depth) {
                               pack_panel(b, b_type, ldb, first_column, columns, first_k, depth, packed.data());
                             });
  }
}

}  // namespace ember::cpu::x86
