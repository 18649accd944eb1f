// How q8_0 and q4_0 weight blocks lie in a device buffer. The file's layout is GGUF's: a
// block's f16 scale, then its codes, 34 or 18 bytes per block, so a block's codes start on
// any even byte and a shader reads them as the 5 or 9 words that cover them, realigned.
// The split layout holds the same bytes rearranged: every block's codes first, in block
// order, 32 or 16 bytes each (aligned 16-byte loads), then every block's f16 scale. The
// Vulkan backend keeps whole block weights split on the device (core/vulkan_backend.h,
// core/vulkan_device.h);
// the shaders read either layout (their SPLIT_BLOCKS constant).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember::gpu {

enum class WeightType : uint32_t;

enum class BlockLayout : uint32_t { file, split };

// Bytes of one block's codes (32 for q8_0, 16 for q4_0) and of the whole block with its scale.
uint64_t block_code_bytes(WeightType type);
uint64_t block_bytes(WeightType type);

// `blocks` whole blocks of q8_0 or q4_0 `type` from the file's layout into the split one,
// and back; source and destination are distinct and hold blocks * block_bytes(type) bytes.
void split_blocks(WeightType type, const std::byte* file_layout, uint64_t blocks, std::byte* split);
void join_blocks(WeightType type, const std::byte* split, uint64_t blocks, std::byte* file_layout);

}  // namespace ember::gpu
