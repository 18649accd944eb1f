// Fused and unfused graphs compute the same outputs; fusion lowers node count and peak bytes.
#include <gtest/gtest.h>

#include "ember/executor.h"
#include "ember/fusion.h"
#include "ember/planner.h"
#include "core/tensor_fixtures.h"
#include "test_util.h"

namespace ember {
namespace {

using testing::random_tensor;

size_t count_ops(const Graph& g, Op op) {
  size_t count = 0;
  for (const Node& node : g.nodes()) count += node.op == op;
  return count;
}

// A GPT-2 style MLP with a residual and a norm-like affine tail:
//   h = gelu(x·W1ᵀ + b1); y = relu(h·W2ᵀ + b2 + x) ... written as separate ops.
struct MlpGraph {
  Graph graph;
  std::vector<Tensor> inputs;
};

MlpGraph build_mlp(ember::testing::SeededRng& rng, int64_t rows, int64_t width, int64_t hidden, DType weight_type) {
  MlpGraph mlp;
  Graph& g = mlp.graph;
  NodeId x = g.input("x", {rows, width});
  NodeId w1 = g.constant("w1", random_tensor(rng, {hidden, width}, weight_type));
  NodeId b1 = g.constant("b1", random_tensor(rng, {hidden}));
  NodeId w2 = g.constant("w2", random_tensor(rng, {width, hidden}, weight_type));
  NodeId b2 = g.constant("b2", random_tensor(rng, {width}));
  NodeId gamma = g.constant("gamma", random_tensor(rng, {width}));
  NodeId beta = g.constant("beta", random_tensor(rng, {width}));
  NodeId h = g.activation(g.add(g.matmul(x, w1, true), b1), Activation::gelu_tanh);  // → linear(gelu)
  NodeId y = g.add(g.matmul(h, w2, true), b2);                                        // → linear
  NodeId r = g.activation(g.add(y, x), Activation::relu);                             // → add_relu
  NodeId out = g.add(g.mul(r, gamma), beta);                                          // → affine
  g.mark_output(out);
  mlp.inputs.push_back(random_tensor(rng, {rows, width}));
  return mlp;
}

TEST(Fusion, RewritesTheThreePatterns) {
  ember::testing::SeededRng rng;
  MlpGraph mlp = build_mlp(rng, 5, 24, 40, DType::f32);
  FusionReport report;
  Graph fused = fuse(mlp.graph, &report);
  ASSERT_TRUE(fused.ok()) << fused.status().message();
  EXPECT_EQ(report.linear, 2);
  EXPECT_EQ(report.add_relu, 1);
  EXPECT_EQ(report.affine, 1);
  EXPECT_EQ(count_ops(fused, Op::matmul), 0u);
  EXPECT_EQ(count_ops(fused, Op::activation), 0u);
  EXPECT_EQ(count_ops(fused, Op::linear), 2u);
  EXPECT_LT(fused.size(), mlp.graph.size());
  EXPECT_EQ(fused.size(), mlp.graph.size() - 5);  // 9 op nodes become 4
}

TEST(Fusion, SameOutputsFewerBytes) {
  ember::testing::SeededRng rng;
  for (DType weight_type : {DType::f32, DType::f16}) {
    for (int64_t rows : {1, 7, 33}) {
      MlpGraph mlp = build_mlp(rng, rows, 37, 101, weight_type);
      Graph fused = fuse(mlp.graph);
      Executor plain_executor, fused_executor;
      auto plain = plain_executor.run(mlp.graph, mlp.inputs);
      auto merged = fused_executor.run(fused, mlp.inputs);
      ASSERT_TRUE(plain.ok()) << plain.status().message();
      ASSERT_TRUE(merged.ok()) << merged.status().message();
      const Tensor& a = (*plain)[0];
      const Tensor& b = (*merged)[0];
      for (int64_t i = 0; i < a.elements(); ++i)
        // Same arithmetic in a different grouping (GEMM vs GEMV blocking): f32 rounding only.
        ASSERT_NEAR(b.get_flat(i), a.get_flat(i), 1e-4 * (1 + std::fabs(a.get_flat(i)))) << "rows " << rows;
      const size_t plain_peak = plan_memory(mlp.graph)->peak_bytes;
      const size_t fused_peak = plan_memory(fused)->peak_bytes;
      EXPECT_LT(fused_peak, plain_peak);
      EXPECT_EQ(plain_executor.pool().stats().bytes_peak, plain_peak);
      EXPECT_EQ(fused_executor.pool().stats().bytes_peak, fused_peak);
    }
  }
}

TEST(Fusion, LeavesSharedIntermediatesAlone) {
  Graph g;
  NodeId x = g.input("x", {3, 8});
  NodeId w = g.input("w", {4, 8});
  NodeId bias = g.input("bias", {4});
  NodeId product = g.matmul(x, w, true);
  NodeId biased = g.add(product, bias);
  g.mark_output(product);  // the product is wanted on its own: it cannot disappear into a linear
  g.mark_output(g.activation(biased, Activation::silu));
  NodeId scaled = g.mul(x, x);
  g.mark_output(g.add(scaled, x));
  g.mark_output(g.sub(scaled, x));  // scaled has two readers: no affine
  FusionReport report;
  Graph fused = fuse(g, &report);
  EXPECT_EQ(report.linear, 0);
  EXPECT_EQ(report.affine, 0);
  EXPECT_EQ(fused.size(), g.size());
}

TEST(Fusion, BiasMustBeARowVector) {
  Graph g;
  NodeId x = g.input("x", {3, 8});
  NodeId w = g.input("w", {4, 8});
  NodeId full = g.input("full", {3, 4});  // a per-row addend is not a bias
  g.mark_output(g.add(g.matmul(x, w, true), full));
  FusionReport report;
  Graph fused = fuse(g, &report);
  EXPECT_EQ(report.linear, 0);
  EXPECT_EQ(count_ops(fused, Op::matmul), 1u);
}

}  // namespace
}  // namespace ember
