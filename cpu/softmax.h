// Row softmax, numerically stable (max subtracted), with an optional causal mask.
#pragma once

#include <cstdint>

namespace ember::cpu {

// Masking for attention scores laid out as [..., query_rows, keys]: row r is query
// r % query_rows at position position_offset + r % query_rows, and may see keys
// 0..that position. Masked entries come out exactly 0.
struct CausalMask {
  bool enabled = false;
  int64_t query_rows = 1;
  int64_t position_offset = 0;
};

// y[r, :] = softmax(scale * x[r, :]) for each of `rows` contiguous rows of `cols`; y may alias x.
void softmax(const float* x, float* y, int64_t rows, int64_t cols, float scale, CausalMask mask = {});

}  // namespace ember::cpu
