// Tiles of integer dot products for the 32-element GGUF formats: q8_0 and q4_0 weights
// against q8_0 activations, q4_1 weights against q8_1 (the QuantizedTile contract of
// cpu/quantized_dot.h).
#pragma once

#include "cpu/element_type.h"
#include "cpu/isa.h"
#include "cpu/quantized_dot.h"

namespace ember::cpu {

// The tile for q8_0, q4_0 or q4_1 weights on `isa` (or the best level below it with a
// kernel of its own); null for any other type. Every level sums each output block by block
// as acc = fma(float(Σ q_w q_a), d_w · d_a, acc) (q4_1: then acc = fma(m_w, s_a, acc)), so
// results are the same bits on every ISA level, for any split into tiles.
// The avx512_vnni kernel prepares each activation row's block sums once per call and, from
// 4 activation rows on, transposes each slab of 16 weight rows once per call: calls of 64
// or more weight rows amortize both (16-row calls run about 30% slower).
QuantizedTile blocks32_tile(ElementType weight_type, Isa isa);

namespace x86 {

// The same, per ISA, each defined in a file compiled for that ISA only: call one only
// when active_isa() says this CPU runs it. avx512 without VNNI uses the AVX2 kernels.
QuantizedTile blocks32_tile_avx2(ElementType weight_type);
QuantizedTile blocks32_tile_avxvnni(ElementType weight_type);
QuantizedTile blocks32_tile_avx512vnni(ElementType weight_type);

}  // namespace x86
}  // namespace ember::cpu
