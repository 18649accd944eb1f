// Kernel benchmarks: f32 GEMM (Eigen alone vs through ember's graph and executor), the
// prefill shape, decode GEMVs per weight type, fused linear vs its unfused chain,
// softmax, rms_norm, attention and the fork/join cost of a tiny parallel op. Every case takes the thread count as its last argument.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <random>
#include <vector>

#include "cpu/attention.h"
#include "cpu/elementwise.h"
#include "cpu/matmul.h"
#include "cpu/norm.h"
#include "cpu/softmax.h"
#include "cpu/threads.h"
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

// swiglu over M's ffn width: one decoded token (5632 elements, below the parallel
// threshold) and a 512-token prompt.
void BM_Swiglu(benchmark::State& state) {
  const int64_t count = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  Tensor gate = random_tensor({count}), up = random_tensor({count});
  std::vector<float> y(static_cast<size_t>(count));
  for (auto _ : state) {
    cpu::swiglu(gate.read<float>().value(), up.read<float>().value(), y.data(), count);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * count * 12);  // read gate and up, write y
}
BENCHMARK(BM_Swiglu)->ArgNames({"elements", "threads"})->ArgsProduct({{5632, 512 * 5632}, {1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);

// Causal attention over an f16 cache, M's shape (16 query heads, 4 kv heads, head_dim
// 128): a 512-token prompt from position 0, and one decoded token after 511 cached ones
// or after 63 (a tg128 run's middle).
// FLOP/s counts the score and value multiply-adds of the visible keys only.
void BM_Attention(benchmark::State& state) {
  const int64_t tokens = state.range(0), cached = state.range(1);
  set_num_threads(static_cast<int>(state.range(2)));
  constexpr int64_t kQHeads = 16, kKvHeads = 4, kHeadDim = 128;
  const int64_t kv_length = cached + tokens;
  Tensor q = random_tensor({tokens, kQHeads, kHeadDim});
  Tensor k = random_tensor({kv_length, kKvHeads, kHeadDim}, DType::f16);
  Tensor v = random_tensor({kv_length, kKvHeads, kHeadDim}, DType::f16);
  std::vector<float> out(static_cast<size_t>(tokens * kQHeads * kHeadDim));
  const cpu::AttentionArgs args{.q = q.read<float>().value(),
                                .k = k.read<std::byte>().value(),
                                .v = v.read<std::byte>().value(),
                                .kv_type = cpu::ElementType::f16,
                                .out = out.data(),
                                .tokens = tokens,
                                .q_heads = kQHeads,
                                .kv_heads = kKvHeads,
                                .head_dim = kHeadDim,
                                .kv_length = kv_length,
                                .position_offset = cached,
                                .scale = 0.088f};
  for (auto _ : state) {
    cpu::attention(args);
    benchmark::DoNotOptimize(out.data());
  }
  double visible_pairs = 0.0;
  for (int64_t t = 0; t < tokens; ++t) visible_pairs += static_cast<double>(cached + t + 1);
  set_flops(state, 4.0 * visible_pairs * kQHeads * kHeadDim);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"tokens", "cached", "threads"})
    ->Args({512, 0, 1})
    ->Args({512, 0, 2})
    ->Args({1, 511, 1})
    ->Args({1, 511, 2})
    ->Args({1, 63, 1})
    ->Args({1, 63, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The fork/join cost every parallel kernel pays: a tiny op (scaling 4096 floats, under a
// microsecond of work) run as a parallel region of the kernel thread count. A decoded
// token runs a few hundred such regions, so this must stay far below a microsecond-scale
// budget per op (issue #5 sets 5 µs).
void BM_ForkJoinTinyOp(benchmark::State& state) {
  constexpr int64_t kCount = 4096;
  const int thread_count = static_cast<int>(state.range(0));
  set_num_threads(thread_count);
  std::vector<float> x(kCount, 1.0f);
  for (auto _ : state) {
#pragma omp parallel for num_threads(cpu::threads()) schedule(static)
    for (int64_t i = 0; i < kCount; ++i) x[i] *= 1.0000001f;
    benchmark::DoNotOptimize(x.data());
  }
}
BENCHMARK(BM_ForkJoinTinyOp)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ember::bench

BENCHMARK_MAIN();
