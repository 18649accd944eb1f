// The memory plan of a graph: when each intermediate buffer can be handed back.
//
// A node's output lives from the node that makes it to its last consumer; graph
// outputs live to the end. The executor acquires a node's output from the pool just
// before running it and releases the buffers whose last consumer it was right after,
// so peak memory is the largest set alive at once, not the sum over nodes.
#pragma once

#include <cstddef>
#include <vector>

#include "ember/graph.h"
#include "ember/status.h"

namespace ember {

struct Plan {
  std::vector<std::vector<NodeId>> release_after;  // per node: buffers free once it ran
  size_t peak_bytes = 0;    // largest live set of intermediate bytes (pool bucket sizes)
  size_t total_bytes = 0;   // what one buffer per node without reuse would take
};

Result<Plan> plan_memory(const Graph& graph);

// Bytes the pool hands out for a node's output (its bucket size).
size_t output_bytes(const Node& node);

}  // namespace ember
