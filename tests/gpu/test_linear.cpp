// The fused linear shaders against a double-precision CPU reference on random data, for
// every weight type x path x activation, with and without bias, on shapes that are not
// multiples of the GEMM tile (32) or the GEMV's stride (256 weights).
//
// Tolerance: |y - reference| <= 3e-5 * (sum_i |x_i w_i| + |bias|) + 1e-6. The weights
// are dequantized exactly on both sides (f16 and block scales are exact in f32); against
// block weights the reference takes x rounded to q8_0 blocks, as the CPU's int8 kernels
// and the shaders do. So the difference is f32 rounding in the sum and exp in the
// activation: ~1e-6 of that scale for these k. One weight read from the wrong place or
// nibble, or x left unrounded, costs far more.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "ember/dtype.h"
#include "gpu/linear.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

DType ember_type(WeightType type) {
  switch (type) {
    case WeightType::f32: return DType::f32;
    case WeightType::f16: return DType::f16;
    case WeightType::q8_0: return DType::q8_0;
    case WeightType::q4_0: return DType::q4_0;
  }
  return DType::f32;
}

double reference_activation(Activation act, double v) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0 ? v : 0;
    case Activation::gelu_tanh: return 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case Activation::silu: return v / (1.0 + std::exp(-v));
  }
  return v;
}

struct Gpu {
  Context& context;
  Allocator allocator;
  PipelineCache pipelines;
  std::unique_ptr<FusedLinear> linear;
  explicit Gpu(Context& c) : context(c), allocator(c), pipelines(c) {
    auto created = FusedLinear::create(c, pipelines, allocator);
    EXPECT_TRUE(created) << created.status().message();
    if (created) linear = std::move(created.value());
  }
};

struct Shape {
  uint32_t rows, k, n;
};

// Runs one case and compares every output; also checks nothing is written past y.
void check_linear(Gpu& gpu, testing::SeededRng& rng, WeightType type, LinearPath path, Activation act, Shape shape,
                  bool with_bias) {
  SCOPED_TRACE("rows " + std::to_string(shape.rows) + " k " + std::to_string(shape.k) + " n " + std::to_string(shape.n) +
               (with_bias ? " with bias" : " without bias"));
  const std::vector<float> x = rng.uniform(size_t{shape.rows} * shape.k);
  const std::vector<float> w_float = rng.uniform(size_t{shape.n} * shape.k);
  const std::vector<float> bias = rng.uniform(shape.n);
  const DType dtype = ember_type(type);
  std::vector<uint8_t> w_bytes(row_bytes(dtype, shape.k) * shape.n);
  ASSERT_EQ(w_bytes.size(), weight_row_bytes(type, shape.k) * shape.n);
  quant::quantize_row_reference(dtype, w_float.data(), w_bytes.data(), int64_t{shape.n} * shape.k);
  std::vector<float> w(w_float.size());
  quant::dequantize_row(dtype, w_bytes.data(), w.data(), int64_t{shape.n} * shape.k);
  std::vector<float> x_taken = x;
  if (type == WeightType::q8_0 || type == WeightType::q4_0) {
    std::vector<uint8_t> x_blocks(row_bytes(DType::q8_0, int64_t{shape.rows} * shape.k));
    quant::quantize_row_reference(DType::q8_0, x.data(), x_blocks.data(), int64_t{shape.rows} * shape.k);
    quant::dequantize_row(DType::q8_0, x_blocks.data(), x_taken.data(), int64_t{shape.rows} * shape.k);
  }

  constexpr size_t kGuard = 7;
  const size_t outputs = size_t{shape.rows} * shape.n;
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  DeviceBuffer w_buffer = mapped_buffer(gpu.allocator, w_bytes);
  DeviceBuffer bias_buffer = mapped_buffer(gpu.allocator, bias);
  DeviceBuffer y_buffer = mapped_buffer(gpu.allocator, testing::poisoned(outputs + kGuard));
  const Status status = gpu.linear->run({.x = &x_buffer, .rows = shape.rows, .k = shape.k, .weights = &w_buffer,
                                         .weight_type = type, .n = shape.n, .bias = with_bias ? &bias_buffer : nullptr,
                                         .activation = act, .y = &y_buffer, .path = path});
  ASSERT_TRUE(status) << status.message();
  const std::vector<float> y = read_mapped<float>(y_buffer, outputs + kGuard);
  for (size_t i = outputs; i < outputs + kGuard; ++i) ASSERT_TRUE(std::isnan(y[i])) << "wrote past y at " << i;
  int failures = 0;
  for (uint32_t r = 0; r < shape.rows; ++r)
    for (uint32_t c = 0; c < shape.n; ++c) {
      double sum = with_bias ? bias[c] : 0.0;
      double scale = with_bias ? std::fabs(bias[c]) : 0.0;
      for (uint32_t i = 0; i < shape.k; ++i) {
        const double product = double{x_taken[size_t{r} * shape.k + i]} * w[size_t{c} * shape.k + i];
        sum += product;
        scale += std::fabs(product);
      }
      const double expected = reference_activation(act, sum);
      const float actual = y[size_t{r} * shape.n + c];
      const double tolerance = 3e-5 * scale + 1e-6;
      if (!(std::fabs(actual - expected) <= tolerance) && ++failures <= 5)
        ADD_FAILURE() << "y[" << r << "][" << c << "] = " << actual << ", expected " << expected << " (tolerance "
                      << tolerance << ")";
    }
  EXPECT_EQ(failures, 0);
}

using LinearCase = std::tuple<WeightType, LinearPath, Activation>;

class GpuLinear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(GpuLinear, MatchesTheCpuReference) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  // Pipelines compiled once for the whole suite; destroyed before the shared context,
  // which was created first.
  static Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  const auto [type, path, act] = GetParam();
  testing::SeededRng rng;
  const bool blocks = type == WeightType::q8_0 || type == WeightType::q4_0;
  const uint32_t k = blocks ? 32 * 3 : 37;
  for (uint32_t rows : {1u, 3u, 67u})
    for (uint32_t n : {1u, 5u, 131u}) check_linear(gpu, rng, type, path, act, {rows, k, n}, (rows + n) % 2 == 0);
  // Past one 128 x 128 float GEMM tile both ways, partial tiles at both edges.
  check_linear(gpu, rng, type, path, act, {133, k, 130}, true);
  // A long row: many GEMV strides (more blocks than the block GEMV's 64 threads) and
  // GEMM k-steps, a final partial one for f32/f16.
  check_linear(gpu, rng, type, path, act, {2, blocks ? 32u * 131u : 1061u, 70}, true);
  check_linear(gpu, rng, type, path, act, {2, blocks ? 32u * 131u : 1061u, 70}, false);
}

std::string case_name(const ::testing::TestParamInfo<LinearCase>& info) {
  static const char* types[] = {"f32", "f16", "q8_0", "q4_0"};
  static const char* paths[] = {"auto", "gemv", "gemm"};
  static const char* acts[] = {"none", "relu", "gelu_tanh", "silu"};
  return std::string(types[static_cast<int>(std::get<0>(info.param))]) + "_" +
         paths[static_cast<int>(std::get<1>(info.param))] + "_" + acts[static_cast<int>(std::get<2>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(AllTypesPathsActivations, GpuLinear,
                         ::testing::Combine(::testing::Values(WeightType::f32, WeightType::f16, WeightType::q8_0,
                                                              WeightType::q4_0),
                                            ::testing::Values(LinearPath::gemv, LinearPath::gemm),
                                            ::testing::Values(Activation::none, Activation::relu,
                                                              Activation::gelu_tanh, Activation::silu)),
                         case_name);

TEST(GpuLinearPipelines, CreatedOncePerShaderAndSpecialization) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  EXPECT_EQ(gpu.pipelines.created(), 0u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemv, Activation::silu, {1, 64, 9}, true);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemv, Activation::silu, {1, 96, 4}, false);
  EXPECT_EQ(gpu.pipelines.created(), 2u);  // the block GEMV and the x rounding before it
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::silu, {1, 64, 9}, true);  // gemv
  EXPECT_EQ(gpu.pipelines.created(), 2u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::silu, {4, 64, 9}, true);  // gemm
  EXPECT_EQ(gpu.pipelines.created(), 3u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemm, Activation::relu, {4, 64, 9}, true);
  EXPECT_EQ(gpu.pipelines.created(), 4u);
}

TEST(GpuLinearPipelines, RejectsBadShapesWithAMessage) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  DeviceBuffer x = mapped_buffer(gpu.allocator, std::vector<float>(2 * 40));
  DeviceBuffer w = mapped_buffer(gpu.allocator, std::vector<uint8_t>(5 * 40 * 4));
  DeviceBuffer y = mapped_buffer(gpu.allocator, std::vector<float>(2 * 5));
  Status status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::q8_0,
                                   .n = 5, .y = &y});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(status.message().find("multiple of 32"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 6, .y = &y});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(status.message().find("weight buffer holds 800 bytes, 960 needed"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 3, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 5, .y = &y});
  EXPECT_NE(status.message().find("x buffer"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 5});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_EQ(gpu.pipelines.created(), 0u);  // nothing reached the device
}

}  // namespace
}  // namespace ember::gpu
