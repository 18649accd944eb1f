#include "ember/fusion.h"

#include <optional>

namespace ember {
namespace {

// What a fusion root turns into; input ids are the original graph's.
struct Rewrite {
  Op op;
  std::vector<NodeId> inputs;
  Activation act = Activation::none;
};

class Fuser {
 public:
  explicit Fuser(const Graph& graph) : graph_(graph), uses_(graph.size(), 0), rewrites_(graph.size()), absorbed_(graph.size()) {
    for (const Node& node : graph.nodes())
      for (NodeId input : node.inputs)
        if (input != kInvalidNode) ++uses_[input];
    for (NodeId output : graph.outputs()) ++uses_[output];  // an output is never private
  }

  Graph run(FusionReport* report) {
    // From the last node back, so each root claims the longest chain ending at it.
    for (auto id = static_cast<NodeId>(graph_.size()) - 1; id >= 0; --id)
      if (!absorbed_[id]) plan_root(id);
    return emit(report);
  }

 private:
  bool is(NodeId id, Op op) const { return graph_.node(id).op == op; }
  bool private_to_consumer(NodeId id) const { return uses_[id] == 1 && !absorbed_[id]; }

  bool fusable_matmul(NodeId id) const {
    const Node& node = graph_.node(id);
    return node.op == Op::matmul && node.params.transpose_b && graph_.node(node.inputs[1]).shape.rank() == 2 &&
           private_to_consumer(id);
  }

  // The bias operand when `add` is matmul + a [n] (or [1, .., n]) row vector, else nothing.
  std::optional<NodeId> bias_of(NodeId add, NodeId matmul) const {
    const Node& node = graph_.node(add);
    const NodeId other = node.inputs[0] == matmul ? node.inputs[1] : node.inputs[0];
    const Shape& product = graph_.node(matmul).shape;
    const Shape& bias = graph_.node(other).shape;
    const int64_t n = product[product.rank() - 1];
    if (node.shape != product || bias.elements() != n || bias[bias.rank() - 1] != n) return std::nullopt;
    return other;
  }

  // add(matmul, bias) → linear; true when claimed.
  bool claim_linear(NodeId root, NodeId add, Activation act) {
    for (NodeId side : graph_.node(add).inputs) {
      if (!fusable_matmul(side)) continue;
      auto bias = bias_of(add, side);
      if (!bias) continue;
      const Node& matmul = graph_.node(side);
      rewrites_[root] = Rewrite{Op::linear, {matmul.inputs[0], matmul.inputs[1], *bias}, act};
      absorbed_[side] = true;
      if (add != root) absorbed_[add] = true;
      return true;
    }
    return false;
  }

  void plan_root(NodeId id) {
    const Node& node = graph_.node(id);
    if (node.op == Op::activation) {
      const NodeId x = node.inputs[0];
      const Activation act = node.params.activation;
      if (is(x, Op::add) && private_to_consumer(x)) {
        if (claim_linear(id, x, act)) return;
        if (act == Activation::relu) {
          rewrites_[id] = Rewrite{Op::add_relu, graph_.node(x).inputs};
          absorbed_[x] = true;
        }
        return;
      }
      if (fusable_matmul(x)) {
        const Node& matmul = graph_.node(x);
        rewrites_[id] = Rewrite{Op::linear, {matmul.inputs[0], matmul.inputs[1], kInvalidNode}, act};
        absorbed_[x] = true;
      }
      return;
    }
    if (node.op == Op::add) {
      if (claim_linear(id, id, Activation::none)) return;
      for (int side = 0; side < 2; ++side) {
        const NodeId product = node.inputs[side];
        if (is(product, Op::mul) && private_to_consumer(product)) {
          const Node& mul = graph_.node(product);
          rewrites_[id] = Rewrite{Op::affine, {mul.inputs[0], mul.inputs[1], node.inputs[1 - side]}};
          absorbed_[product] = true;
          return;
        }
      }
    }
  }

  Graph emit(FusionReport* report) {
    Graph fused;
    std::vector<NodeId> mapped(graph_.size(), kInvalidNode);
    const auto map = [&](NodeId id) { return id == kInvalidNode ? kInvalidNode : mapped[id]; };
    for (NodeId id = 0; id < static_cast<NodeId>(graph_.size()); ++id) {
      if (absorbed_[id]) continue;
      const Node& node = graph_.node(id);
      if (node.op == Op::input) {
        mapped[id] = fused.input(node.name, node.shape, node.dtype);
      } else if (const auto& rewrite = rewrites_[id]) {
        const auto& in = rewrite->inputs;
        if (rewrite->op == Op::linear) {
          mapped[id] = fused.linear(map(in[0]), map(in[1]), map(in[2]), rewrite->act);
          if (report) ++report->linear;
        } else if (rewrite->op == Op::add_relu) {
          mapped[id] = fused.add_relu(map(in[0]), map(in[1]));
          if (report) ++report->add_relu;
        } else {
          mapped[id] = fused.affine(map(in[0]), map(in[1]), map(in[2]));
          if (report) ++report->affine;
        }
        fused.set_name(mapped[id], node.name);
      } else {
        Node copy = node;
        for (NodeId& input : copy.inputs) input = map(input);
        mapped[id] = fused.append(std::move(copy));
      }
    }
    for (NodeId output : graph_.outputs()) fused.mark_output(mapped[output]);
    return fused;
  }

  const Graph& graph_;
  std::vector<int> uses_;
  std::vector<std::optional<Rewrite>> rewrites_;
  std::vector<bool> absorbed_;
};

}  // namespace

Graph fuse(const Graph& graph, FusionReport* report) {
  if (!graph.ok()) return graph;
  return Fuser(graph).run(report);
}

}  // namespace ember
