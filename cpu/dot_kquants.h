// Integer dot products of the K-quant weight formats (q4_K, q6_K) with q8_K activations:
// the kernels behind quantized_tile for those two types (cpu/quantized_dot.h states the
// tile contract).
#pragma once

#include <cstdint>

#include "cpu/element_type.h"
#include "cpu/isa.h"
#include "cpu/quantized_dot.h"

namespace ember::cpu {

// The tile kernel for q4_k or q6_k weights on `isa` (or the best level below it that has
// one); null for any other type.
QuantizedTile kquants_tile(ElementType weight_type, Isa isa);

namespace x86 {

// Per-ISA tiles, each defined in a file compiled for its ISA only: call one only when the
// CPU runs that ISA. AVX-512 without VNNI runs the AVX2 ones.
void tile_q4_k_avx2(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                    int64_t blocks, float* y, int64_t ldy);
void tile_q6_k_avx2(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                    int64_t blocks, float* y, int64_t ldy);
void tile_q4_k_avxvnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                       int64_t blocks, float* y, int64_t ldy);
void tile_q6_k_avxvnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                       int64_t blocks, float* y, int64_t ldy);
void tile_q4_k_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                          int64_t cols, int64_t blocks, float* y, int64_t ldy);
void tile_q6_k_avx512vnni(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                          int64_t cols, int64_t blocks, float* y, int64_t ldy);

}  // namespace x86
}  // namespace ember::cpu
