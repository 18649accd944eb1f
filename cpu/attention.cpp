#include "cpu/attention.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/fast_math.h"
#include "cpu/threads.h"
#include "quant/block_formats.h"

namespace ember::cpu {
namespace {

// Below this many multiply-adds (scores plus weighted values) one thread is faster.
constexpr int64_t kParallelWork = 64 * 1024;
// Independent partial sums in a fixed-size array: the compiler can keep them in one vector
// register without reassociating, so every addition happens in a fixed order.
constexpr int64_t kDotLanes = 16;

// IEEE half → float without branches (Giesen's rebias-and-renormalise method), exact for
// every input — subnormals, infinities and NaN included — so the loops that widen the
// cache vectorise as plain selects.
inline float widen(uint16_t half) {
  constexpr uint32_t kShiftedExponent = 0x7c00u << 13;
  constexpr uint32_t kRebias = (127u - 15u) << 23;
  const uint32_t magnitude = static_cast<uint32_t>(half & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & kShiftedExponent;
  const uint32_t rebiased = magnitude + kRebias;
  // Infinity and NaN need the float's all-ones exponent.
  const uint32_t special = rebiased + ((128u - 16u) << 23);
  // A subnormal half is m·2⁻²⁴: give it the implicit one of 2⁻¹⁴ and subtract 2⁻¹⁴ again,
  // letting the FPU normalise.
  const float subnormal = std::bit_cast<float>(rebiased + (1u << 23)) - std::bit_cast<float>(113u << 23);
  const uint32_t unsigned_bits = exponent == kShiftedExponent ? special
                                 : exponent == 0             ? std::bit_cast<uint32_t>(subnormal)
                                                             : rebiased;
  return std::bit_cast<float>(unsigned_bits | static_cast<uint32_t>(half & 0x8000u) << 16);
}

inline float widen(float value) { return value; }

template <class Element>
float dot(const float* q, const Element* k, int64_t length) {
  float lanes[kDotLanes] = {};
  int64_t d = 0;
  for (; d + kDotLanes <= length; d += kDotLanes)
    for (int64_t lane = 0; lane < kDotLanes; ++lane) lanes[lane] += q[d + lane] * widen(k[d + lane]);
  // Halving tree over the lanes: short dependency chains for a once-per-key reduction.
  for (int64_t width = kDotLanes / 2; width > 0; width /= 2)
    for (int64_t lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  float sum = lanes[0];
  for (; d < length; ++d) sum += q[d] * widen(k[d]);
  return sum;
}

// Σ over blocks of scale · Σ q·int8, straight from the blocks. Lane i takes element i of
// every block with that block's scale folded in, so the fixed 32-wide loop vectorises and
// the only horizontal sum is the one per key.
float dot(const float* q, const quant::BlockQ8_0* k, int64_t length) {
  constexpr int kBlock = quant::kQK8_0;
  float lanes[kBlock] = {};
  for (int64_t block = 0; block < length / kBlock; ++block, q += kBlock) {
    const float scale = widen(k[block].d);
    const int8_t* values = k[block].qs;
    for (int lane = 0; lane < kBlock; ++lane) lanes[lane] += scale * (q[lane] * static_cast<float>(values[lane]));
  }
  for (int width = kBlock / 2; width > 0; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0];
}

// out += weight · v_row. restrict because int8 may alias floats: without it the compiler
// guards the q8_0 block loop with a runtime overlap check.
template <class Element>
void accumulate(float weight, const Element* __restrict v_row, int64_t length, float* __restrict out) {
  for (int64_t d = 0; d < length; ++d) out[d] += weight * widen(v_row[d]);
}

void accumulate(float weight, const quant::BlockQ8_0* __restrict v_row, int64_t length, float* __restrict out) {
  constexpr int kBlock = quant::kQK8_0;
  for (int64_t block = 0; block < length / kBlock; ++block, out += kBlock) {
    const float scaled_weight = weight * widen(v_row[block].d);
    const int8_t* values = v_row[block].qs;
    for (int lane = 0; lane < kBlock; ++lane) out[lane] += scaled_weight * static_cast<float>(values[lane]);
  }
}

// Head-dim values per stored Element: one for the plain types, a whole block for q8_0.
template <class Element>
constexpr int64_t kValuesPer = 1;
template <>
constexpr int64_t kValuesPer<quant::BlockQ8_0> = quant::kQK8_0;

// One query row against keys 0..visible-1 of its kv head; `scores` has room for them.
template <class Element>
void attend(const AttentionArgs& args, const float* q, const Element* k, const Element* v, int64_t visible,
            float* scores, float* out) {
  const int64_t head_dim = args.head_dim;
  const int64_t cache_row = args.kv_heads * head_dim / kValuesPer<Element>;
  float max_score = -INFINITY;
  for (int64_t j = 0; j < visible; ++j) {
    scores[j] = args.scale * dot(q, k + j * cache_row, head_dim);
    max_score = std::fmax(max_score, scores[j]);
  }
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) scores[j] = fast_exp(scores[j] - max_score);
  float total = 0.0f;
#pragma omp simd reduction(+ : total)
  for (int64_t j = 0; j < visible; ++j) total += scores[j];
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < visible; ++j) accumulate(scores[j], v + j * cache_row, head_dim, out);
  const float normaliser = 1.0f / total;
  for (int64_t d = 0; d < head_dim; ++d) out[d] *= normaliser;
}

template <class Element>
void attention_typed(const AttentionArgs& args) {
  const int64_t pairs = args.tokens * args.q_heads;
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t last_visible = args.position_offset + args.tokens;
  const bool parallel = pairs * last_visible * args.head_dim * 2 >= kParallelWork;
  const auto* k = static_cast<const Element*>(args.k);
  const auto* v = static_cast<const Element*>(args.v);
#pragma omp parallel num_threads(threads()) if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(last_visible));
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < pairs; ++pair) {
      const int64_t token = pair / args.q_heads;
      const int64_t head = pair % args.q_heads;
      const int64_t kv_offset = head / group * args.head_dim / kValuesPer<Element>;
      attend(args, args.q + pair * args.head_dim, k + kv_offset, v + kv_offset, args.position_offset + token + 1,
             scores.data(), args.out + pair * args.head_dim);
    }
  }
}

}  // namespace

void attention(const AttentionArgs& args) {
  if (args.tokens <= 0 || args.q_heads <= 0 || args.head_dim <= 0) return;
  switch (args.kv_type) {
    case ElementType::f16: return attention_typed<uint16_t>(args);
    case ElementType::q8_0: return attention_typed<quant::BlockQ8_0>(args);
    default: return attention_typed<float>(args);
  }
}

}  // namespace ember::cpu
