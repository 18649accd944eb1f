#include "cpu/dot_blocks32.h"
#include "cpu/x86/dot_blocks32_256.h"

namespace ember::cpu::x86 {
namespace {

// maddubs adds pairs of u8 × s8 products into int16 with saturation, madd the pairs of
// those into int32: exact while each pair stays within ±32767 (the formats see to it).
struct MaddubsDot {
  static constexpr bool kSaturates = true;
  static __m256i dot(__m256i acc, __m256i u, __m256i s) {
    const __m256i pairs = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
};

}  // namespace

QuantizedTile blocks32_tile_avx2(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q8_0: return tile<Kernel, Q8_0Format<MaddubsDot>>;
    case ElementType::q4_0: return tile<Kernel, Q4_0Format<MaddubsDot>>;
    case ElementType::q4_1: return tile<Kernel, Q4_1Format<MaddubsDot>>;
    default: return nullptr;
  }
}

}  // namespace ember::cpu::x86
