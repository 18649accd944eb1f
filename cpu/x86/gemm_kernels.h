// Per-ISA GEMM kernels behind cpu::matmul for linear layers. Each is defined in a file
// compiled for its ISA only, so call one only when active_isa() says this CPU runs it.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"

namespace ember::cpu::x86 {

// c[m, n] = a[m, k] · bᵀ, b the [n, k] weights of a linear layer in f32, f16 or bf16 (rows
// ldb elements apart). Register tiles of 8 rows × 32 outputs over packed, widened depth
// chunks of b; threads split the outputs. Each output is summed in one fixed order, so a
// given thread count always gives the same bits.
void gemm_weights_avx512(const float* a, int64_t lda, const void* b, ElementType b_type, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, int64_t k);
// The same product for bf16 weights with A rounded to bf16 (to nearest even) and pairs of
// k multiplied by vdpbf16ps: c = bf16(a) · bᵀ within f32 summation error. The same tile
// shape, fixed summation order and thread split.
void gemm_bf16_avx512bf16(const float* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c, int64_t ldc,
                          int64_t m, int64_t n, int64_t k);

}  // namespace ember::cpu::x86
