// Integer dot products between GGUF weight blocks and 8-bit activation blocks: the inner
// loop of every quantized linear layer (cpu::quantized_matmul drives them).
#pragma once

#include <cstdint>

#include "cpu/element_type.h"
#include "cpu/isa.h"
#include "ember/dtype.h"

namespace ember::cpu {

// The 8-bit format activations are quantized to before they meet weights of
// `weight_type`: q8_0 for q8_0 and q4_0, q8_1 for q4_1, q8_k for q4_k and q6_k.
DType activation_dtype(ElementType weight_type);

// A tile of dot products over whole rows of blocks:
//   y[c * ldy + r] = Σ_{b < blocks} dot(block b of weight row r, block b of activation row c)
// for r < rows and c < cols. Weight row r starts at w + r * w_stride bytes, activation row
// c at a + c * a_stride bytes (blocks of activation_dtype). Every output is summed in one
// fixed order that depends only on `blocks`, never on rows, cols or where the tile sits,
// so any split of a matrix into tiles (and any thread count) gives the same bits.
using QuantizedTile = void (*)(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride,
                               int64_t cols, int64_t blocks, float* y, int64_t ldy);

// The kernel for weights of block type `weight_type` on `isa`, or on the best level below
// it that has one. Null for the plain types.
QuantizedTile quantized_tile(ElementType weight_type, Isa isa);

}  // namespace ember::cpu
