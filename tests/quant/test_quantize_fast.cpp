// cpu::quantize_rows against the reference: byte-identical output for every type, every
// ISA this machine runs, one and two threads, odd row counts and poisoned buffers. The
// data mixes the cases where a SIMD kernel could round or pick differently from the
// scalar loop: exact rounding ties, tied extremes of opposite sign, signed zeros, and for
// the K-quant searches constant, negative-only, overflowing, subnormal and outlier groups.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/isa.h"
#include "cpu/quantize.h"
#include "cpu/threads.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

constexpr DType kTypes[] = {DType::q8_0, DType::q8_1, DType::q4_0, DType::q4_1, DType::q4_k,
                            DType::q6_k, DType::q8_k, DType::f32,  DType::f16,  DType::bf16};
constexpr unsigned char kPoison = 0xAB;
constexpr int64_t kGuardBytes = 64;

// Restores the ISA choice and thread count a test changed.
class KernelSettingsGuard {
 public:
  KernelSettingsGuard() : isa_(active_isa()), threads_(threads()) {}
  ~KernelSettingsGuard() {
    force_isa(isa_);
    set_threads(threads_);
  }

 private:
  Isa isa_;
  int threads_;
};

// One 32-element group of an awkward kind, so that every block size sees them all. The
// K-quant searches also get the extremes (kinds 7-10) their fits must survive.
void fill_group(testing::SeededRng& rng, float* out, bool k_quant_extremes) {
  constexpr int kGroup = 32;
  const float scale = std::ldexp(1.0f, static_cast<int>(rng.integer(-12, 12)));
  switch (rng.integer(0, k_quant_extremes ? 10 : 6)) {
    case 0:  // Ties for every rounding rule: with the extreme at ±127·2^e, q8_0's 1/d and
             // q8_K's iscale are powers of two and the others land on exact halves.
      out[0] = (rng.integer(0, 1) ? 127.0f : -127.0f) * scale;
      for (int i = 1; i < kGroup; ++i) out[i] = (static_cast<float>(rng.integer(-127, 126)) + 0.5f) * scale;
      break;
    case 1:  // Opposite-sign extremes of equal magnitude: the first must win.
      for (int i = 0; i < kGroup; ++i) out[i] = static_cast<float>(rng.integer(-3, 3)) * scale;
      out[rng.integer(0, 15)] = 8.0f * scale;
      out[rng.integer(16, 31)] = -8.0f * scale;
      break;
    case 2:  // Zeros of both signs, alone or with a few values.
      for (int i = 0; i < kGroup; ++i) out[i] = rng.integer(0, 1) ? 0.0f : -0.0f;
      if (rng.integer(0, 1)) out[rng.integer(0, 31)] = scale;
      break;
    case 3:  // Constant blocks (zero range for q4_1 and q4_K).
      for (int i = 0; i < kGroup; ++i) out[i] = scale;
      break;
    case 4: {  // Heavy tails: 1% of values at 50σ.
      const std::vector<float> values = rng.normal(kGroup, scale);
      for (int i = 0; i < kGroup; ++i) out[i] = rng.integer(0, 99) == 0 ? 50.0f * values[i] : values[i];
      break;
    }
    case 7: {  // Negative only: q4_K's offset takes the whole range, its fit's min moves.
      const std::vector<float> values = rng.normal(kGroup, scale);
      for (int i = 0; i < kGroup; ++i) out[i] = -std::fabs(values[i]) - scale;
      break;
    }
    case 8: {  // Squares past FLT_MAX: sums reach infinity and the fits divide by it.
      const std::vector<float> values = rng.normal(kGroup, 1e20f);
      std::copy(values.begin(), values.end(), out);
      break;
    }
    case 9: {  // Subnormals: scales and inverse scales at the edges of the float range.
      const std::vector<float> values = rng.normal(kGroup, 1e-40f);
      std::copy(values.begin(), values.end(), out);
      break;
    }
    case 10: {  // One huge outlier in a small-valued group: the other codes collapse to 0.
      const std::vector<float> values = rng.normal(kGroup, scale);
      std::copy(values.begin(), values.end(), out);
      out[rng.integer(0, 31)] = 1e6f * scale;
      break;
    }
    default: {
      const std::vector<float> values = rng.normal(kGroup, scale);
      std::copy(values.begin(), values.end(), out);
    }
  }
}

std::vector<float> awkward_data(testing::SeededRng& rng, DType type, int64_t count) {
  const bool k_quant = type == DType::q4_k || type == DType::q6_k;
  std::vector<float> x(static_cast<size_t>(count));
  for (int64_t start = 0; start < count; start += 32) fill_group(rng, x.data() + start, k_quant);
  return x;
}

std::vector<unsigned char> reference_rows(DType type, const std::vector<float>& x, int64_t rows, int64_t row_length) {
  const int64_t bytes_per_row = row_bytes(type, row_length);
  std::vector<unsigned char> out(static_cast<size_t>(rows * bytes_per_row + kGuardBytes), kPoison);
  for (int64_t r = 0; r < rows; ++r)
    quant::quantize_row_reference(type, x.data() + r * row_length, out.data() + r * bytes_per_row, row_length);
  return out;
}

TEST(QuantizeFast, ByteIdenticalToReferenceForEveryIsaAndThreadCount) {
  testing::SeededRng rng;
  const KernelSettingsGuard restore;
  for (DType type : kTypes) {
    const int64_t block = block_elements(type) == 1 ? 32 : block_elements(type);
    // Shapes: one block, odd row counts, and a matrix big enough to run in parallel.
    const int64_t shapes[][2] = {{1, block}, {3, 3 * block}, {7, 5 * block}, {33, 2048}};
    for (const auto& shape : shapes) {
      const int64_t rows = shape[0];
      const int64_t row_length = shape[1] / block * block;
      const std::vector<float> x = awkward_data(rng, type, rows * row_length);
      const std::vector<unsigned char> expected = reference_rows(type, x, rows, row_length);
      for (Isa isa : supported_isas()) {
        for (int thread_count : {1, 2}) {
          force_isa(isa);
          set_threads(thread_count);
          std::vector<unsigned char> actual(expected.size(), kPoison);
          quantize_rows(type, x.data(), rows, row_length, actual.data());
          // Exact: the same bytes, guard bytes past the matrix included (still poison).
          ASSERT_EQ(actual, expected) << dtype_name(type) << " " << isa_name(isa) << " threads "
                                      << thread_count << " rows " << rows << " x " << row_length;
        }
      }
    }
  }
}

TEST(QuantizeFast, DequantizeRowsMatchesTheRowDequantizer) {
  testing::SeededRng rng;
  const KernelSettingsGuard restore;
  for (DType type : kTypes) {
    const int64_t block = block_elements(type) == 1 ? 32 : block_elements(type);
    const int64_t rows = 35;
    const int64_t row_length = 8 * block;
    const std::vector<float> x = awkward_data(rng, type, rows * row_length);
    const std::vector<unsigned char> blocks = reference_rows(type, x, rows, row_length);
    std::vector<float> expected = testing::poisoned(static_cast<size_t>(rows * row_length));
    quant::dequantize_row(type, blocks.data(), expected.data(), rows * row_length);
    for (int thread_count : {1, 2}) {
      set_threads(thread_count);
      std::vector<float> actual = testing::poisoned(expected.size() + 8);
      dequantize_rows(type, blocks.data(), rows, row_length, actual.data());
      // Exact: the same float bits, and the 8 floats past the end untouched (NaN).
      ASSERT_EQ(std::memcmp(actual.data(), expected.data(), expected.size() * sizeof(float)), 0)
          << dtype_name(type) << " threads " << thread_count;
      for (size_t i = expected.size(); i < actual.size(); ++i) ASSERT_TRUE(std::isnan(actual[i])) << dtype_name(type);
    }
  }
}

}  // namespace
}  // namespace ember::cpu
