// Reductions over one axis.
#pragma once

#include <cstdint>

namespace ember::cpu {

enum class ReduceOp : uint8_t { sum, max, mean };

// x viewed as contiguous [outer, axis_length, inner]; y[outer, inner] = op over the axis.
// Long axes are summed in two stages (fixed-size chunks, then the chunk partials in
// order), so the result does not depend on the thread count and loses less precision.
void reduce(ReduceOp op, const float* x, int64_t outer, int64_t axis_length, int64_t inner, float* y);

}  // namespace ember::cpu
