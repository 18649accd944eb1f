#include "ember/executor.h"

#include <algorithm>

#include <fmt/format.h>

namespace ember {

Executor::Executor(std::shared_ptr<BufferPool> pool, std::vector<std::shared_ptr<Backend>> backends)
    : pool_(std::move(pool)), backends_(std::move(backends)) {
  if (backends_.empty()) backends_.push_back(make_cpu_backend());
}

void Executor::prefer_backend(std::shared_ptr<Backend> backend) { backends_.insert(backends_.begin(), std::move(backend)); }

namespace {

std::string node_label(const Node& node, NodeId id) {
  return node.name.empty() ? fmt::format("node {} ({})", id, op_name(node.op))
                           : fmt::format("node {} ({} '{}')", id, op_name(node.op), node.name);
}

}  // namespace

Executor::BackendList::const_iterator Executor::next_backend(BackendList::const_iterator from, const Node& node,
                                                             std::span<const Tensor> inputs) const {
  return std::find_if(from, backends_.cend(), [&](const auto& backend) { return backend->supports(node, inputs); });
}

Result<std::vector<Tensor>> Executor::run(const Graph& graph, std::span<const Tensor> inputs) {
  auto plan = plan_memory(graph);
  if (!plan) return plan.status();
  if (inputs.size() != graph.inputs().size())
    return invalid_argument(fmt::format("graph takes {} inputs; {} given", graph.inputs().size(), inputs.size()));

  std::vector<Tensor> values(graph.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Node& declared = graph.node(graph.inputs()[i]);
    if (!inputs[i].defined() || inputs[i].shape() != declared.shape || inputs[i].dtype() != declared.dtype)
      return invalid_argument(fmt::format("input '{}' must be {}{}; got {}", declared.name, dtype_name(declared.dtype),
                                          declared.shape.str(), inputs[i].defined() ? inputs[i].describe() : "nothing"));
    values[graph.inputs()[i]] = inputs[i];
  }

  timings_.clear();
  std::vector<Tensor> node_inputs;
  for (NodeId id = 0; id < static_cast<NodeId>(graph.size()); ++id) {
    const Node& node = graph.node(id);
    if (node.op == Op::constant) values[id] = node.value;
    if (node.op == Op::input || node.op == Op::constant) continue;

    for (NodeId input : node.inputs) node_inputs.push_back(input == kInvalidNode ? Tensor() : values[input]);
    auto chosen = next_backend(backends_.begin(), node, node_inputs);
    if (chosen == backends_.end()) return unsupported(fmt::format("{}: no backend runs this op", node_label(node, id)));

    auto buffer = pool_->acquire(static_cast<size_t>(row_bytes(node.dtype, node.shape.elements())));
    if (!buffer) return Status(buffer.status().code(), fmt::format("{}: {}", node_label(node, id), buffer.status().message()));
    auto output = Tensor::view(std::move(buffer.value()), node.shape, node.dtype);
    if (!output) return output.status();

    const auto start = std::chrono::steady_clock::now();
    Status status = (*chosen)->run(node, node_inputs, output.value());
    // A device fault hands the node on (ember/backend.h); the CPU, last, always takes it.
    while (status.code() == ErrorCode::unsupported) {
      const auto fallback = next_backend(std::next(chosen), node, node_inputs);
      if (fallback == backends_.end()) break;
      chosen = fallback;
      status = (*chosen)->run(node, node_inputs, output.value());
    }
    timings_.push_back({id, node.op, (*chosen)->name(), std::chrono::steady_clock::now() - start});
    // Dropped now, so the buffers released below return to the pool before the next acquire.
    node_inputs.clear();
    if (!status.ok()) return Status(status.code(), fmt::format("{}: {}", node_label(node, id), status.message()));

    values[id] = std::move(output.value());
    for (NodeId released : plan->release_after[id]) values[released] = Tensor();
  }

  std::vector<Tensor> outputs;
  for (NodeId id : graph.outputs()) outputs.push_back(values[id]);
  return outputs;
}

}  // namespace ember
