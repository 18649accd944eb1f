#include "cpu/rope.h"

#include <cmath>
#include <vector>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;

// (in[2i], in[2i+1]) turned by the angle whose cosine and sine are cos_sin[2i], [2i+1].
// Both values are read before either is written, so out may alias in.
void rotate_adjacent(const float* in, float* out, const float* cos_sin, int64_t pairs) {
#pragma omp simd
  for (int64_t i = 0; i < pairs; ++i) {
    const float first = in[2 * i];
    const float second = in[2 * i + 1];
    out[2 * i] = first * cos_sin[2 * i] - second * cos_sin[2 * i + 1];
    out[2 * i + 1] = first * cos_sin[2 * i + 1] + second * cos_sin[2 * i];
  }
}

// (in[i], in[i + pairs]) turned likewise.
void rotate_halves(const float* in, float* out, const float* cos_sin, int64_t pairs) {
#pragma omp simd
  for (int64_t i = 0; i < pairs; ++i) {
    const float first = in[i];
    const float second = in[i + pairs];
    out[i] = first * cos_sin[2 * i] - second * cos_sin[2 * i + 1];
    out[i + pairs] = first * cos_sin[2 * i + 1] + second * cos_sin[2 * i];
  }
}

}  // namespace

void rope_angles(int64_t tokens, const int32_t* positions, const RopeParams& params, float* cos_sin) {
  const int64_t pairs = params.rotary_dims / 2;
  std::vector<double> frequencies(pairs);
  for (int64_t i = 0; i < pairs; ++i) {
    frequencies[i] = std::pow(static_cast<double>(params.base),
                              -2.0 * static_cast<double>(i) / static_cast<double>(params.rotary_dims));
  }
  // Angles reach 1e5 radians and more at long positions, where a float angle is already
  // off by ~4e-3, so they and their cos/sin are computed in double and only the results
  // are rounded.
#pragma omp parallel for num_threads(threads()) schedule(static) if (tokens * pairs >= kMinParallelWork)
  for (int64_t item = 0; item < tokens * pairs; ++item) {
    const int64_t token = item / pairs;
    const double position = positions != nullptr ? static_cast<double>(positions[token])
                                                 : static_cast<double>(params.position_offset + token);
    const double angle = position * static_cast<double>(params.position_scale) * frequencies[item % pairs];
    cos_sin[2 * item] = static_cast<float>(std::cos(angle));
    cos_sin[2 * item + 1] = static_cast<float>(std::sin(angle));
  }
}

void rope(const float* x, float* y, int64_t tokens, int64_t heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params) {
  const int64_t pairs = params.rotary_dims / 2;
  const bool parallel = tokens * heads * head_dim >= kMinParallelWork;
  // One table per token, shared by all its heads.
  std::vector<float> cos_sin(2 * tokens * pairs);
  rope_angles(tokens, positions, params, cos_sin.data());

  const int64_t rotated = 2 * pairs;
#pragma omp parallel for num_threads(threads()) schedule(static) if (parallel)
  for (int64_t row = 0; row < tokens * heads; ++row) {
    const float* in = x + row * head_dim;
    float* out = y + row * head_dim;
    const float* table = cos_sin.data() + 2 * (row / heads * pairs);
    if (params.style == RopeStyle::normal) {
      rotate_adjacent(in, out, table, pairs);
    } else {
      rotate_halves(in, out, table, pairs);
    }
    // A plain loop, not memcpy: in and out may be the same memory.
    for (int64_t d = rotated; d < head_dim; ++d) out[d] = in[d];
  }
}

}  // namespace ember::cpu
