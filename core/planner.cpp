#include "ember/planner.h"

#include <algorithm>

#include <fmt/format.h>

#include "ember/buffer_pool.h"

namespace ember {

namespace {
bool owns_buffer(const Node& node) { return node.op != Op::input && node.op != Op::constant; }
}  // namespace

size_t output_bytes(const Node& node) {
  return BufferPool::bucket_size(static_cast<size_t>(row_bytes(node.dtype, node.shape.elements())));
}

Result<Plan> plan_memory(const Graph& graph) {
  if (!graph.ok()) return graph.status();
  const auto count = static_cast<NodeId>(graph.size());
  constexpr NodeId kNeverReleased = -2;
  std::vector<NodeId> last_use(graph.size(), kInvalidNode);
  for (NodeId id = 0; id < count; ++id)
    for (NodeId input : graph.node(id).inputs)
      if (input != kInvalidNode) last_use[input] = id;
  for (NodeId output : graph.outputs()) last_use[output] = kNeverReleased;

  Plan plan;
  plan.release_after.resize(graph.size());
  size_t live = 0;
  for (NodeId id = 0; id < count; ++id) {
    const Node& node = graph.node(id);
    if (!owns_buffer(node)) continue;
    const size_t bytes = output_bytes(node);
    live += bytes;
    plan.total_bytes += bytes;
    plan.peak_bytes = std::max(plan.peak_bytes, live);
    // A node nobody reads (and not an output) is released right after it runs.
    if (last_use[id] == kInvalidNode) last_use[id] = id;
    auto& released = plan.release_after[id];
    for (NodeId input : node.inputs)
      if (input != kInvalidNode && last_use[input] == id && owns_buffer(graph.node(input)) &&
          std::find(released.begin(), released.end(), input) == released.end()) {
        released.push_back(input);
        live -= output_bytes(graph.node(input));
      }
    if (last_use[id] == id) {
      released.push_back(id);
      live -= bytes;
    }
  }
  return plan;
}

}  // namespace ember
