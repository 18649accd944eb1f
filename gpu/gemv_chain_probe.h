// A probe of what a decode kernel that runs many dependent products in one dispatch
// would gain (docs/PERFORMANCE.md, "Twenty-fourth session"). grid_barrier_probe.h times a
// phase boundary alone; this times it with real work around it: a chain of f16 GEMVs,
// v[p + 1] = W[p] · v[p], each needing all of the one before, recorded either as one
// dispatch whose workgroups meet at a grid barrier between phases, or as one dispatch per
// phase behind a pipeline barrier, as a token's products wait now. The shader reads the
// same bytes either way, so bench-gpu's two figures differ by the boundaries alone.
#pragma once

#include <cstdint>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"
#include "gpu/status.h"

namespace ember::gpu {

struct GemvChainProbe {
  static constexpr uint32_t kMostN = 4096;  // x is staged in shared memory
  static constexpr uint64_t kCounterBytes = 4;
  uint32_t n = 0;           // each W is n x n, n a multiple of 8
  uint32_t phases = 0;      // products in the chain
  uint32_t workgroups = 0;  // of 256 invocations, per dispatch; one dispatch: all must run at once
  bool one_dispatch = false;
  // One dispatch: the counter's value before it; the dispatch adds (phases - 1) x workgroups.
  uint32_t counter_base = 0;

  uint64_t weight_bytes() const { return uint64_t{phases} * n * n * 2; }  // W[0], W[1], ... as f16
  uint64_t vector_bytes() const { return uint64_t{phases + 1} * n * 4; }  // v[0] .. v[phases] as f32
  uint32_t counter_after() const { return one_dispatch ? counter_base + (phases - 1) * workgroups : counter_base; }
};

// Records the chain, behind a barrier: v[0] in `vectors` is read, v[1] .. v[phases]
// written. `counter` (kCounterBytes) is the grid barrier's.
Status record_gemv_chain_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& counter,
                               const DeviceBuffer& weights, const DeviceBuffer& vectors, const GemvChainProbe& probe);

}  // namespace ember::gpu
