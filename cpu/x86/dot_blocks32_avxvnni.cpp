#include "cpu/dot_blocks32.h"
#include "cpu/x86/dot_blocks32_256.h"

namespace ember::cpu::x86 {
namespace {

// vpdpbusd: four u8 × s8 products added into each int32 lane, without saturation.
struct VnniDot {
  static constexpr bool kSaturates = false;
  static __m256i dot(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(acc, u, s); }
};

}  // namespace

QuantizedTile blocks32_tile_avxvnni(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q8_0: return tile<Kernel, Q8_0Format<VnniDot>>;
    case ElementType::q4_0: return tile<Kernel, Q4_0Format<VnniDot>>;
    case ElementType::q4_1: return tile<Kernel, Q4_1Format<VnniDot>>;
    default: return nullptr;
  }
}

}  // namespace ember::cpu::x86
