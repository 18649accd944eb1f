#include "gpu/coopmat_probe.h"

#include <string>

#include "gpu/shader_library.h"

namespace ember::gpu {

double CoopmatProbe::flops() const {
  constexpr double kFragmentProductFlops = 2.0 * 16 * 16 * 16;
  constexpr double kProductsPerIteration = 16;  // 4 x fragments times 4 W fragments
  return static_cast<double>(workgroups) * kSubgroups * iterations * kProductsPerIteration * kFragmentProductFlops;
}

Status record_coopmat_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& sums,
                            const CoopmatProbe& probe) {
  if (probe.workgroups == 0 || probe.iterations == 0)
    return {ErrorKind::invalid_argument, "cooperative-matrix probe: workgroups and iterations must be positive"};
  if (probe.workgroups > batch.context().capabilities().max_workgroup_count[0])
    return {ErrorKind::invalid_argument, "cooperative-matrix probe: " + std::to_string(probe.workgroups) +
                                             " workgroups exceed the device's grid"};
  if (sums.bytes() < probe.sum_bytes())
    return {ErrorKind::invalid_argument, "cooperative-matrix probe: the sums buffer holds " +
                                             std::to_string(sums.bytes()) + " bytes, not " +
                                             std::to_string(probe.sum_bytes())};
  if (!batch.context().capabilities().fp16_cooperative_matrix())
    return {ErrorKind::unavailable,
            "cooperative-matrix probe: " + batch.context().capabilities().name + " has no fp16 cooperative matrices"};
  auto pipeline = pipelines.get(ShaderId::coopmat_probe, {probe.from_shared ? 1u : 0u});
  if (!pipeline) return pipeline.status();
  auto set = batch.descriptor_set(*pipeline.value(), {&sums});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {probe.iterations}, .push_words = 1,
             .groups = {probe.workgroups, 1, 1}});
  return {};
}

}  // namespace ember::gpu
