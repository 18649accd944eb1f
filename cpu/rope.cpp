#include "cpu/rope.h"

#include <cmath>
#include <vector>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;

// (in[2i], in[2i+1]) turned by the angle whose cosine and sine are cosines[i], sines[i].
// Both values are read before either is written, so out may alias in.
void rotate_adjacent(const float* in, float* out, const float* cosines, const float* sines, int64_t pairs) {
#pragma omp simd
  for (int64_t i = 0; i < pairs; ++i) {
    const float first = in[2 * i];
    const float second = in[2 * i + 1];
    out[2 * i] = first * cosines[i] - second * sines[i];
    out[2 * i + 1] = first * sines[i] + second * cosines[i];
  }
}

// (in[i], in[i + pairs]) turned likewise.
void rotate_halves(const float* in, float* out, const float* cosines, const float* sines, int64_t pairs) {
#pragma omp simd
  for (int64_t i = 0; i < pairs; ++i) {
    const float first = in[i];
    const float second = in[i + pairs];
    out[i] = first * cosines[i] - second * sines[i];
    out[i + pairs] = first * sines[i] + second * cosines[i];
  }
}

}  // namespace

void rope(const float* x, float* y, int64_t tokens, int64_t heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params) {
  const int64_t pairs = params.rotary_dims / 2;
  const bool parallel = tokens * heads * head_dim >= kMinParallelWork;

  std::vector<double> frequencies(pairs);
  for (int64_t i = 0; i < pairs; ++i) {
    frequencies[i] = std::pow(static_cast<double>(params.base),
                              -2.0 * static_cast<double>(i) / static_cast<double>(params.rotary_dims));
  }
  // One cos/sin table per token, shared by all its heads. Angles reach 1e5 radians and
  // more at long positions, where a float angle is already off by ~4e-3, so they and
  // their cos/sin are computed in double and only the results are rounded.
  std::vector<float> cosines(tokens * pairs);
  std::vector<float> sines(tokens * pairs);
#pragma omp parallel for num_threads(threads()) schedule(static) if (parallel)
  for (int64_t item = 0; item < tokens * pairs; ++item) {
    const int64_t token = item / pairs;
    const double position = positions != nullptr ? static_cast<double>(positions[token])
                                                 : static_cast<double>(params.position_offset + token);
    const double angle = position * static_cast<double>(params.position_scale) * frequencies[item % pairs];
    cosines[item] = static_cast<float>(std::cos(angle));
    sines[item] = static_cast<float>(std::sin(angle));
  }

  const int64_t rotated = 2 * pairs;
#pragma omp parallel for num_threads(threads()) schedule(static) if (parallel)
  for (int64_t row = 0; row < tokens * heads; ++row) {
    const float* in = x + row * head_dim;
    float* out = y + row * head_dim;
    const int64_t table = row / heads * pairs;
    if (params.style == RopeStyle::normal) {
      rotate_adjacent(in, out, cosines.data() + table, sines.data() + table, pairs);
    } else {
      rotate_halves(in, out, cosines.data() + table, sines.data() + table, pairs);
    }
    // A plain loop, not memcpy: in and out may be the same memory.
    for (int64_t d = rotated; d < head_dim; ++d) out[d] = in[d];
  }
}

}  // namespace ember::cpu
