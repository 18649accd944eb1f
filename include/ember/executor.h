// Executor: runs a graph, node by node, on the first backend that supports each node
// with its inputs (a device backend hands a node on to the next when its device faults,
// ember/backend.h). Each timing names the backend that ran its node.
//
// Intermediate buffers come from the executor's pool and go back to it as the memory
// plan says (ember/planner.h). One executor runs one graph at a time; use one per
// thread. Per-op timings of the last run are kept for profiling.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ember/backend.h"
#include "ember/buffer_pool.h"
#include "ember/graph.h"
#include "ember/planner.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

struct NodeTiming {
  NodeId node = kInvalidNode;
  Op op = Op::input;
  std::string_view backend;
  std::chrono::nanoseconds elapsed{0};
  // The part of `elapsed` the device was busy (Backend::last_device_time), on the first
  // node of a batch like elapsed; zero for the CPU. Where the backend timed a batch's
  // nodes apart (Backend::last_item_device_times), each node carries its own part.
  std::chrono::nanoseconds device{0};
  // The part of `elapsed` the host spent preparing the device's work
  // (Backend::last_preparation_time), on the first node of a batch; zero for the CPU.
  std::chrono::nanoseconds preparation{0};
};

class Executor {
 public:
  // With no backends given, the CPU backend alone.
  explicit Executor(std::shared_ptr<BufferPool> pool = std::make_shared<BufferPool>(),
                    std::vector<std::shared_ptr<Backend>> backends = {});

  // Backends added here are asked before those already present (the CPU stays last).
  void prefer_backend(std::shared_ptr<Backend> backend);

  // inputs: one tensor per graph input, in the order the inputs were declared, each of
  // the declared shape and dtype. Returns the graph outputs in mark_output order.
  Result<std::vector<Tensor>> run(const Graph& graph, std::span<const Tensor> inputs);

  BufferPool& pool() { return *pool_; }
  const std::vector<NodeTiming>& last_timings() const { return timings_; }

 private:
  using BackendList = std::vector<std::shared_ptr<Backend>>;
  // The first backend from `from` on that supports the node, or the end.
  BackendList::const_iterator next_backend(BackendList::const_iterator from, const Node& node,
                                           std::span<const Tensor> inputs) const;

  // The memory plan for `graph`: the last one made while the graph is the same as far as
  // a plan depends on it (each node's op, inputs, dtype and shape, and the outputs). A
  // model decodes token after token with one graph (Model::reusable_graph), and planning
  // its 200 nodes anew took 24 us of a 0.72 ms token on the H200 (docs/PERFORMANCE.md).
  Result<const Plan*> plan_for(const Graph& graph);

  std::shared_ptr<BufferPool> pool_;
  BackendList backends_;
  std::vector<NodeTiming> timings_;
  struct PlannedNode {
    Op op;
    std::vector<NodeId> inputs;
    Shape shape;
    DType dtype;
  };
  std::vector<PlannedNode> planned_nodes_;
  std::vector<NodeId> planned_outputs_;
  std::optional<Plan> plan_;
};

}  // namespace ember
