// Fusion: rewrites chains of nodes into single nodes that make one pass over memory.
//
//   matmul(x, W, transpose_b) → add(bias[n]) → activation  ⇒  linear(x, W, bias, act)
//   (each step optional after the matmul: matmul→add, matmul→activation fuse too)
//   add → relu   ⇒  add_relu
//   mul → add    ⇒  affine
// A chain fuses only where each intermediate has one consumer and is not a graph
// output, so the fused graph computes the same outputs with fewer nodes and buffers.
#pragma once

#include "ember/graph.h"

namespace ember {

struct FusionReport {
  int linear = 0;
  int add_relu = 0;
  int affine = 0;
};

// The fused copy of `graph` (inputs and outputs in the same order). A graph holding
// an error is returned unchanged.
Graph fuse(const Graph& graph, FusionReport* report = nullptr);

}  // namespace ember
