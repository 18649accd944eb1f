// Per-ISA GEMV kernels behind cpu::gemv. Each is defined in a file compiled for its ISA
// only, so call one only when active_isa() says this CPU runs it.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"

namespace ember::cpu::x86 {

// y[r] = Σ_i W[r, i] · x[i] for r < rows. W holds `rows` contiguous rows of `in` elements
// of `weight_type`. Each y[r] is summed in one fixed order that does not depend on
// `rows`, so splitting the rows differently never changes a result.
void gemv_rows_avx2(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x, float* y);
void gemv_rows_avx512(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x,
                      float* y);

}  // namespace ember::cpu::x86
