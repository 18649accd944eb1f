#include "ember/executor.h"

#include <algorithm>
#include <memory>

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

// The batch being gathered, handed to its backend as it grows: `gather_one` walks the
// graph to the next node that joins (appending it to `items`) or finds the batch complete.
template <typename GatherOne>
class GatheringFeed final : public BatchFeed {
 public:
  GatheringFeed(const std::vector<BatchItem>& items, GatherOne& gather_one) : items_(items), gather_one_(gather_one) {}
  std::span<const BatchItem> items() const override { return items_; }
  bool gather() override { return gather_one_(); }

 private:
  const std::vector<BatchItem>& items_;
  GatherOne& gather_one_;
};

}  // namespace

Executor::BackendList::const_iterator Executor::next_backend(BackendList::const_iterator from, const Node& node,
                                                             std::span<const Tensor> inputs) const {
  return std::find_if(from, backends_.cend(), [&](const auto& backend) { return backend->supports(node, inputs); });
}

Result<const Plan*> Executor::plan_for(const Graph& graph) {
  const auto planned = [&] {
    if (!plan_ || planned_nodes_.size() != graph.size() || planned_outputs_ != graph.outputs()) return false;
    for (size_t i = 0; i < graph.size(); ++i) {
      const Node& node = graph.nodes()[i];
      const PlannedNode& was = planned_nodes_[i];
      if (node.op != was.op || node.dtype != was.dtype || !(node.shape == was.shape) || node.inputs != was.inputs)
        return false;
    }
    return true;
  };
  if (graph.ok() && planned()) return &*plan_;
  plan_.reset();
  auto plan = plan_memory(graph);
  if (!plan) return plan.status();
  planned_nodes_.clear();
  for (const Node& node : graph.nodes()) planned_nodes_.push_back({node.op, node.inputs, node.shape, node.dtype});
  planned_outputs_ = graph.outputs();
  plan_ = std::move(plan.value());
  return &*plan_;
}

Result<std::vector<Tensor>> Executor::run(const Graph& graph, std::span<const Tensor> inputs) {
  auto planned = plan_for(graph);
  if (!planned) return planned.status();
  const Plan& plan = *planned.value();
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
  // One entry per node of the batch being run: its id and its inputs, kept alive (and so
  // out of the pool) until the whole batch has run, in case it must run again elsewhere.
  struct Pending {
    NodeId id;
    std::vector<Tensor> inputs;
  };
  std::vector<Pending> batch;
  std::vector<BatchItem> items;
  // Which nodes the batch being gathered makes, and, for one candidate, which of its
  // inputs those are (Backend::joins_batch); allocated once per run.
  const std::unique_ptr<bool[]> made_by_batch(new bool[graph.size()]());
  size_t most_inputs = 0;
  for (NodeId id = 0; id < static_cast<NodeId>(graph.size()); ++id)
    most_inputs = std::max(most_inputs, graph.node(id).inputs.size());
  const std::unique_ptr<bool[]> from_batch(new bool[std::max<size_t>(most_inputs, 1)]);
  const auto inputs_of = [&](const Node& node) {
    std::vector<Tensor> gathered;
    for (NodeId input : node.inputs) gathered.push_back(input == kInvalidNode ? Tensor() : values[input]);
    return gathered;
  };
  // A reshape of a contiguous value that is not a graph output is a view of the same
  // bytes: no backend runs it, so it costs no copy on the CPU and no dispatch in a device
  // batch. (An output keeps a buffer of its own, apart from the graph's inputs.)
  const std::unique_ptr<bool[]> is_output(new bool[graph.size()]());
  for (NodeId output : graph.outputs()) is_output[output] = true;
  const auto reshaped_in_place = [&](NodeId id) {
    const Node& node = graph.node(id);
    if (node.op != Op::reshape || is_output[id] || node.inputs.size() != 1 || node.inputs[0] == kInvalidNode)
      return false;
    const Tensor& input = values[node.inputs[0]];
    if (!input.defined() || !input.is_contiguous() || input.dtype() != node.dtype) return false;
    auto viewed = input.reshape(node.shape);
    if (!viewed) return false;
    values[id] = std::move(viewed.value());
    return true;
  };
  const auto release_after = [&](NodeId ran) {
    for (NodeId released : plan.release_after[ran]) values[released] = Tensor();
  };
  const auto output_for = [&](NodeId id) -> Result<Tensor> {
    const Node& node = graph.node(id);
    auto buffer = pool_->acquire(static_cast<size_t>(row_bytes(node.dtype, node.shape.elements())));
    if (!buffer) return Status(buffer.status().code(), fmt::format("{}: {}", node_label(node, id), buffer.status().message()));
    return Tensor::view(std::move(buffer.value()), node.shape, node.dtype);
  };

  for (NodeId id = 0; id < static_cast<NodeId>(graph.size());) {
    const Node& node = graph.node(id);
    if (node.op == Op::constant) values[id] = node.value;
    if (node.op == Op::input || node.op == Op::constant) {
      ++id;
      continue;
    }
    if (reshaped_in_place(id)) {
      release_after(id++);
      continue;
    }
    batch.clear();
    batch.push_back({id, inputs_of(node)});
    auto chosen = next_backend(backends_.begin(), node, batch.back().inputs);
    if (chosen == backends_.end()) return unsupported(fmt::format("{}: no backend runs this op", node_label(node, id)));
    auto output = output_for(id);
    if (!output) return output.status();
    values[id] = std::move(output.value());

    // The nodes after it that would go to the same backend join it, up to what it takes:
    // those that no backend before it takes, and that it takes knowing which inputs the
    // batch itself makes. They are gathered as the backend asks for them, so a device may
    // start on the first nodes while the host walks the graph for the rest.
    made_by_batch[id] = true;
    items.clear();
    items.push_back({&node, batch.back().inputs, values[id], is_output[id]});
    NodeId next = id + 1;
    const size_t max_batch = (*chosen)->max_batch();
    bool complete = false;
    Status gathering;  // an output the pool could not give
    const auto gather_one = [&]() {
      for (; !complete && next < static_cast<NodeId>(graph.size()) && batch.size() < max_batch; ++next) {
        const Node& candidate = graph.node(next);
        if (candidate.op == Op::constant) values[next] = candidate.value;
        if (candidate.op == Op::input || candidate.op == Op::constant) continue;
        if (reshaped_in_place(next)) {
          made_by_batch[next] = made_by_batch[candidate.inputs[0]];
          continue;
        }
        std::vector<Tensor> candidate_inputs = inputs_of(candidate);
        if (std::any_of(backends_.cbegin(), chosen, [&](const auto& b) { return b->supports(candidate, candidate_inputs); }))
          break;
        for (size_t i = 0; i < candidate.inputs.size(); ++i)
          from_batch[i] = candidate.inputs[i] != kInvalidNode && made_by_batch[candidate.inputs[i]];
        if (!(*chosen)->joins_batch(candidate, candidate_inputs,
                                    std::span<const bool>(from_batch.get(), candidate.inputs.size())))
          break;
        auto candidate_output = output_for(next);
        if (!candidate_output) {
          gathering = candidate_output.status();
          break;
        }
        made_by_batch[next] = true;
        values[next] = std::move(candidate_output.value());
        batch.push_back({next, std::move(candidate_inputs)});
        items.push_back({&candidate, batch.back().inputs, values[next], is_output[next]});
        ++next;
        return true;
      }
      complete = true;
      return false;
    };
    GatheringFeed feed(items, gather_one);

    const auto start = std::chrono::steady_clock::now();
    Status status = (*chosen)->run_fed_batch(feed);
    std::fill(made_by_batch.get() + id, made_by_batch.get() + next, false);
    if (!gathering.ok()) return gathering;
    if (status.code() == ErrorCode::unsupported) {
      // A device fault hands the nodes on (ember/backend.h), one by one; the CPU, last,
      // always takes them.
      for (size_t i = 0; i < items.size(); ++i) {
        const BatchItem& item = items[i];
        const auto item_start = std::chrono::steady_clock::now();
        auto fallback = chosen;
        do {
          fallback = next_backend(std::next(fallback), *item.node, item.inputs);
          if (fallback == backends_.end()) break;
          status = (*fallback)->run(*item.node, item.inputs, item.output);
        } while (status.code() == ErrorCode::unsupported);
        const std::string_view ran_on = fallback != backends_.end() ? (*fallback)->name() : (*chosen)->name();
        // The failed attempt counts on the first node.
        timings_.push_back({batch[i].id, item.node->op, ran_on,
                            std::chrono::steady_clock::now() - (i == 0 ? start : item_start)});
        if (!status.ok())
          return Status(status.code(), fmt::format("{}: {}", node_label(*item.node, batch[i].id), status.message()));
      }
    } else {
      // A batch's wall time is counted on its first node: the device ran them as one. Its
      // device time too, unless the backend timed each node's part.
      const std::span<const std::chrono::nanoseconds> each =
          status.ok() ? (*chosen)->last_item_device_times() : std::span<const std::chrono::nanoseconds>();
      const bool timed_apart = each.size() == items.size();
      timings_.push_back({id, node.op, (*chosen)->name(), std::chrono::steady_clock::now() - start,
                          timed_apart ? each[0]
                          : status.ok() ? (*chosen)->last_device_time()
                                        : std::chrono::nanoseconds(0),
                          status.ok() ? (*chosen)->last_preparation_time() : std::chrono::nanoseconds(0)});
      for (size_t i = 1; i < batch.size(); ++i)
        timings_.push_back({batch[i].id, items[i].node->op, (*chosen)->name(), std::chrono::nanoseconds(0),
                            timed_apart ? each[i] : std::chrono::nanoseconds(0)});
      if (!status.ok()) return Status(status.code(), fmt::format("{}: {}", node_label(node, id), status.message()));
    }

    // Dropped now, so the buffers released below return to the pool before the next acquire.
    items.clear();
    batch.clear();
    for (NodeId ran = id; ran < next; ++ran) release_after(ran);
    id = next;
  }

  std::vector<Tensor> outputs;
  for (NodeId id : graph.outputs()) outputs.push_back(values[id]);
  return outputs;
}

}  // namespace ember
