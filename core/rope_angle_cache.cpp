#include "core/rope_angle_cache.h"

#include <algorithm>
#include <cstring>

namespace ember {

namespace {

constexpr int64_t kFewestRows = 256;

int64_t position_of(int64_t token, const int32_t* positions, const cpu::RopeParams& params) {
  return positions != nullptr ? positions[token] : params.position_offset + token;
}

}  // namespace

RopeAngleCache::Table& RopeAngleCache::table_for(const cpu::RopeParams& params) {
  for (Table& table : tables_)
    if (table.rotary_dims == params.rotary_dims && table.base == params.base &&
        table.position_scale == params.position_scale)
      return table;
  return tables_.emplace_back(Table{params.rotary_dims, params.base, params.position_scale, {}});
}

void RopeAngleCache::fill(int64_t tokens, const int32_t* positions, const cpu::RopeParams& params, float* cos_sin) {
  const int64_t pairs = params.rotary_dims / 2;
  int64_t lowest = 0, highest = -1;
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t position = position_of(t, positions, params);
    lowest = std::min(lowest, position);
    highest = std::max(highest, position);
  }
  if (lowest < 0 || highest >= kMostRows || pairs == 0) {
    cpu::rope_angles(tokens, positions, params, cos_sin);
    return;
  }
  std::lock_guard lock(mutex_);
  Table& table = table_for(params);
  const auto row_floats = static_cast<size_t>(2 * pairs);
  const auto kept = static_cast<int64_t>(table.cos_sin.size() / row_floats);
  if (highest >= kept) {
    // Doubling keeps a growing conversation to a few recomputations.
    const int64_t rows = std::min(kMostRows, std::max({highest + 1, 2 * kept, kFewestRows}));
    cpu::RopeParams from_zero = params;
    from_zero.position_offset = 0;
    table.cos_sin.resize(static_cast<size_t>(rows) * row_floats);
    cpu::rope_angles(rows, nullptr, from_zero, table.cos_sin.data());
  }
  for (int64_t t = 0; t < tokens; ++t)
    std::memcpy(cos_sin + static_cast<size_t>(t) * row_floats,
                table.cos_sin.data() + static_cast<size_t>(position_of(t, positions, params)) * row_floats,
                row_floats * sizeof(float));
}

int64_t RopeAngleCache::rows_kept(const cpu::RopeParams& params) {
  std::lock_guard lock(mutex_);
  const int64_t pairs = params.rotary_dims / 2;
  return pairs == 0 ? 0 : static_cast<int64_t>(table_for(params).cos_sin.size()) / (2 * pairs);
}

}  // namespace ember
