// A probe for decoding's next step (docs/PERFORMANCE.md, "Twenty-third session"): a
// decoded token is about 75 dispatches, each waiting for the one before, and each wait
// costs the H100 several microseconds whatever the work. grid_barrier_probe.comp makes its
// workgroups meet at a barrier of one atomic counter instead, phase after phase, inside
// one dispatch; bench-gpu times a phase of it against a near-empty dispatch behind a
// barrier (the same shader with no phases), so the cost of a phase boundary either way
// is measured, not assumed. Lavapipe does not run a dispatch's workgroups side by side
// (tests/gpu/test_grid_barrier.cpp): there the probe's barrier figures mean nothing.
#pragma once

#include <cstdint>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"
#include "gpu/status.h"

namespace ember::gpu {

struct GridBarrierProbe {
  static constexpr uint64_t kCounterBytes = 8;  // the arrivals, then the misses
  uint32_t workgroups = 0;  // all must run at once: at most what one wave of the device holds
  uint32_t phases = 0;      // 0: a dispatch that does nothing
  // The arrivals counted before this dispatch: each adds workgroups x phases (mod 2^32).
  uint32_t counter_base = 0;

  uint64_t slot_bytes() const { return uint64_t{workgroups} * sizeof(uint32_t); }
  uint32_t counter_after() const { return counter_base + workgroups * phases; }
};

// Records one dispatch of the probe, behind a barrier. `counter` (kCounterBytes) holds the
// arrivals (counter_base before it) and the misses; `slots` holds slot_bytes(), each at
// most counter_base (mod 2^32 from it) before the dispatch: zero before the first one.
Status record_grid_barrier_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& counter,
                                 const DeviceBuffer& slots, const GridBarrierProbe& probe);

}  // namespace ember::gpu
