#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/threads.h"
#include "cpu/x86/gemm_kernels.h"
#include "cpu/x86/gemm_tiles_avx512.h"

namespace ember::cpu::x86 {
// Everything but the exported entry point stays in an anonymous namespace: an inline
// function shared by name with a file built for another ISA could be merged by the
// linker into the wrong variant.
namespace {

// A packed weight chunk, kDepth / 2 pairs × kTileColumns dwords (32 KiB), stays in L1
// while every row tile of A passes over it. Even, so chunks start on a pair.
constexpr int64_t kDepth = 512;

inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << count) - 1u);
}

// One row of A rounded to bf16 (to nearest even); the caller's zeroed row is `stride`
// (k rounded up to even) long, so an odd k's last pair ends in a zero.
void round_row(const float* a, int64_t k, uint16_t* rounded) {
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 mask = first_lanes(k - i);
    const __m256bh values = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, a + i));
    _mm256_mask_storeu_epi16(rounded + i, mask, reinterpret_cast<__m256i>(values));
  }
}

// Copies weight rows [first_column, first_column + columns) × depth [first_k, first_k +
// depth) into `packed` as [pairs][kTileColumns] dwords, each a column's two bf16 weights
// for k = 2p, 2p + 1 (the even one low): vdpbf16ps's operand layout. Missing columns and a
// missing last k are zero. Weights are [n, k] row-major, so this is a transpose of pairs,
// 16 columns × 16 pairs at a time in registers.
void pack_panel(const uint16_t* b, int64_t ldb, int64_t first_column, int64_t columns, int64_t first_k, int64_t depth,
                uint32_t* packed) {
  for (int v = 0; v < kVectors; ++v) {
    for (int64_t kk = 0; kk < depth; kk += 32) {
      const int64_t count = std::min<int64_t>(32, depth - kk);
      const auto mask = static_cast<__mmask32>(count == 32 ? ~uint32_t{0} : (uint32_t{1} << count) - 1);
      __m512 block[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t column = 16 * v + i;
        block[i] = _mm512_setzero_ps();
        if (column < columns)
          block[i] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, b + (first_column + column) * ldb + first_k + kk));
      }
      transpose16(block);
      const int64_t pairs = (count + 1) / 2;
      for (int64_t p = 0; p < pairs; ++p)
        _mm512_storeu_ps(reinterpret_cast<float*>(packed + (kk / 2 + p) * kTileColumns + 16 * v), block[p]);
    }
  }
}

// A pair of k per step: A's two bf16 values broadcast as one dword against 32 columns'
// packed pairs; vdpbf16ps adds two exact products per lane, twice the multiply-adds of an
// FMA for each instruction and each byte of packed weights.
struct Bf16PairStep {
  using Activation = uint16_t;
  using Packed = uint32_t;
  using Weights = __m512bh;
  static constexpr int64_t kPerStep = 2;
  static __m512bh broadcast(const uint16_t* a) {
    uint32_t pair;
    std::memcpy(&pair, a, sizeof pair);
    return reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair)));
  }
  static __m512bh load(const uint32_t* packed) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(packed)); }
  static __m512 multiply_add(__m512bh a, __m512bh w, __m512 sum) { return _mm512_dpbf16_ps(sum, a, w); }
};

}  // namespace

void gemm_bf16_avx512bf16(const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c, int64_t ldc,
                          int64_t m, int64_t n, int64_t k) {
  const int64_t stride = k + (k & 1);
  std::vector<uint16_t> rounded(static_cast<size_t>(m * stride));
  // A is rounded once, then multiplied as in the f32 GEMM.
#pragma omp parallel num_threads(threads())
  {
#pragma omp for schedule(static)
    for (int64_t row = 0; row < m; ++row) round_row(a + row * lda, k, rounded.data() + row * stride);
    std::vector<uint32_t> packed(static_cast<size_t>(kDepth / 2 * kTileColumns));
    multiply_panels<Bf16PairStep>(rounded.data(), stride, c, ldc, m, n, k, kDepth, packed.data(),
                                  [&](int64_t first_column, int64_t columns, int64_t first_k, int64_t depth) {
                                    pack_panel(b, ldb, first_column, columns, first_k, depth, packed.data());
                                  });
  }
}

}  // namespace ember::cpu::x86
