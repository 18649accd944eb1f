// Per-ISA widening of an attention tile's keys and values from the KV cache (cpu/attention.cpp).
// Defined in a file compiled for its ISA only: call them only when active_isa() runs it.
#pragma once

#include <cstdint>

namespace ember::cpu::x86 {

// count (at most 64) cache rows, `stride` elements apart, of `length` elements each (a
// multiple of 16), widened to f32 exactly as IEEE conversion does:
// - keys: transposed, out[d * out_stride + j] = row j's element d, and zeros in columns
//   count up to the next multiple of 16;
// - values: as they lie, out[j * out_stride + d].
void widen_keys_transposed_avx512(const uint16_t* rows, int64_t stride, int64_t count, int64_t length, float* out,
                                  int64_t out_stride);
void widen_keys_transposed_avx512(const float* rows, int64_t stride, int64_t count, int64_t length, float* out,
                                  int64_t out_stride);
void widen_values_avx512(const uint16_t* rows, int64_t stride, int64_t count, int64_t length, float* out,
                         int64_t out_stride);

}  // namespace ember::cpu::x86
