#include "gpu/grid_barrier_probe.h"

#include <string>

#include "gpu/shader_library.h"

namespace ember::gpu {

Status record_grid_barrier_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& counter,
                                 const DeviceBuffer& slots, const GridBarrierProbe& probe) {
  const std::string what = "grid barrier probe: ";
  if (probe.workgroups == 0) return {ErrorKind::invalid_argument, what + "no workgroups"};
  if (probe.workgroups > batch.context().capabilities().max_workgroup_count[0])
    return {ErrorKind::invalid_argument,
            what + std::to_string(probe.workgroups) + " workgroups exceed the device's grid"};
  if (counter.bytes() < GridBarrierProbe::kCounterBytes || slots.bytes() < probe.slot_bytes())
    return {ErrorKind::invalid_argument, what + "the counter needs " + std::to_string(GridBarrierProbe::kCounterBytes) +
                                             " bytes and the slots " + std::to_string(probe.slot_bytes())};
  auto pipeline = pipelines.get(ShaderId::grid_barrier_probe, {});
  if (!pipeline) return pipeline.status();
  auto set = batch.descriptor_set(*pipeline.value(), {&counter, &slots});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {probe.phases, probe.counter_base},
             .push_words = 2, .groups = {probe.workgroups, 1, 1}});
  return {};
}

}  // namespace ember::gpu
