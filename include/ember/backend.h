// Backend: something that can compute graph nodes (the CPU now; Vulkan later).
//
// The executor asks each backend in turn whether it supports a node and runs it on the
// first that does; the CPU backend supports every op, so it is always last. run() gets
// the input tensors in the node's input order (an absent optional input is an
// undefined Tensor) and a contiguous f32 output tensor of the node's shape to fill.
// Errors come back as Status; run() never throws.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "ember/graph.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual bool supports(const Node& node) const = 0;
  virtual Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) = 0;
};

std::shared_ptr<Backend> make_cpu_backend();

}  // namespace ember
