// The plain C++ K-quant dot products (ggml's ggml_vec_dot_q4_K_q8_K and _q6_K_q8_K in
// integer form) and the choice among the ISA variants.
#include "cpu/dot_kquants.h"

#include "quant/block_formats.h"
#include "quant/f16.h"

namespace ember::cpu {
namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;
using quant::BlockQ8_K;
using quant::kQK_K;

// One super-block's integer sums: `scaled` goes with the weight scale d, `offsets` (q4_K's
// mins against the activation group sums) with dmin.
struct BlockSums {
  int32_t scaled;
  int32_t offsets;
};

BlockSums q4_k_block_sums(const BlockQ4_K& w, const BlockQ8_K& a) {
  constexpr int kSubBlock = 32;
  BlockSums sums{0, 0};
  for (int s = 0; s < kQK_K / kSubBlock; ++s) {
    // The 6-bit scale/min packing of block_formats.h.
    const int scale = s < 4 ? w.scales[s] & 63 : (w.scales[s + 4] & 0x0f) | (w.scales[s - 4] >> 6) << 4;
    const int min = s < 4 ? w.scales[s + 4] & 63 : (w.scales[s + 4] >> 4) | (w.scales[s] >> 6) << 4;
    const uint8_t* q = w.qs + (s / 2) * kSubBlock;
    const int shift = (s % 2) * 4;
    const int8_t* x = a.qs + s * kSubBlock;
    int32_t dot = 0;
    for (int i = 0; i < kSubBlock; ++i) dot += ((q[i] >> shift) & 0x0f) * x[i];
    sums.scaled += scale * dot;
    sums.offsets += min * (a.bsums[2 * s] + a.bsums[2 * s + 1]);
  }
  return sums;
}

// q6_K's codes are stored as q + 32; the offset comes off through the group sums, which
// line up with its 16-element sub-blocks.
int32_t q6_k_block_sum(const BlockQ6_K& w, const BlockQ8_K& a) {
  constexpr int kSubBlock = 16;
  int8_t codes[kQK_K];
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = w.ql + half * 64;
    const uint8_t* qh = w.qh + half * 32;
    int8_t* q = codes + half * 128;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<int8_t>((ql[l] & 0x0f) | (qh[l] & 3) << 4);
      q[l + 32] = static_cast<int8_t>((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4);
      q[l + 64] = static_cast<int8_t>((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
      q[l + 96] = static_cast<int8_t>((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
    }
  }
  int32_t sum = 0;
  for (int s = 0; s < kQK_K / kSubBlock; ++s) {
    int32_t dot = 0;
    for (int i = 0; i < kSubBlock; ++i) dot += codes[s * kSubBlock + i] * a.qs[s * kSubBlock + i];
    sum += w.scales[s] * (dot - 32 * a.bsums[s]);
  }
  return sum;
}

float q4_k_row_dot(const BlockQ4_K* w, const BlockQ8_K* a, int64_t blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    const BlockSums sums = q4_k_block_sums(w[b], a[b]);
    const float scale = a[b].d * quant::f16_to_f32(w[b].d);
    const float min_scale = a[b].d * quant::f16_to_f32(w[b].dmin);
    sum += scale * static_cast<float>(sums.scaled) - min_scale * static_cast<float>(sums.offsets);
  }
  return sum;
}

float q6_k_row_dot(const BlockQ6_K* w, const BlockQ8_K* a, int64_t blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < blocks; ++b)
    sum += a[b].d * quant::f16_to_f32(w[b].d) * static_cast<float>(q6_k_block_sum(w[b], a[b]));
  return sum;
}

template <class Block, float (*kRowDot)(const Block*, const BlockQ8_K*, int64_t)>
void scalar_tile(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                 int64_t blocks, float* y, int64_t ldy) {
  const auto* weights = static_cast<const uint8_t*>(w);
  const auto* activations = static_cast<const uint8_t*>(a);
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r)
      y[c * ldy + r] = kRowDot(reinterpret_cast<const Block*>(weights + r * w_stride),
                               reinterpret_cast<const BlockQ8_K*>(activations + c * a_stride), blocks);
}

}  // namespace

QuantizedTile kquants_tile(ElementType weight_type, Isa isa) {
  const bool q4 = weight_type == ElementType::q4_k;
  if (!q4 && weight_type != ElementType::q6_k) return nullptr;
  switch (isa) {
    case Isa::avx512_bf16:
    case Isa::avx512_vnni: return q4 ? x86::tile_q4_k_avx512vnni : x86::tile_q6_k_avx512vnni;
    case Isa::avx_vnni: return q4 ? x86::tile_q4_k_avxvnni : x86::tile_q6_k_avxvnni;
    case Isa::avx512:
    case Isa::avx2: return q4 ? x86::tile_q4_k_avx2 : x86::tile_q6_k_avx2;
    case Isa::scalar: break;
  }
  return q4 ? scalar_tile<BlockQ4_K, q4_k_row_dot> : scalar_tile<BlockQ6_K, q6_k_row_dot>;
}

}  // namespace ember::cpu
