// Rope's (cos, sin) table for positions 0 .. rows-1, kept across passes: a prompt of 512
// tokens needs 65536 double-precision cosines and sines (cpu::rope_angles), which cost
// the Vulkan backend 0.2-3.6 ms of host time before every prompt's first dispatch on an
// H100, more than some whole layers (docs/PERFORMANCE.md). With the table kept, a pass
// copies its tokens' rows. The values are cpu::rope_angles' for each position, bit for bit.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "cpu/rope.h"

namespace ember {

class RopeAngleCache {
 public:
  // Writes the table of `tokens` positions (positions[t], or params.position_offset + t
  // without them) into cos_sin, as cpu::rope_angles would: rows of the kept table where
  // every position is in [0, kMostRows), otherwise computed directly.
  void fill(int64_t tokens, const int32_t* positions, const cpu::RopeParams& params, float* cos_sin);

  // Positions a kept table may reach (at 64 pairs, 64 MiB of table).
  static constexpr int64_t kMostRows = int64_t{1} << 17;

  // Rows kept for tables like params', for tests.
  int64_t rows_kept(const cpu::RopeParams& params);

 private:
  struct Table {
    int64_t rotary_dims;
    float base, position_scale;
    std::vector<float> cos_sin;  // [rows][pairs][2]
  };
  Table& table_for(const cpu::RopeParams& params);

  std::mutex mutex_;
  std::vector<Table> tables_;
};

}  // namespace ember
