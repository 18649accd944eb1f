// The quantized linear kernels at the two shapes that matter (issue #5): decode, one row
// through a 4096×14336 weight (shape 0; shape 1 is M's 32000×2048 output layer), reported as GB/s of weight bytes against the read
// bandwidth ceiling; and prefill, 512 rows through the same weight, reported as GOP/s
// against the int8 dot-product ceiling (BM_Ceiling* in the same binary). The f16 and bf16
// rows are the plain kernels at the same shapes, for comparison (BM_Bf16Linear runs bf16
// on the widening and the vdpbf16ps ISA levels side by side); BM_InterleavedLinear runs
// q8_0, q4_0, q4_K and q6_K in the layout the CPU backend gives them.
#include <benchmark/benchmark.h>

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/interleaved_weights.h"
#include "cpu/isa.h"
#include "cpu/matmul.h"
#include "cpu/quantize.h"
#include "ember/ember.h"
#include "quant/convert.h"

namespace ember::bench {
namespace {

// The decode/prefill shape, and M's output layer (short rows: 2048 wide).
struct WeightShape {
  int64_t out, in;
};
constexpr WeightShape kShapes[] = {{4096, 14336}, {32000, 2048}};

struct StoredWeights {
  cpu::ElementType type;
  std::vector<std::byte> bytes;
};

StoredWeights random_weights(cpu::ElementType type, int64_t out, int64_t in) {
  std::mt19937 engine(7);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> values(static_cast<size_t>(out * in));
  for (float& v : values) v = dist(engine);
  StoredWeights w{type, std::vector<std::byte>(static_cast<size_t>(cpu::element_row_bytes(type, in) * out))};
  const DType dtype = cpu::to_dtype(type);
  if (dtype == DType::f16) {
    quant::f32_to_f16_row(values.data(), reinterpret_cast<uint16_t*>(w.bytes.data()), out * in);
  } else if (dtype == DType::bf16) {
    quant::f32_to_bf16_row(values.data(), reinterpret_cast<uint16_t*>(w.bytes.data()), out * in);
  } else {
    cpu::quantize_rows(dtype, values.data(), out, in, w.bytes.data());
  }
  return w;
}

std::vector<float> random_activations(int64_t count) {
  std::mt19937 engine(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = dist(engine);
  return x;
}

void BM_QuantizedLinear(benchmark::State& state) {
  const auto type = static_cast<cpu::ElementType>(state.range(0));
  const WeightShape shape = kShapes[state.range(1)];
  const int64_t rows = state.range(2);
  set_num_threads(static_cast<int>(state.range(3)));
  const int64_t kOut = shape.out, kIn = shape.in;
  const StoredWeights w = random_weights(type, kOut, kIn);
  const std::vector<float> x = random_activations(rows * kIn);
  std::vector<float> y(static_cast<size_t>(rows * kOut));
  for (auto _ : state) {
    cpu::linear(x.data(), rows, kIn, w.bytes.data(), type, nullptr, cpu::Activation::none, y.data(), kOut);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.bytes.size()));
  state.counters["OP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(rows * kOut * kIn), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dtype_name(cpu::to_dtype(type))));
}

constexpr int64_t kTypes[] = {
    static_cast<int64_t>(cpu::ElementType::f16),  static_cast<int64_t>(cpu::ElementType::bf16),
    static_cast<int64_t>(cpu::ElementType::q8_0), static_cast<int64_t>(cpu::ElementType::q4_0),
    static_cast<int64_t>(cpu::ElementType::q4_1), static_cast<int64_t>(cpu::ElementType::q4_k),
    static_cast<int64_t>(cpu::ElementType::q6_k)};

BENCHMARK(BM_QuantizedLinear)
    ->ArgNames({"type", "shape", "rows", "threads"})
    ->ArgsProduct({{std::begin(kTypes), std::end(kTypes)}, {0, 1}, {1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same products with the weights in the CPU's interleaved layout
// (cpu/interleaved_weights.h), as the CPU backend runs a model's q8_0, q4_0, q4_K and
// q6_K weights on a 512-bit VNNI machine.
void BM_InterleavedLinear(benchmark::State& state) {
  const auto type = static_cast<cpu::ElementType>(state.range(0));
  const WeightShape shape = kShapes[state.range(1)];
  const int64_t rows = state.range(2);
  set_num_threads(static_cast<int>(state.range(3)));
  const StoredWeights w = random_weights(type, shape.out, shape.in);
  std::vector<std::byte> interleaved(static_cast<size_t>(cpu::interleaved_bytes(type, shape.out, shape.in)));
  cpu::interleave_rows(type, w.bytes.data(), shape.out, shape.in, interleaved.data());
  const std::vector<float> x = random_activations(rows * shape.in);
  std::vector<float> y(static_cast<size_t>(rows * shape.out));
  for (auto _ : state) {
    cpu::linear(x.data(), rows, shape.in, interleaved.data(), type, nullptr, cpu::Activation::none, y.data(), shape.out,
                cpu::WeightLayout::interleaved);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.bytes.size()));
  state.counters["OP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows * shape.out * shape.in),
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dtype_name(cpu::to_dtype(type))));
}

constexpr int64_t kInterleavedTypes[] = {static_cast<int64_t>(cpu::ElementType::q8_0),
                                         static_cast<int64_t>(cpu::ElementType::q4_0),
                                         static_cast<int64_t>(cpu::ElementType::q4_k),
                                         static_cast<int64_t>(cpu::ElementType::q6_k)};

BENCHMARK(BM_InterleavedLinear)
    ->ArgNames({"type", "shape", "rows", "threads"})
    ->ArgsProduct({{std::begin(kInterleavedTypes), std::end(kInterleavedTypes)}, {0, 1}, {1, 512}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// bf16 weights on the two ISA levels at the same shapes: avx512_vnni (path 0) widens them
// to f32 for FMAs; avx512_bf16 (path 1) multiplies prefill's bf16 pairs by vdpbf16ps with
// x rounded to bf16, and decodes (one row) as path 0 does. Prefill's OP/s compare to
// BM_CeilingFmaAvx512 and BM_CeilingBf16DotAvx512Bf16, decode's bytes/s to
// BM_CeilingReadBandwidth.
void BM_Bf16Linear(benchmark::State& state) {
  const WeightShape shape = kShapes[state.range(0)];
  const int64_t rows = state.range(1);
  set_num_threads(static_cast<int>(state.range(2)));
  const bool pairs = state.range(3) != 0;
  const cpu::Isa isa = pairs ? cpu::Isa::avx512_bf16 : cpu::Isa::avx512_vnni;
  if (!cpu::isa_supported(isa)) {
    state.SkipWithError("the CPU lacks this instruction set");
    return;
  }
  const cpu::Isa saved = cpu::active_isa();
  cpu::force_isa(isa);
  const StoredWeights w = random_weights(cpu::ElementType::bf16, shape.out, shape.in);
  const std::vector<float> x = random_activations(rows * shape.in);
  std::vector<float> y(static_cast<size_t>(rows * shape.out));
  for (auto _ : state) {
    cpu::linear(x.data(), rows, shape.in, w.bytes.data(), cpu::ElementType::bf16, nullptr, cpu::Activation::none,
                y.data(), shape.out);
    benchmark::DoNotOptimize(y.data());
  }
  cpu::force_isa(saved);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.bytes.size()));
  state.counters["OP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows * shape.out * shape.in),
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(pairs ? "avx512_bf16" : "avx512_vnni");
}

BENCHMARK(BM_Bf16Linear)
    ->ArgNames({"shape", "rows", "threads", "path"})
    ->ArgsProduct({{0, 1}, {1, 512}, {1, 2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// What interleaving costs on a weight's first use: bytes of weights rearranged per second.
void BM_InterleaveRows(benchmark::State& state) {
  const auto type = static_cast<cpu::ElementType>(state.range(0));
  set_num_threads(static_cast<int>(state.range(1)));
  const WeightShape shape = kShapes[1];
  const StoredWeights w = random_weights(type, shape.out, shape.in);
  std::vector<std::byte> interleaved(static_cast<size_t>(cpu::interleaved_bytes(type, shape.out, shape.in)));
  for (auto _ : state) {
    cpu::interleave_rows(type, w.bytes.data(), shape.out, shape.in, interleaved.data());
    benchmark::DoNotOptimize(interleaved.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.bytes.size()));
  state.SetLabel(std::string(dtype_name(cpu::to_dtype(type))));
}

BENCHMARK(BM_InterleaveRows)
    ->ArgNames({"type", "threads"})
    ->ArgsProduct({{std::begin(kInterleavedTypes), std::end(kInterleavedTypes)}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A decoded token's linears of M (8 layers of q, k and v as one product, o, gate, up and
// down, then the output), each with its own weights in huge pages as the model holds
// them (core/buffer.cpp), one after another: the weight bytes per second the products
// reach when every weight comes cold from memory, as in decoding. The single products
// above run one matrix again and again, which a large last-level cache may partly hold.
// The layout is the CPU backend's: interleaved where that pays on this ISA, else as stored.
void BM_DecodeLinearsOfM(benchmark::State& state) {
  const auto type = static_cast<cpu::ElementType>(state.range(0));
  set_num_threads(static_cast<int>(state.range(1)));
  const bool interleave = cpu::interleaving_pays(type, cpu::active_isa());
  const cpu::WeightLayout layout = interleave ? cpu::WeightLayout::interleaved : cpu::WeightLayout::plain;
  constexpr size_t kHugePage = size_t{2} << 20;
  struct Product {
    WeightShape shape;
    std::byte* weights;
  };
  std::vector<Product> products;
  for (int layer = 0; layer < 8; ++layer)
    for (WeightShape shape : {WeightShape{3072, 2048}, WeightShape{2048, 2048}, WeightShape{5632, 2048},
                              WeightShape{5632, 2048}, WeightShape{2048, 5632}})
      products.push_back({shape, nullptr});
  products.push_back({WeightShape{32000, 2048}, nullptr});
  int64_t total_bytes = 0;
  for (Product& product : products) {
    const StoredWeights w = random_weights(type, product.shape.out, product.shape.in);
    const auto bytes = interleave ? static_cast<size_t>(cpu::interleaved_bytes(type, product.shape.out, product.shape.in))
                                  : w.bytes.size();
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    product.weights = static_cast<std::byte*>(std::aligned_alloc(kHugePage, rounded));
    if (product.weights == nullptr) {
      state.SkipWithError("out of memory for M's weights");
      break;
    }
    ::madvise(product.weights, rounded, MADV_HUGEPAGE);
    if (interleave) {
      cpu::interleave_rows(type, w.bytes.data(), product.shape.out, product.shape.in, product.weights);
    } else {
      std::memcpy(product.weights, w.bytes.data(), bytes);
    }
    total_bytes += static_cast<int64_t>(w.bytes.size());
  }
  const std::vector<float> x = random_activations(5632);
  std::vector<float> y(32000);
  for (auto _ : state) {
    for (const Product& product : products)
      cpu::linear(x.data(), 1, product.shape.in, product.weights, type, nullptr, cpu::Activation::none, y.data(),
                  product.shape.out, layout);
    benchmark::DoNotOptimize(y.data());
  }
  for (Product& product : products) std::free(product.weights);
  state.SetBytesProcessed(state.iterations() * total_bytes);
  state.SetLabel(std::string(dtype_name(cpu::to_dtype(type))));
}

constexpr int64_t kDecodeTypes[] = {
    static_cast<int64_t>(cpu::ElementType::f16),  static_cast<int64_t>(cpu::ElementType::bf16),
    static_cast<int64_t>(cpu::ElementType::q8_0), static_cast<int64_t>(cpu::ElementType::q4_0),
    static_cast<int64_t>(cpu::ElementType::q4_k), static_cast<int64_t>(cpu::ElementType::q6_k)};

BENCHMARK(BM_DecodeLinearsOfM)
    ->ArgNames({"type", "threads"})
    ->ArgsProduct({{std::begin(kDecodeTypes), std::end(kDecodeTypes)}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ember::bench
