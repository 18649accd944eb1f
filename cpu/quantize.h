// Fast, multi-threaded quantization of float matrices into the GGUF block formats. The
// bytes written are identical to quant::quantize_row_reference's for every ISA and thread
// count: the SIMD kernels repeat the reference's float operations in the same order with
// the same rounding, and only their layout across lanes differs.
#pragma once

#include <cstdint>

#include "ember/dtype.h"

namespace ember::cpu {

// `rows` rows of `row_length` floats (a multiple of block_elements(type)) into `out`,
// rows back to back at row_bytes(type, row_length) each. Any type quant::can_quantize_to
// accepts.
void quantize_rows(DType type, const float* x, int64_t rows, int64_t row_length, void* out);

// The inverse: `rows` rows of `type` widened to floats.
void dequantize_rows(DType type, const void* blocks, int64_t rows, int64_t row_length, float* out);

namespace x86 {

// Per-ISA kernels behind quantize_rows, each defined in a file compiled for its ISA only:
// call one only when active_isa() says this CPU runs it. `count` elements of x into
// blocks of q8_0, q8_1, q4_0, q4_1, q4_k, q6_k or q8_k (has_simd_quantizer); byte-identical to
// the reference. q4_k and q6_k have AVX2 kernels only, which AVX-512 CPUs run as well.
bool has_simd_quantizer(DType type);
void quantize_blocks_avx2(DType type, const float* x, void* blocks, int64_t count);
void quantize_blocks_avx512(DType type, const float* x, void* blocks, int64_t count);
void quantize_q4_k_avx2(const float* x, void* blocks, int64_t count);
void quantize_q6_k_avx2(const float* x, void* blocks, int64_t count);

}  // namespace x86
}  // namespace ember::cpu
