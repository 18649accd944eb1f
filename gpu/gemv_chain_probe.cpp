#include "gpu/gemv_chain_probe.h"

#include <string>

#include "gpu/shader_library.h"

namespace ember::gpu {

Status record_gemv_chain_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& counter,
                               const DeviceBuffer& weights, const DeviceBuffer& vectors, const GemvChainProbe& probe) {
  const std::string what = "GEMV chain probe: ";
  if (probe.n == 0 || probe.n % 8 != 0 || probe.n > GemvChainProbe::kMostN)
    return {ErrorKind::invalid_argument, what + "n = " + std::to_string(probe.n) +
                                             " must be a positive multiple of 8 up to " +
                                             std::to_string(GemvChainProbe::kMostN)};
  if (probe.phases == 0 || probe.workgroups == 0) return {ErrorKind::invalid_argument, what + "no phases or no workgroups"};
  if (probe.workgroups > batch.context().capabilities().max_workgroup_count[0])
    return {ErrorKind::invalid_argument,
            what + std::to_string(probe.workgroups) + " workgroups exceed the device's grid"};
  if (counter.bytes() < GemvChainProbe::kCounterBytes || weights.bytes() < probe.weight_bytes() ||
      vectors.bytes() < probe.vector_bytes())
    return {ErrorKind::invalid_argument, what + "the weights need " + std::to_string(probe.weight_bytes()) +
                                             " bytes and the vectors " + std::to_string(probe.vector_bytes())};
  auto pipeline = pipelines.get(ShaderId::gemv_chain_probe, {});
  if (!pipeline) return pipeline.status();
  auto set = batch.descriptor_set(*pipeline.value(), {&counter, &weights, &vectors});
  if (!set) return set.status();
  const uint32_t dispatches = probe.one_dispatch ? 1 : probe.phases;
  const uint32_t phases_each = probe.one_dispatch ? probe.phases : 1;
  for (uint32_t d = 0; d < dispatches; ++d)
    batch.add({.pipeline = pipeline.value(), .set = set.value(),
               .push = {probe.n, d * phases_each, phases_each, probe.counter_base}, .push_words = 4,
               .groups = {probe.workgroups, 1, 1}});
  return {};
}

}  // namespace ember::gpu
