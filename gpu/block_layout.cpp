#include "gpu/block_layout.h"

#include <cstring>

#include "gpu/linear.h"

namespace ember::gpu {

namespace {
constexpr uint64_t kScaleBytes = 2;
}

uint64_t block_code_bytes(WeightType type) { return type == WeightType::q8_0 ? 32 : 16; }

uint64_t block_bytes(WeightType type) { return block_code_bytes(type) + kScaleBytes; }

void split_blocks(WeightType type, const std::byte* file_layout, uint64_t blocks, std::byte* split) {
  const uint64_t codes = block_code_bytes(type);
  std::byte* scales = split + blocks * codes;
  for (uint64_t block = 0; block < blocks; ++block) {
    const std::byte* from = file_layout + block * (codes + kScaleBytes);
    std::memcpy(scales + block * kScaleBytes, from, kScaleBytes);
    std::memcpy(split + block * codes, from + kScaleBytes, codes);
  }
}

void join_blocks(WeightType type, const std::byte* split, uint64_t blocks, std::byte* file_layout) {
  const uint64_t codes = block_code_bytes(type);
  const std::byte* scales = split + blocks * codes;
  for (uint64_t block = 0; block < blocks; ++block) {
    std::byte* to = file_layout + block * (codes + kScaleBytes);
    std::memcpy(to, scales + block * kScaleBytes, kScaleBytes);
    std::memcpy(to + kScaleBytes, split + block * codes, codes);
  }
}

}  // namespace ember::gpu
