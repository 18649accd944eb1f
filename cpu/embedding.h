// Embedding row gather.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"

namespace ember::cpu {

// out[i, :] = table[ids[i], :] widened to f32. table is [table_rows, cols] row-major.
// Precondition (checked by the caller, which can report it): 0 <= ids[i] < table_rows.
void embedding(const void* table, ElementType table_type, int64_t cols, const int32_t* ids, int64_t count,
               float* out);

}  // namespace ember::cpu
