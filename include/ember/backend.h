// Backend: something that can compute graph nodes (the CPU, a Vulkan device).
//
// The executor asks each backend in turn whether it supports a node with these inputs
// and runs it on the first that does; the CPU backend supports every op, so it is always
// last. supports() and run() get the input tensors in the node's input order (an absent
// optional input is an undefined Tensor); run() also gets a contiguous f32 output tensor
// of the node's shape to fill. Errors come back as Status; run() never throws.
//
// A backend that accepted a node but cannot finish it for a reason of its own device (a
// fault, not a bad node) returns ErrorCode::unsupported, having said why in the log: the
// executor then runs the node on the next backend that supports it, with the same inputs.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string_view>

#include "ember/graph.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

// One node of a batch: the node, its inputs in order, the output to fill.
struct BatchItem {
  const Node* node = nullptr;
  std::span<const Tensor> inputs;
  Tensor output;
  // A graph output, which the caller reads on the host: a device backend may copy it back
  // within the same submission rather than leave it for a download of its own.
  bool graph_output = false;
};

// A batch handed to a backend while the executor is still gathering it: a device backend
// can start the device on the first nodes while the host walks the graph for the rest.
class BatchFeed {
 public:
  virtual ~BatchFeed() = default;
  // The items gathered so far, in order; valid until the next gather().
  virtual std::span<const BatchItem> items() const = 0;
  // Gathers one more item (true), or finds the batch complete (false, from then on).
  virtual bool gather() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual bool supports(const Node& node, std::span<const Tensor> inputs) const = 0;
  virtual Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) = 0;

  // A device backend may take several consecutive nodes at once and run them as one
  // unit (one GPU submission): the most it takes, 1 if it cannot. run_batch() runs the
  // items in order, each seeing the outputs of those before it; on a device fault it
  // returns ErrorCode::unsupported and the executor reruns every item elsewhere.
  virtual size_t max_batch() const { return 1; }
  // Whether the node may join a batch this backend is being given: as supports(), except
  // that inputs with from_batch[i] set are outputs of earlier nodes of that batch, not
  // yet computed (a device backend may take a small op because its input will be on the
  // device, where supports() would want it there already).
  virtual bool joins_batch(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const {
    (void)from_batch;
    return supports(node, inputs);
  }
  virtual Status run_batch(std::span<const BatchItem> items) {
    for (const BatchItem& item : items) EMBER_RETURN_IF_ERROR(run(*item.node, item.inputs, item.output));
    return {};
  }
  // run_batch() over a batch still being gathered. The items it runs are feed.items() once
  // it returns: a backend may stop gathering early (on a fault), and the executor then
  // gathers the rest into later batches. This default gathers them all first.
  virtual Status run_fed_batch(BatchFeed& feed) {
    while (feed.gather()) {
    }
    const std::span<const BatchItem> items = feed.items();
    return items.size() == 1 ? run(*items[0].node, items[0].inputs, items[0].output) : run_batch(items);
  }
  // How long the device itself was busy with the last successful run or run_batch, where
  // the backend can tell (a GPU's timestamps); zero otherwise. The rest of a call's wall
  // time is the host's: recording, submitting, waiting, copying.
  virtual std::chrono::nanoseconds last_device_time() const { return std::chrono::nanoseconds(0); }
  // The same split over the items of the last successful run_batch (or the one node of a
  // run), one per item in order, where the backend timed them apart; empty otherwise.
  virtual std::span<const std::chrono::nanoseconds> last_item_device_times() const { return {}; }
  // The host's part of the last successful run or run_batch before the device could
  // start, where the backend can tell: making buffers current on the device, descriptor
  // sets, recording the commands it submits first. What remains of the call beyond it and
  // last_device_time() is submitting, waiting for the device and taking its results.
  virtual std::chrono::nanoseconds last_preparation_time() const { return std::chrono::nanoseconds(0); }
};

std::shared_ptr<Backend> make_cpu_backend();

}  // namespace ember
