// The one check an embedding (row gather) node needs before any backend runs it: every id
// names a row of the table. Both backends give the same error for the same ids.
#pragma once

#include <cstdint>

#include <fmt/format.h>

#include "ember/status.h"

namespace ember {

inline Status check_embedding_ids(const int32_t* ids, int64_t count, int64_t table_rows) {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= table_rows)
      return out_of_range(
          fmt::format("embedding id {} at position {} is outside the table's {} rows", ids[i], i, table_rows));
  return {};
}

}  // namespace ember
