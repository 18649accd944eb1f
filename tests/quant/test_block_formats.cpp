// The GGUF block layouts and reference quantizers: hand-built blocks decoded against the
// formulas of block_formats.h, hand-computed encodings, and error bounds on random data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/bf16.h"
#include "quant/block_formats.h"
#include "quant/f16.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::quant {
namespace {

constexpr DType kBlockTypes[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k,
                                 DType::q6_k, DType::q8_k, DType::q8_1};

std::vector<float> dequantize(DType type, const void* blocks, int64_t count) {
  std::vector<float> out = testing::poisoned(static_cast<size_t>(count));
  dequantize_row(type, blocks, out.data(), count);
  return out;
}

std::vector<float> round_trip(DType type, const std::vector<float>& x) {
  const auto count = static_cast<int64_t>(x.size());
  std::vector<unsigned char> blocks(static_cast<size_t>(row_bytes(type, count)), 0xAB);
  quantize_row_reference(type, x.data(), blocks.data(), count);
  return dequantize(type, blocks.data(), count);
}

double rms(const std::vector<float>& values) {
  double sum = 0.0;
  for (float v : values) sum += static_cast<double>(v) * v;
  return std::sqrt(sum / static_cast<double>(values.size()));
}

double rms_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  double sum = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double diff = static_cast<double>(actual[i]) - expected[i];
    sum += diff * diff;
  }
  return std::sqrt(sum / static_cast<double>(expected.size()));
}

// ---- Layouts: hand-built blocks decoded against the formulas (all values exact in f32).

TEST(BlockLayout, Q8_0ScaleTimesSignedCodes) {
  BlockQ8_0 block{};
  block.d = f32_to_f16(0.25f);
  for (int i = 0; i < kQK8_0; ++i) block.qs[i] = static_cast<int8_t>(4 * i - 64);
  const std::vector<float> y = dequantize(DType::q8_0, &block, kQK8_0);
  for (int i = 0; i < kQK8_0; ++i) EXPECT_EQ(y[i], 0.25f * (4 * i - 64)) << i;  // exact: small integers times 2^-2
}

TEST(BlockLayout, Q4_0LowNibblesFirstHalfHighNibblesSecondHalf) {
  BlockQ4_0 block{};
  block.d = f32_to_f16(0.5f);
  block.qs[0] = 0x9f;  // weight 0: code 15 -> 0.5 * 7; weight 16: code 9 -> 0.5 * 1
  block.qs[15] = 0x02;  // weight 15: code 2 -> 0.5 * -6; weight 31: code 0 -> 0.5 * -8
  const std::vector<float> y = dequantize(DType::q4_0, &block, kQK4_0);
  // Exact: small integers times 0.5.
  EXPECT_EQ(y[0], 3.5f);
  EXPECT_EQ(y[16], 0.5f);
  EXPECT_EQ(y[15], -3.0f);
  EXPECT_EQ(y[31], -4.0f);
  EXPECT_EQ(y[1], -4.0f);  // code 0 everywhere else
}

TEST(BlockLayout, Q4_1ScaleTimesCodePlusMin) {
  BlockQ4_1 block{};
  block.d = f32_to_f16(0.25f);
  block.m = f32_to_f16(-1.0f);
  for (int j = 0; j < kQK4_1 / 2; ++j) block.qs[j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = dequantize(DType::q4_1, &block, kQK4_1);
  for (int j = 0; j < kQK4_1 / 2; ++j) {
    EXPECT_EQ(y[j], 0.25f * j - 1.0f) << j;  // exact: quarters
    EXPECT_EQ(y[j + 16], 0.25f * (15 - j) - 1.0f) << j;
  }
}

TEST(BlockLayout, Q4_KSixBitScalesAndMinsPackedAsGgml) {
  // Scales and mins with top bits set in sub-blocks 4-7 exercise the split packing.
  const int scale[8] = {1, 2, 3, 63, 17, 33, 48, 62};
  const int min[8] = {0, 5, 63, 7, 20, 40, 60, 31};
  BlockQ4_K block{};
  block.d = f32_to_f16(0.5f);
  block.dmin = f32_to_f16(0.25f);
  for (int s = 0; s < 4; ++s) {
    block.scales[s] = static_cast<uint8_t>(scale[s] | (scale[s + 4] >> 4) << 6);
    block.scales[s + 4] = static_cast<uint8_t>(min[s] | (min[s + 4] >> 4) << 6);
    block.scales[s + 8] = static_cast<uint8_t>((scale[s + 4] & 15) | (min[s + 4] & 15) << 4);
  }
  for (int group = 0; group < 4; ++group)
    for (int i = 0; i < 32; ++i) block.qs[32 * group + i] = static_cast<uint8_t>((i + group) % 16 | ((3 * i) % 16) << 4);
  const std::vector<float> y = dequantize(DType::q4_k, &block, kQK_K);
  for (int group = 0; group < 4; ++group) {
    for (int i = 0; i < 32; ++i) {
      const int low = 2 * group;
      const int high = 2 * group + 1;
      // Exact: every term is a small integer times 2^-1 or 2^-2.
      EXPECT_EQ(y[64 * group + i], 0.5f * scale[low] * ((i + group) % 16) - 0.25f * min[low]) << group << " " << i;
      EXPECT_EQ(y[64 * group + 32 + i], 0.5f * scale[high] * ((3 * i) % 16) - 0.25f * min[high]) << group << " " << i;
    }
  }
}

TEST(BlockLayout, Q6_KLowBitsInQlHighBitsInQh) {
  BlockQ6_K block{};
  block.d = f32_to_f16(0.125f);
  for (int s = 0; s < 16; ++s) block.scales[s] = static_cast<int8_t>(s - 8);
  block.ql[0] = 0x21;        // low bits: weight 0 -> 1, weight 64 -> 2
  block.qh[0] = 0b11100100;  // high bits: weight 0 -> 0, 32 -> 1, 64 -> 2, 96 -> 3
  block.ql[64 + 33] = 0xf0;  // second half, ql[l + 32] with l = 1: weight 128+33 low 0, weight 128+97 low 15
  block.qh[32 + 1] = 0b01000000;  // weight 128+97 high bits 1
  const std::vector<float> y = dequantize(DType::q6_k, &block, kQK_K);
  auto expected = [&](int weight, int code) { return 0.125f * block.scales[weight / 16] * (code - 32); };
  // Exact: small integers times 2^-3.
  EXPECT_EQ(y[0], expected(0, 1));
  EXPECT_EQ(y[32], expected(32, 16));
  EXPECT_EQ(y[64], expected(64, 2 | 2 << 4));
  EXPECT_EQ(y[96], expected(96, 3 << 4));
  EXPECT_EQ(y[128 + 33], expected(128 + 33, 0));
  EXPECT_EQ(y[128 + 97], expected(128 + 97, 15 | 1 << 4));
  EXPECT_EQ(y[5], expected(5, 0));
}

TEST(BlockLayout, Q8_KF32ScaleTimesCodes) {
  BlockQ8_K block{};
  block.d = 0.75f;
  for (int i = 0; i < kQK_K; ++i) block.qs[i] = static_cast<int8_t>(i - 128);
  const std::vector<float> y = dequantize(DType::q8_k, &block, kQK_K);
  for (int i = 0; i < kQK_K; ++i) EXPECT_EQ(y[i], 0.75f * (i - 128)) << i;  // exact: integers times 3/4
}

// ---- Encodings computed by hand from the formulas.

TEST(KnownVectors, Q8_0RoundsHalfAwayFromZero) {
  // amax 127 makes d = 1 and 1/d = 1 exactly, so the codes are roundf of the inputs.
  std::vector<float> x(kQK8_0, 0.0f);
  const float inputs[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, 100.2f, -126.5f};
  const int8_t codes[] = {127, 3, -3, 1, -1, 1, 100, -127};
  std::copy(std::begin(inputs), std::end(inputs), x.begin());
  BlockQ8_0 block;
  quantize_row_reference(DType::q8_0, x.data(), &block, kQK8_0);
  EXPECT_EQ(block.d, 0x3c00);  // f16 1.0
  for (size_t i = 0; i < std::size(codes); ++i) EXPECT_EQ(block.qs[i], codes[i]) << i;
}

TEST(KnownVectors, Q8_1HasQ8_0sCodesAndTheirScaledSum) {
  testing::SeededRng rng;
  const std::vector<float> x = rng.normal(4 * kQK8_1);
  BlockQ8_0 plain[4];
  BlockQ8_1 summed[4];
  quantize_row_reference(DType::q8_0, x.data(), plain, 4 * kQK8_1);
  quantize_row_reference(DType::q8_1, x.data(), summed, 4 * kQK8_1);
  for (int b = 0; b < 4; ++b) {
    EXPECT_EQ(summed[b].d, plain[b].d) << b;
    EXPECT_EQ(std::memcmp(summed[b].qs, plain[b].qs, sizeof plain[b].qs), 0) << b;
    // s is the int sum times the f32 scale (amax / 127), before f16 rounding, as ggml.
    float amax = 0.0f;
    int sum = 0;
    for (int i = 0; i < kQK8_1; ++i) {
      amax = std::max(amax, std::fabs(x[b * kQK8_1 + i]));
      sum += plain[b].qs[i];
    }
    EXPECT_EQ(summed[b].s, f32_to_f16(static_cast<float>(sum) * (amax / 127.0f))) << b;
  }
  EXPECT_EQ(dequantize(DType::q8_1, summed, 4 * kQK8_1), dequantize(DType::q8_0, plain, 4 * kQK8_1));
}

TEST(KnownVectors, Q4_0SignedExtremeMapsToCodeZero) {
  std::vector<float> x(2 * kQK4_0, 0.0f);
  // Block 0: extreme -4 gives d = 0.5 and 1/d = 2; code = min(15, trunc(2x + 8.5)).
  const float first[] = {-4.0f, 3.5f, 0.24f, 0.26f, -0.25f, 0.75f, 4.0f};
  const int first_codes[] = {0, 15, 8, 9, 8, 10, 15};  // 4.0 would be 16: clamped
  std::copy(std::begin(first), std::end(first), x.begin());
  // Block 1: +4 and -4 tie; the first (+4) wins, so d = -0.5 and +4 gets code 0.
  x[kQK4_0 + 0] = 4.0f;
  x[kQK4_0 + 20] = -4.0f;
  BlockQ4_0 blocks[2];
  quantize_row_reference(DType::q4_0, x.data(), blocks, 2 * kQK4_0);
  EXPECT_EQ(blocks[0].d, 0x3800);  // f16 0.5
  for (int i = 0; i < 7; ++i) EXPECT_EQ(blocks[0].qs[i] & 0x0f, first_codes[i]) << i;
  EXPECT_EQ(blocks[0].qs[0] >> 4, 8);  // weight 16 is 0: code 8
  EXPECT_EQ(blocks[1].d, 0xb800);  // f16 -0.5
  EXPECT_EQ(blocks[1].qs[0] & 0x0f, 0);
  EXPECT_EQ(blocks[1].qs[4] >> 4, 15);  // weight 20 = -4: trunc(16.5) clamped to 15
}

TEST(KnownVectors, Q4_1MinAndRange) {
  // min -1, max 2: d = 3/15 = 0.2f, whose reciprocal rounds to exactly 5.
  std::vector<float> x(kQK4_1, 0.0f);
  const float inputs[] = {-1.0f, 2.0f, 0.0f, 0.5f, 1.0f, -0.5f};
  const int codes[] = {0, 15, 5, 8, 10, 3};  // trunc(5 (x + 1) + 0.5)
  std::copy(std::begin(inputs), std::end(inputs), x.begin());
  BlockQ4_1 block;
  quantize_row_reference(DType::q4_1, x.data(), &block, kQK4_1);
  EXPECT_EQ(block.d, f32_to_f16(0.2f));
  EXPECT_EQ(block.m, 0xbc00);  // f16 -1.0
  for (int i = 0; i < 6; ++i) EXPECT_EQ(block.qs[i] & 0x0f, codes[i]) << i;
}

TEST(KnownVectors, Q8_KRoundsHalfToEvenAndSumsGroups) {
  // Extreme -254 gives iscale = -127 / -254 = 0.5 exactly and d = 2.
  std::vector<float> x(kQK_K, 0.0f);
  const float inputs[] = {-254.0f, 1.0f, 3.0f, 5.0f, -3.0f, 7.0f};
  const int8_t codes[] = {-127, 0, 2, 2, -2, 4};  // 0.5, 1.5, 2.5, -1.5, 3.5 round to even
  std::copy(std::begin(inputs), std::end(inputs), x.begin());
  x[16] = 100.0f;  // group 1 sums to 50
  BlockQ8_K block;
  quantize_row_reference(DType::q8_k, x.data(), &block, kQK_K);
  EXPECT_EQ(block.d, 2.0f);
  for (size_t i = 0; i < std::size(codes); ++i) EXPECT_EQ(block.qs[i], codes[i]) << i;
  EXPECT_EQ(block.bsums[0], -127 + 0 + 2 + 2 - 2 + 4);
  EXPECT_EQ(block.bsums[1], 50);
  EXPECT_EQ(block.bsums[2], 0);
}

TEST(KnownVectors, Q4_KExactGridKeepsCodesAndFullScales) {
  // Every sub-block holds step * (0..15) with min 0, so the first fit is exact (error 0,
  // no trial beats it) and every min is 0. Steps are 0.5 except sub-block 5's 2^-12: its
  // 6-bit scale 63 * 2^-12 / 0.5 rounds to 0, and ggml then keeps the codes of its fit
  // instead of re-quantizing against a zero scale.
  std::vector<float> x(kQK_K);
  for (int s = 0; s < 8; ++s) {
    const float step = s == 5 ? 1.0f / 4096.0f : 0.5f;
    for (int i = 0; i < 32; ++i) x[32 * s + i] = step * static_cast<float>((i + s) % 16);
  }
  BlockQ4_K block;
  quantize_row_reference(DType::q4_k, x.data(), &block, kQK_K);
  EXPECT_EQ(block.d, f32_to_f16(0.5f / 63.0f));
  EXPECT_EQ(block.dmin, 0);
  // 63 = 0b111111: bytes 0-3 hold scales 0-3 plus the top bits (11) of scales 4-7, except
  // scale 5 = 0 (byte 1's top bits and byte 9's low nibble); bytes 4-7 and the high
  // nibbles of 8-11 hold the zero mins.
  const uint8_t scales[12] = {0xff, 0x3f, 0xff, 0xff, 0, 0, 0, 0, 0x0f, 0x00, 0x0f, 0x0f};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(block.scales[i], scales[i]) << i;
  for (int group = 0; group < 4; ++group)
    for (int i = 0; i < 32; ++i) {
      const int low = (i + 2 * group) % 16;
      const int high = (i + 2 * group + 1) % 16;
      EXPECT_EQ(block.qs[32 * group + i], low | high << 4) << group << " " << i;
    }
}

TEST(KnownVectors, Q6_KExactGridRoundTripsExactly) {
  // Every sub-block holds k / 4 for k in [-32, 31] with -8 (k = -32) present: its fit is
  // scale 1/4, every sub-block scale maps to -128 and d = -1/512, all exact in f16.
  std::vector<float> x(kQK_K);
  for (int i = 0; i < kQK_K; ++i) x[i] = i % 16 == 0 ? -8.0f : 0.25f * static_cast<float>((i * 37) % 64 - 32);
  BlockQ6_K block;
  quantize_row_reference(DType::q6_k, x.data(), &block, kQK_K);
  EXPECT_EQ(block.d, f32_to_f16(-1.0f / 512.0f));
  for (int s = 0; s < 16; ++s) EXPECT_EQ(block.scales[s], -128) << s;
  const std::vector<float> y = dequantize(DType::q6_k, &block, kQK_K);
  for (int i = 0; i < kQK_K; ++i) EXPECT_EQ(y[i], x[i]) << i;  // exact: quarters
}

// ---- Error bounds on random data.

// Per-element bound of the simple formats, from the block's own scale: half a step for
// round-to-nearest (q4_0: a whole step, since the far side clamps at code 7 = 7/8 of the
// extreme), plus the f16 rounding of the stored scale (≤ 2^-11 relative, times the largest
// code) and of q4_1's min. Returns the bound per element of x.
std::vector<double> element_bounds(DType type, const std::vector<float>& x) {
  const int64_t block = block_elements(type);
  std::vector<double> bounds(x.size());
  for (size_t start = 0; start < x.size(); start += static_cast<size_t>(block)) {
    double amax = 0.0;
    double min = x[start];
    double max = x[start];
    for (int64_t i = 0; i < block; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[start + i])));
      min = std::min(min, static_cast<double>(x[start + i]));
      max = std::max(max, static_cast<double>(x[start + i]));
    }
    constexpr double kF16 = 1.0 / 2048.0;
    double bound = 0.0;
    if (type == DType::q8_0 || type == DType::q8_1) bound = amax / 127.0 * (0.5 + 127.0 * kF16);
    if (type == DType::q4_0) bound = amax / 8.0 * (1.0 + 8.0 * kF16);
    if (type == DType::q4_1) bound = (max - min) / 15.0 * (0.5 + 15.0 * kF16) + std::fabs(min) * kF16;
    if (type == DType::q8_k) bound = amax / 127.0 * 0.5 * (1.0 + 1e-5);  // f32 scale: float rounding only
    for (int64_t i = 0; i < block; ++i) bounds[start + i] = bound * (1.0 + 1e-5) + 1e-30;
  }
  return bounds;
}

std::vector<float> heavy_tailed(testing::SeededRng& rng, size_t count) {
  std::vector<float> x = rng.normal(count);
  for (float& v : x)
    if (rng.integer(0, 99) == 0) v *= 50.0f;  // 1% outliers, 50 sigma
  return x;
}

TEST(RoundTrip, SimpleFormatsStayWithinHalfAStepPerElement) {
  testing::SeededRng rng;
  for (DType type : {DType::q8_0, DType::q8_1, DType::q4_0, DType::q4_1, DType::q8_k}) {
    for (const std::vector<float>& x : {rng.normal(64 * 256), heavy_tailed(rng, 64 * 256)}) {
      const std::vector<float> y = round_trip(type, x);
      const std::vector<double> bounds = element_bounds(type, x);
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_LE(std::fabs(static_cast<double>(y[i]) - x[i]), bounds[i]) << dtype_name(type) << " element " << i;
    }
  }
}

// RMS error relative to the data's RMS, on 65536 values (so the ratio moves by well under
// 5% between seeds). Normal data (σ = 1): rounding to a step s leaves RMS s / √12, with s
// ≈ E[block amax] / levels: q8_0 2.1/127 → 0.005, q4_0 2.1/8 → 0.076 plus the clamped
// side (0.086 measured), q4_1 4.1/15 → 0.079, q6_K 1.8/32 → 0.016, q8_K 2.9/127 → 0.0066;
// q4_K's fitted scales and mins land just below q4_1 (0.071 measured). Heavy-tailed data
// (1% of values at 50σ, data RMS ≈ 5.1): a block holding an outlier gets a step ~25x
// larger, so its ordinary values lose min(s / √12, σ) each; weighted by the share of
// blocks with an outlier (27% of 32-blocks, 92% of 256-blocks) that predicts q8_0 0.012,
// q8_K 0.03, q4_0 0.09-0.1, q4_1 0.12, q4_K 0.08, q6_K 0.033 (measured alike). Each bound
// is about 1.35x its prediction: tight enough that a wrong scale, a lost nibble or a
// misplaced sub-block fails, loose enough for seed-to-seed spread.
struct RmsBound {
  DType type;
  double normal;
  double heavy;
};
constexpr RmsBound kRmsBounds[] = {
    {DType::q8_0, 0.0075, 0.017}, {DType::q4_0, 0.115, 0.125}, {DType::q4_1, 0.105, 0.16},
    {DType::q4_k, 0.095, 0.11},   {DType::q6_k, 0.024, 0.045}, {DType::q8_k, 0.0095, 0.04},
};

TEST(RoundTrip, RmsErrorWithinBoundsOnNormalAndHeavyTailedData) {
  testing::SeededRng rng;
  for (const RmsBound& bound : kRmsBounds) {
    const std::vector<float> normal = rng.normal(65536);
    const std::vector<float> heavy = heavy_tailed(rng, 65536);
    EXPECT_LE(rms_error(round_trip(bound.type, normal), normal) / rms(normal), bound.normal) << dtype_name(bound.type);
    EXPECT_LE(rms_error(round_trip(bound.type, heavy), heavy) / rms(heavy), bound.heavy) << dtype_name(bound.type);
  }
}

TEST(RoundTrip, RowsOfDifferentLengthsQuantizeBlockByBlock) {
  // A row's blocks depend only on their own elements: quantizing a long row equals
  // quantizing each block alone, and nothing past the row's bytes is written.
  testing::SeededRng rng;
  for (DType type : kBlockTypes) {
    const int64_t block = block_elements(type);
    for (int64_t blocks : {1, 2, 3, 17}) {
      const int64_t count = blocks * block;
      const std::vector<float> x = rng.normal(static_cast<size_t>(count));
      const auto bytes = static_cast<size_t>(row_bytes(type, count));
      std::vector<unsigned char> whole(bytes + 16, 0xAB);
      quantize_row_reference(type, x.data(), whole.data(), count);
      for (size_t i = bytes; i < whole.size(); ++i) ASSERT_EQ(whole[i], 0xAB) << dtype_name(type) << " wrote past the row";
      std::vector<unsigned char> single(static_cast<size_t>(block_bytes(type)));
      for (int64_t b = 0; b < blocks; ++b) {
        quantize_row_reference(type, x.data() + b * block, single.data(), block);
        ASSERT_EQ(std::memcmp(single.data(), whole.data() + b * block_bytes(type), single.size()), 0)
            << dtype_name(type) << " block " << b << " of " << blocks;
      }
      const std::vector<float> y = dequantize(type, whole.data(), count);
      for (float v : y) ASSERT_FALSE(std::isnan(v)) << dtype_name(type);
    }
  }
}

TEST(RoundTrip, ZeroAndTinyRowsGiveNoNaN) {
  // All zeros must come back as zeros (exactly), and values so small that the f16 scale
  // underflows must come back finite and no larger than they went in (1e-30 bound: the
  // inputs are at most 1e-30 and a zero scale decodes to at most |min| via q4_1's m).
  for (DType type : kBlockTypes) {
    const std::vector<float> zeros(512, 0.0f);
    for (float v : round_trip(type, zeros)) ASSERT_EQ(v, 0.0f) << dtype_name(type);
    std::vector<float> tiny(512);
    for (size_t i = 0; i < tiny.size(); ++i) tiny[i] = (i % 3 == 0 ? -1e-30f : 1e-30f) * static_cast<float>(i % 7);
    for (float v : round_trip(type, tiny)) {
      ASSERT_TRUE(std::isfinite(v)) << dtype_name(type);
      ASSERT_LE(std::fabs(v), 1e-29f) << dtype_name(type);
    }
  }
}

TEST(PlainTypes, ConvertLikeTheRowConverters) {
  testing::SeededRng rng;
  const std::vector<float> x = rng.normal(100);
  std::vector<uint16_t> halves(100);
  quantize_row_reference(DType::f16, x.data(), halves.data(), 100);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(halves[i], f32_to_f16(x[i]));
  quantize_row_reference(DType::bf16, x.data(), halves.data(), 100);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(halves[i], f32_to_bf16(x[i]));
  std::vector<float> copy(100);
  quantize_row_reference(DType::f32, x.data(), copy.data(), 100);
  EXPECT_EQ(copy, x);
  EXPECT_EQ(dequantize(DType::f32, x.data(), 100), x);
  const int32_t integers[3] = {-7, 0, 1 << 20};
  const std::vector<float> widened = dequantize(DType::i32, integers, 3);
  EXPECT_EQ(widened, (std::vector<float>{-7.0f, 0.0f, 1048576.0f}));
  EXPECT_FALSE(can_quantize_to(DType::i32));
  for (DType type : kBlockTypes) EXPECT_TRUE(can_quantize_to(type));
}

}  // namespace
}  // namespace ember::quant
