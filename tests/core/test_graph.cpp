// The graph builder's checks, the memory planner, and the executor on the CPU backend.
// Kernels have their own tests (tests/cpu); here the point is that nodes reach them
// with the right shapes, strides and batching.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ember/backend.h"
#include "ember/executor.h"
#include "ember/graph.h"
#include "ember/planner.h"
#include "quant/quantize.h"
#include "core/tensor_fixtures.h"
#include "test_util.h"

namespace ember {
namespace {

using testing::random_tensor;

TEST(Graph, InfersShapes) {
  Graph g;
  NodeId x = g.input("x", {2, 3, 5});
  NodeId w = g.input("w", {4, 5}, DType::f16);
  NodeId y = g.matmul(x, w, /*transpose_b=*/true);
  NodeId bias = g.input("bias", {4});
  NodeId z = g.add(y, bias);
  NodeId s = g.sum(z, -1);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g.node(y).shape, (Shape{2, 3, 4}));
  EXPECT_EQ(g.node(z).shape, (Shape{2, 3, 4}));
  EXPECT_EQ(g.node(s).shape, (Shape{2, 3, 1}));
}

TEST(Graph, FirstErrorSticksAndNamesTheNode) {
  Graph g;
  NodeId a = g.input("a", {3, 4});
  NodeId b = g.input("b", {5, 6});
  NodeId bad = g.matmul(a, b);
  EXPECT_EQ(bad, kInvalidNode);
  EXPECT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("inner dimensions 4 and 5 differ"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("node 2"), std::string::npos) << g.status().message();
  const std::string first = g.status().message();
  EXPECT_EQ(g.add(bad, a), kInvalidNode);  // later builders propagate, first message kept
  EXPECT_EQ(g.status().message(), first);
  Executor executor;
  std::vector<Tensor> none;
  EXPECT_FALSE(executor.run(g, none).ok());
}

TEST(Graph, RejectsWrongTypesAndShapes) {
  {
    Graph g;
    g.add(g.input("a", {2, 3}), g.input("b", {4, 3}));
    EXPECT_NE(g.status().message().find("do not broadcast"), std::string::npos) << g.status().message();
  }
  {
    Graph g;
    g.softmax(g.input("ids", {3}, DType::i32));
    EXPECT_NE(g.status().message().find("i32"), std::string::npos) << g.status().message();
  }
  {
    Graph g;
    g.attention(g.input("q", {2, 5, 8}), g.input("k", {4, 2, 8}), g.input("v", {4, 2, 8}), 1.0f, 0);
    EXPECT_FALSE(g.ok());  // 5 heads are not a multiple of 2 kv heads
  }
  {
    Graph g;
    g.rope(g.input("x", {2, 2, 6}), RopeStyle::neox, 5, 10000.0f, 0);
    EXPECT_FALSE(g.ok());  // odd rotary_dims
  }
}

TEST(Executor, ChecksInputsAgainstDeclarations) {
  Graph g;
  NodeId x = g.input("tokens", {2, 3});
  g.mark_output(g.scale(x, 2.0f));
  Executor executor;
  std::vector<Tensor> wrong = {Tensor::empty({3, 2}, DType::f32).value()};
  auto result = executor.run(g, wrong);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("'tokens'"), std::string::npos) << result.status().message();
  std::vector<Tensor> missing;
  EXPECT_FALSE(executor.run(g, missing).ok());
}

TEST(Executor, BroadcastingAndNonContiguousInputs) {
  ember::testing::SeededRng rng;
  Tensor a = random_tensor(rng, {2, 4, 3});
  Tensor a_view = a.transpose(1, 2).value();  // [2, 3, 4], strided
  Tensor b = random_tensor(rng, {3, 1});
  Graph g;
  NodeId x = g.input("a", {2, 3, 4});
  NodeId y = g.input("b", {3, 1});
  g.mark_output(g.sub(x, y));
  g.mark_output(g.div(y, x));
  Executor executor;
  std::vector<Tensor> inputs = {a_view, b};
  auto out = executor.run(g, inputs);
  ASSERT_TRUE(out.ok()) << out.status().message();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_FLOAT_EQ((*out)[0].get({i, j, k}), a.get({i, k, j}) - b.get({j, 0}));  // one rounding: exact op
        EXPECT_FLOAT_EQ((*out)[1].get({i, j, k}), b.get({j, 0}) / a.get({i, k, j}));
      }
}

TEST(Executor, MatmulBatchingAndWeightTypes) {
  ember::testing::SeededRng rng;
  for (DType weight_type : {DType::f32, DType::f16, DType::bf16}) {
    Tensor a = random_tensor(rng, {2, 3, 5});
    Tensor batched_b = random_tensor(rng, {2, 5, 7}, weight_type);
    Tensor shared_w = random_tensor(rng, {7, 5}, weight_type);
    Graph g;
    NodeId x = g.input("a", {2, 3, 5});
    g.mark_output(g.matmul(x, g.constant("b", batched_b)));
    g.mark_output(g.matmul(x, g.constant("w", shared_w), /*transpose_b=*/true));
    Executor executor;
    std::vector<Tensor> inputs = {a};
    auto out = executor.run(g, inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    for (int64_t batch = 0; batch < 2; ++batch)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 7; ++j) {
          double batched = 0, shared = 0, shared_magnitude = 0;
          for (int64_t k = 0; k < 5; ++k) {
            batched += double{a.get({batch, i, k})} * batched_b.get({batch, k, j});
            shared += double{a.get({batch, i, k})} * shared_w.get({j, k});
            shared_magnitude += std::fabs(double{a.get({batch, i, k})} * shared_w.get({j, k}));
          }
          // 5 f32 products: ~1e-6 error. Linear (transposed) bf16 weights may multiply x
          // rounded to bf16 (cpu/matmul.h): up to 2^-8 of Σ|terms| more (bf16's unit
          // roundoff: 8 significant bits).
          const double linear_tolerance = 1e-5 + (weight_type == DType::bf16 ? 0x1p-8 * shared_magnitude : 0.0);
          EXPECT_NEAR((*out)[0].get({batch, i, j}), batched, 1e-5);
          EXPECT_NEAR((*out)[1].get({batch, i, j}), shared, linear_tolerance);
        }
  }
}

TEST(Executor, ReductionsOverEachAxis) {
  ember::testing::SeededRng rng;
  Tensor x = random_tensor(rng, {3, 4, 5});
  for (int axis = 0; axis < 3; ++axis) {
    Graph g;
    NodeId in = g.input("x", {3, 4, 5});
    g.mark_output(g.sum(in, axis));
    g.mark_output(g.max(in, axis));
    Executor executor;
    std::vector<Tensor> inputs = {x};
    auto out = executor.run(g, inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    const Shape& reduced = (*out)[0].shape();
    for (int64_t i = 0; i < reduced[0]; ++i)
      for (int64_t j = 0; j < reduced[1]; ++j)
        for (int64_t k = 0; k < reduced[2]; ++k) {
          double sum = 0;
          float largest = -INFINITY;
          for (int64_t r = 0; r < x.dim(axis); ++r) {
            const float v = axis == 0 ? x.get({r, j, k}) : axis == 1 ? x.get({i, r, k}) : x.get({i, j, r});
            sum += v;
            largest = std::max(largest, v);
          }
          EXPECT_NEAR((*out)[0].get({i, j, k}), sum, 1e-5) << "axis " << axis;  // ≤5 terms of |x|<1
          EXPECT_EQ((*out)[1].get({i, j, k}), largest) << "axis " << axis;     // max is exact
        }
  }
}

TEST(Executor, CausalSoftmaxMasksByQueryRow) {
  ember::testing::SeededRng rng;
  Tensor scores = random_tensor(rng, {2, 3, 5});
  Graph g;
  g.mark_output(g.softmax(g.input("s", {2, 3, 5}), 0.5f, /*causal=*/true, /*position_offset=*/2));
  Executor executor;
  std::vector<Tensor> inputs = {scores};
  auto out = executor.run(g, inputs);
  ASSERT_TRUE(out.ok()) << out.status().message();
  for (int64_t head = 0; head < 2; ++head)
    for (int64_t q = 0; q < 3; ++q) {
      const int64_t visible = 2 + q + 1;
      double total = 0;
      for (int64_t key = 0; key < visible; ++key) total += std::exp(0.5 * scores.get({head, q, key}));
      for (int64_t key = 0; key < 5; ++key) {
        const double expected = key < visible ? std::exp(0.5 * scores.get({head, q, key})) / total : 0.0;
        EXPECT_NEAR((*out)[0].get({head, q, key}), expected, 1e-6);  // f32 exp and sum of ≤5 terms
      }
    }
}

TEST(Executor, EmbeddingIdOutOfRangeIsAnError) {
  Tensor table = Tensor::empty({4, 3}, DType::f32).value();
  ASSERT_TRUE(table.fill(1.0f).ok());
  Tensor ids = Tensor::empty({2}, DType::i32).value();
  ids.set({0}, 1);
  ids.set({1}, 4);
  Graph g;
  g.mark_output(g.embedding(g.constant("token_embd", table), g.input("ids", {2}, DType::i32)));
  Executor executor;
  std::vector<Tensor> inputs = {ids};
  auto out = executor.run(g, inputs);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), ErrorCode::out_of_range);
  EXPECT_NE(out.status().message().find("id 4 at position 1"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("embedding"), std::string::npos);
}

// A run of `g` on `x` by an executor that asks `backend` before the CPU: the outputs, and
// the backend that ran each node, in order (empty where the run failed).
struct PreferredRun {
  std::vector<Tensor> outputs;
  std::vector<std::string_view> ran_on;
};
PreferredRun run_preferring(std::shared_ptr<Backend> backend, const Graph& g, const Tensor& x) {
  Executor executor;
  executor.prefer_backend(std::move(backend));
  auto outputs = executor.run(g, std::span(&x, 1));
  EXPECT_TRUE(outputs) << outputs.status().message();
  if (!outputs) return {};
  PreferredRun run{std::move(outputs.value()), {}};
  for (const NodeTiming& timing : executor.last_timings()) run.ran_on.push_back(timing.backend);
  return run;
}

// A device-like backend for the executor's batching: it takes `scale` nodes, at most
// three at a time, and remembers the batches it was given; when told to fail it hands
// every batch back (ErrorCode::unsupported), as a faulting GPU does.
class BatchingScaleBackend : public Backend {
 public:
  bool fail = false;
  std::vector<size_t> batch_sizes;

  std::string_view name() const override { return "batcher"; }
  bool supports(const Node& node, std::span<const Tensor>) const override { return node.op == Op::scale; }
  Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) override {
    const BatchItem item{&node, inputs, output};
    return run_batch(std::span(&item, 1));
  }
  size_t max_batch() const override { return 3; }
  Status run_batch(std::span<const BatchItem> items) override {
    batch_sizes.push_back(items.size());
    if (fail) return unsupported("the test backend refuses");
    for (const BatchItem& item : items)
      for (int64_t i = 0; i < item.output.elements(); ++i)
        item.output.set_flat(i, item.inputs[0].get_flat(i) * item.node->params.factor);
    return {};
  }
};

TEST(Executor, ConsecutiveNodesOfABatchingBackendRunAsOneBatch) {
  ember::testing::SeededRng rng;
  const Tensor x = random_tensor(rng, {3, 5});
  Graph g;
  const NodeId input = g.input("x", {3, 5});
  NodeId chain = input;
  for (float factor : {2.0f, 3.0f, 5.0f, 7.0f}) chain = g.scale(chain, factor);
  const NodeId sum = g.add(chain, input);  // the CPU's
  g.mark_output(g.scale(sum, 11.0f));
  g.mark_output(chain);
  ASSERT_TRUE(g.ok()) << g.status().message();

  Executor cpu;
  auto expected = cpu.run(g, std::span(&x, 1));
  ASSERT_TRUE(expected) << expected.status().message();
  for (const bool fail : {false, true}) {
    SCOPED_TRACE(fail ? "the backend fails every batch" : "the backend runs");
    auto backend = std::make_shared<BatchingScaleBackend>();
    backend->fail = fail;
    const PreferredRun actual = run_preferring(backend, g, x);
    ASSERT_EQ(actual.outputs.size(), 2u);
    EXPECT_EQ(backend->batch_sizes, (std::vector<size_t>{3, 1, 1}));
    for (size_t o = 0; o < 2; ++o)
      for (int64_t i = 0; i < x.elements(); ++i)
        EXPECT_FLOAT_EQ(actual.outputs[o].get_flat(i), (*expected)[o].get_flat(i)) << "output " << o << " element " << i;
    const std::string_view batcher = fail ? "cpu" : "batcher";
    EXPECT_EQ(actual.ran_on, (std::vector<std::string_view>{batcher, batcher, batcher, batcher, "cpu", batcher}));
  }
}

// A backend that runs each node of a batch as soon as the executor has gathered it, and
// remembers how many items the batch held as it ran each. Told to, it gives its first
// batch back (ErrorCode::unsupported) after `give_back_after` items, as a device that
// faults part way through recording does.
class GatheringScaleBackend : public Backend {
 public:
  size_t give_back_after = 0;
  std::vector<std::vector<size_t>> gathered_when_run;  // per batch

  std::string_view name() const override { return "gatherer"; }
  bool supports(const Node& node, std::span<const Tensor>) const override { return node.op == Op::scale; }
  Status run(const Node&, std::span<const Tensor>, const Tensor&) override {
    return internal_error("the executor hands every batch over as a feed");
  }
  size_t max_batch() const override { return 8; }
  Status run_fed_batch(BatchFeed& feed) override {
    std::vector<size_t>& sizes = gathered_when_run.emplace_back();
    for (size_t ran = 0;; ++ran) {
      if (ran == feed.items().size() && !feed.gather()) return {};
      const BatchItem& item = feed.items()[ran];
      sizes.push_back(feed.items().size());
      for (int64_t i = 0; i < item.output.elements(); ++i)
        item.output.set_flat(i, item.inputs[0].get_flat(i) * item.node->params.factor);
      if (gathered_when_run.size() == 1 && ran + 1 == give_back_after) return unsupported("the test backend gives up");
    }
  }
};

// The executor hands a batch over while it walks the graph for the batch's later nodes:
// the backend runs each node before the next is gathered. A backend that gives its batch
// back part way has its gathered nodes rerun on the CPU, and the walk goes on from there.
TEST(Executor, ABatchIsHandedOverWhileItIsGathered) {
  ember::testing::SeededRng rng;
  const Tensor x = random_tensor(rng, {2, 7});
  Graph g;
  const NodeId input = g.input("x", {2, 7});
  NodeId chain = input;
  for (float factor : {2.0f, 3.0f, 5.0f, 7.0f, 11.0f}) chain = g.scale(chain, factor);
  const NodeId sum = g.add(chain, input);  // the CPU's
  g.mark_output(g.scale(sum, 13.0f));
  ASSERT_TRUE(g.ok()) << g.status().message();

  Executor cpu;
  auto expected = cpu.run(g, std::span(&x, 1));
  ASSERT_TRUE(expected) << expected.status().message();
  for (const size_t give_back_after : {size_t{0}, size_t{2}}) {
    SCOPED_TRACE(give_back_after ? "the backend gives its first batch back after 2 nodes" : "the backend runs all");
    auto backend = std::make_shared<GatheringScaleBackend>();
    backend->give_back_after = give_back_after;
    const PreferredRun actual = run_preferring(backend, g, x);
    ASSERT_EQ(actual.outputs.size(), 1u);
    const std::vector<std::vector<size_t>> expected_sizes =
        give_back_after ? std::vector<std::vector<size_t>>{{1, 2}, {1, 2, 3}, {1}}
                        : std::vector<std::vector<size_t>>{{1, 2, 3, 4, 5}, {1}};
    EXPECT_EQ(backend->gathered_when_run, expected_sizes);
    for (int64_t i = 0; i < x.elements(); ++i)
      EXPECT_FLOAT_EQ(actual.outputs[0].get_flat(i), (*expected)[0].get_flat(i)) << "element " << i;
    const std::string_view first_two = give_back_after ? "cpu" : "gatherer";
    EXPECT_EQ(actual.ran_on, (std::vector<std::string_view>{first_two, first_two, "gatherer", "gatherer", "gatherer",
                                                            "cpu", "gatherer"}));
  }
}

// An executor keeps the memory plan of the graph it ran last for the next run of the same
// graph; a graph of the same ops and shapes whose nodes read other inputs gets a plan of
// its own. With the first graph's plan the second would release n1 after n2, hand its
// buffer to n3, and add n3 to itself.
TEST(Executor, AGraphWhoseNodesReadOtherInputsGetsAPlanOfItsOwn) {
  ember::testing::SeededRng rng;
  const Tensor x = random_tensor(rng, {4, 9});
  const auto chain = [](bool second_reads_x) {
    Graph g;
    const NodeId input = g.input("x", {4, 9});
    const NodeId n1 = g.scale(input, 2.0f);
    const NodeId n2 = g.scale(second_reads_x ? input : n1, 3.0f);
    const NodeId n3 = g.scale(n2, 5.0f);
    g.mark_output(g.add(n3, second_reads_x ? n1 : n3));
    return g;
  };
  const Graph chained = chain(false), forked = chain(true);
  ASSERT_TRUE(chained.ok() && forked.ok());
  Executor executor;
  for (const Graph* graph : {&chained, &chained, &forked, &forked, &chained}) {
    const float factor = graph == &chained ? 60.0f : 17.0f;
    auto out = executor.run(*graph, std::span(&x, 1));
    ASSERT_TRUE(out) << out.status().message();
    for (int64_t i = 0; i < x.elements(); ++i)
      EXPECT_FLOAT_EQ((*out)[0].get_flat(i), factor * x.get_flat(i)) << "element " << i;
  }
}

// A reshape inside a graph is a view of its input's bytes that no backend runs, so a
// batch goes on through it; a reshape that is a graph output gets a buffer of its own.
TEST(Executor, InnerReshapesAreViewsAndOutputReshapesCopies) {
  ember::testing::SeededRng rng;
  const Tensor x = random_tensor(rng, {2, 6});
  Graph g;
  const NodeId input = g.input("x", {2, 6});
  const NodeId doubled = g.scale(input, 2.0f);
  g.mark_output(g.scale(g.reshape(doubled, {3, 4}), 3.0f));
  g.mark_output(g.reshape(g.add(g.reshape(doubled, {12}), g.reshape(input, {12})), {4, 3}));
  ASSERT_TRUE(g.ok()) << g.status().message();

  for (const bool batching : {false, true}) {
    SCOPED_TRACE(batching ? "a batching backend takes the scales" : "the CPU alone");
    auto backend = std::make_shared<BatchingScaleBackend>();
    Executor executor;
    if (batching) executor.prefer_backend(backend);
    auto out = executor.run(g, std::span(&x, 1));
    ASSERT_TRUE(out) << out.status().message();
    std::vector<Op> ran;
    for (const NodeTiming& timing : executor.last_timings()) ran.push_back(timing.op);
    EXPECT_EQ(ran, (std::vector<Op>{Op::scale, Op::scale, Op::add, Op::reshape}));
    if (batching) {
      EXPECT_EQ(backend->batch_sizes, (std::vector<size_t>{2}));
    }
    ASSERT_EQ((*out)[0].shape(), (Shape{3, 4}));
    ASSERT_EQ((*out)[1].shape(), (Shape{4, 3}));
    for (int64_t i = 0; i < x.elements(); ++i) {
      EXPECT_FLOAT_EQ((*out)[0].get_flat(i), 6.0f * x.get_flat(i)) << i;
      EXPECT_FLOAT_EQ((*out)[1].get_flat(i), 3.0f * x.get_flat(i)) << i;
    }
    EXPECT_NE((*out)[1].buffer(), x.buffer());
  }
}

// Block-quantized weights of `shape`, from uniform values.
Tensor quantized_weight(ember::testing::SeededRng& rng, const Shape& shape, DType type) {
  Tensor weight = Tensor::empty(shape, type).value();
  const auto values = rng.uniform(static_cast<size_t>(shape.elements()));
  quant::quantize_row_reference(type, values.data(), weight.write<std::byte>().value(), shape.elements());
  return weight;
}

// The CPU takes a layer's q, k and v as one batch and runs their products in one
// parallel region: each output keeps the bits it has when run alone.
TEST(Executor, CpuRunsLinearsOfOneXTogetherWithTheBitsOfEachAlone) {
  ember::testing::SeededRng rng;
  const Tensor x = random_tensor(rng, {3, 512});
  const Tensor weights[] = {quantized_weight(rng, {40, 512}, DType::q4_k), quantized_weight(rng, {24, 512}, DType::q4_k),
                            quantized_weight(rng, {24, 512}, DType::q6_k)};
  const Tensor bias = random_tensor(rng, {40});
  const auto add_linear = [&](Graph& g, NodeId input, int which) {
    return g.linear(input, g.constant("w" + std::to_string(which), weights[which]),
                    which == 0 ? g.constant("b", bias) : kInvalidNode, which == 1 ? Activation::silu : Activation::none);
  };
  Graph together;
  const NodeId input = together.input("x", {3, 512});
  for (int which = 0; which < 3; ++which) together.mark_output(add_linear(together, input, which));
  Executor executor;
  auto out = executor.run(together, std::span(&x, 1));
  ASSERT_TRUE(out) << out.status().message();
  const auto& timings = executor.last_timings();
  ASSERT_EQ(timings.size(), 3u);
  EXPECT_GT(timings[0].elapsed.count(), 0);
  EXPECT_EQ(timings[1].elapsed.count(), 0) << "k did not run in q's batch";
  EXPECT_EQ(timings[2].elapsed.count(), 0) << "v did not run in q's batch";
  for (int which = 0; which < 3; ++which) {
    Graph alone;
    alone.mark_output(add_linear(alone, alone.input("x", {3, 512}), which));
    auto single = Executor().run(alone, std::span(&x, 1));
    ASSERT_TRUE(single) << single.status().message();
    const Tensor& expected = (*single)[0];
    ASSERT_EQ((*out)[which].shape(), expected.shape());
    EXPECT_EQ(std::memcmp((*out)[which].read<float>().value(), expected.read<float>().value(),
                          static_cast<size_t>(expected.elements()) * sizeof(float)),
              0)
        << which;
  }
}

// A chain of N same-sized ops needs two live buffers at a time, not N.
TEST(Planner, PeakIsTheLargestLiveSetNotTheSum) {
  constexpr int kChain = 10;
  const Shape shape{1 << 16};
  Graph g;
  NodeId x = g.input("x", shape);
  NodeId y = x;
  for (int i = 0; i < kChain; ++i) y = g.scale(y, 1.5f);
  g.mark_output(y);
  const size_t one = output_bytes(g.node(y));
  auto plan = plan_memory(g).value();
  EXPECT_EQ(plan.peak_bytes, 2 * one);
  EXPECT_EQ(plan.total_bytes, kChain * one);

  ember::testing::SeededRng rng;
  std::vector<Tensor> inputs = {random_tensor(rng, shape)};
  Executor executor;
  auto out = executor.run(g, inputs);
  ASSERT_TRUE(out.ok());
  const PoolStats stats = executor.pool().stats();
  EXPECT_EQ(stats.bytes_peak, plan.peak_bytes);  // the executor follows the plan exactly
  EXPECT_EQ(stats.allocations, 2u);
  EXPECT_EQ(stats.reuses, kChain - 2u);
  EXPECT_FLOAT_EQ((*out)[0].get({77}), inputs[0].get({77}) * std::pow(1.5f, kChain));
}

TEST(Planner, OutputsAndSharedInputsStayAlive) {
  Graph g;
  NodeId x = g.input("x", {1024});
  NodeId a = g.scale(x, 2.0f);
  NodeId b = g.scale(a, 3.0f);
  NodeId c = g.mul(a, a);  // a is read twice by one node, and also by b
  NodeId d = g.add(b, c);
  g.mark_output(a);
  g.mark_output(d);
  auto plan = plan_memory(g).value();
  for (const auto& released : plan.release_after)
    for (NodeId id : released) EXPECT_NE(id, a) << "an output must never be released";
  ember::testing::SeededRng rng;
  std::vector<Tensor> inputs = {random_tensor(rng, {1024})};
  Executor executor;
  auto out = executor.run(g, inputs);
  ASSERT_TRUE(out.ok());
  const float v = inputs[0].get({5}) * 2.0f;
  EXPECT_FLOAT_EQ((*out)[0].get({5}), v);
  EXPECT_FLOAT_EQ((*out)[1].get({5}), v * 3.0f + v * v);
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {

// A q4_0 or q8_0 weight of a model is read-only; the CPU may run it from a rearranged
// copy (cpu/interleaved_weights.h) where that is faster. The product must not change by
// a bit against the same weight in a writable buffer (always read as stored), and the
// read-only bytes must stay as they were.
TEST(Executor, ReadOnlyQuantizedWeightsGiveTheBitsOfWritableOnes) {
  ember::testing::SeededRng rng;
  for (DType type : {DType::q4_0, DType::q8_0})
    for (int64_t rows : {1, 5}) {
      const Shape weight_shape{45, 64};
      const std::vector<float> values = rng.normal(static_cast<size_t>(weight_shape.elements()));
      std::vector<std::byte> stored(static_cast<size_t>(row_bytes(type, weight_shape.elements())));
      quant::quantize_row_reference(type, values.data(), stored.data(), weight_shape.elements());
      const std::vector<std::byte> original = stored;
      Tensor read_only =
          Tensor::view(Buffer::wrap(stored.data(), stored.size(), nullptr, /*writable=*/false), weight_shape, type)
              .value();
      Tensor writable = Tensor::empty(weight_shape, type).value();
      std::memcpy(writable.write<std::byte>().value(), stored.data(), stored.size());
      Tensor x = random_tensor(rng, {rows, 64});
      std::vector<Tensor> outputs;
      for (const Tensor& weight : {read_only, writable, read_only}) {
        Graph g;
        g.mark_output(g.linear(g.input("x", {rows, 64}), g.constant("w", weight), kInvalidNode));
        Executor executor;
        std::vector<Tensor> inputs = {x};
        auto out = executor.run(g, inputs);
        ASSERT_TRUE(out.ok()) << out.status().message();
        outputs.push_back((*out)[0]);
      }
      for (const Tensor& out : {outputs[0], outputs[2]})
        EXPECT_EQ(std::memcmp(out.read<float>().value(), outputs[1].read<float>().value(),
                              static_cast<size_t>(rows * 45) * sizeof(float)),
                  0)
            << dtype_name(type) << " rows " << rows;
      EXPECT_EQ(stored, original) << "the read-only weight was modified";
    }
}

}  // namespace
}  // namespace ember
