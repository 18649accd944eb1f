// Kernel benchmarks: f32 GEMM (Eigen alone vs through ember's graph and executor), the
// prefill shape, decode GEMVs per weight type, fused linear vs its unfused chain,
// softmax and rms_norm. Every case takes the thread count as its last argument.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <random>
#include <vector>

#include "cpu/matmul.h"
#include "cpu/norm.h"
#include "cpu/softmax.h"
#include "ember/ember.h"

namespace ember::bench {
namespace {

Tensor random_tensor(const Shape& shape, DType type = DType::f32) {
  Tensor t = Tensor::empty(shape, type).value();
  std::mt19937 engine(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.elements(); ++i) t.set_flat(i, dist(engine));
  return t;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Eigen alone: the yardstick for the graph's overhead.
void BM_EigenGemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  RowMatrix a = RowMatrix::Random(n, n), b = RowMatrix::Random(n, n), c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * n * n * n);
}

// The same product as a one-node graph run by the executor.
void BM_GraphMatmul(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  Graph graph;
  graph.mark_output(graph.matmul(graph.input("a", {n, n}), graph.constant("b", random_tensor({n, n}))));
  std::vector<Tensor> inputs = {random_tensor({n, n})};
  Executor executor;
  for (auto _ : state) benchmark::DoNotOptimize(executor.run(graph, inputs));
  set_flops(state, 2.0 * n * n * n);
}

#define EMBER_GEMM_ARGS ArgNames({"n", "threads"})->ArgsProduct({{512, 1024, 2048, 4096}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond)
BENCHMARK(BM_EigenGemm)->EMBER_GEMM_ARGS;
BENCHMARK(BM_GraphMatmul)->EMBER_GEMM_ARGS;

// Prefill: 512 tokens × 2048 through a 5632×2048 weight (Llama "M" feed-forward shape).
void BM_PrefillLinear(benchmark::State& state) {
  constexpr int64_t kRows = 512, kIn = 2048, kOut = 5632;
  set_num_threads(static_cast<int>(state.range(0)));
  Tensor x = random_tensor({kRows, kIn}), w = random_tensor({kOut, kIn});
  std::vector<float> y(kRows * kOut);
  for (auto _ : state) {
    cpu::linear(x.read<float>().value(), kRows, kIn, w.read<float>().value(), cpu::ElementType::f32, nullptr,
                cpu::Activation::none, y.data(), kOut);
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, 2.0 * kRows * kIn * kOut);
}
BENCHMARK(BM_PrefillLinear)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_EigenPrefill(benchmark::State& state) {
  constexpr int64_t kRows = 512, kIn = 2048, kOut = 5632;
  set_num_threads(static_cast<int>(state.range(0)));
  RowMatrix x = RowMatrix::Random(kRows, kIn), w = RowMatrix::Random(kIn, kOut), y(kRows, kOut);
  for (auto _ : state) {
    y.noalias() = x * w;
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, 2.0 * kRows * kIn * kOut);
}
BENCHMARK(BM_EigenPrefill)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Decode: one row through an out×in weight; bytes/s counts weight bytes.
void BM_Gemv(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1);
  const auto type = static_cast<DType>(state.range(2));
  set_num_threads(static_cast<int>(state.range(3)));
  Tensor w = random_tensor({out, in}, type), x = random_tensor({in});
  std::vector<float> y(out);
  const cpu::ElementType element = type == DType::f32 ? cpu::ElementType::f32
                                   : type == DType::f16 ? cpu::ElementType::f16 : cpu::ElementType::bf16;
  for (auto _ : state) {
    cpu::gemv(w.read<std::byte>().value(), element, out, in, x.read<float>().value(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.payload_bytes()));
  set_flops(state, 2.0 * out * in);
  state.SetLabel(std::string(dtype_name(type)));
}
BENCHMARK(BM_Gemv)
    ->ArgNames({"out", "in", "type", "threads"})
    ->ArgsProduct({{4096, 11008}, {4096}, {static_cast<int>(DType::f32), static_cast<int>(DType::f16), static_cast<int>(DType::bf16)}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// y = gelu(x·Wᵀ + b) as one fused node against the matmul → add → gelu chain.
Graph mlp_graph(int64_t rows, int64_t in, int64_t out, bool fused) {
  Graph graph;
  NodeId x = graph.input("x", {rows, in});
  NodeId w = graph.constant("w", random_tensor({out, in}));
  NodeId b = graph.constant("b", random_tensor({out}));
  graph.mark_output(graph.activation(graph.add(graph.matmul(x, w, true), b), Activation::gelu_tanh));
  return fused ? fuse(graph) : graph;
}

void BM_LinearGelu(benchmark::State& state) {
  const int64_t rows = state.range(0), in = 1024, out = 4096;
  const bool fused = state.range(1) != 0;
  set_num_threads(static_cast<int>(state.range(2)));
  Graph graph = mlp_graph(rows, in, out, fused);
  std::vector<Tensor> inputs = {random_tensor({rows, in})};
  Executor executor;
  for (auto _ : state) benchmark::DoNotOptimize(executor.run(graph, inputs));
  set_flops(state, 2.0 * rows * in * out);
  state.SetLabel(fused ? "fused" : "unfused chain");
}
BENCHMARK(BM_LinearGelu)
    ->ArgNames({"rows", "fused", "threads"})
    ->ArgsProduct({{1, 64, 512}, {0, 1}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Softmax(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  set_num_threads(static_cast<int>(state.range(2)));
  Tensor x = random_tensor({rows, cols});
  std::vector<float> y(rows * cols);
  for (auto _ : state) {
    cpu::softmax(x.read<float>().value(), y.data(), rows, cols, 1.0f);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);  // read x, write y
}
BENCHMARK(BM_Softmax)->ArgNames({"rows", "cols", "threads"})->ArgsProduct({{512}, {4096}, {1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_RmsNorm(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  set_num_threads(static_cast<int>(state.range(2)));
  Tensor x = random_tensor({rows, cols}), weight = random_tensor({cols});
  std::vector<float> y(rows * cols);
  for (auto _ : state) {
    cpu::rms_norm(x.read<float>().value(), weight.read<float>().value(), y.data(), rows, cols, 1e-5f);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}
BENCHMARK(BM_RmsNorm)->ArgNames({"rows", "cols", "threads"})->ArgsProduct({{512}, {4096}, {1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ember::bench

BENCHMARK_MAIN();
