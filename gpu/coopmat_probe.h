// A ceiling probe for the tensor cores (coopmat_probe.comp): how fast the only
// cooperative-matrix path Debian 12's compilers reach (GL_NV_cooperative_matrix 16x16x16
// fp16 fragments) multiplies, with no global memory in the loop. bench-gpu reports it
// beside torch's fp16 rate, so the GEMM (linear_gemm_coopmat.comp) is held to what its
// instrument can do as well as to torch.
#pragma once

#include <cstdint>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"
#include "gpu/status.h"

namespace ember::gpu {

struct CoopmatProbe {
  static constexpr uint32_t kSubgroups = 4;          // per workgroup, of 32 invocations
  static constexpr uint32_t kSumFloats = 16 * 16;    // one 16 x 16 f32 fragment per subgroup
  uint32_t workgroups = 0;
  uint32_t iterations = 0;  // each: 16 fragment products per subgroup
  bool from_shared = false; // the fragments reloaded from shared memory every iteration

  double flops() const;
  uint64_t sum_bytes() const { return uint64_t{workgroups} * kSubgroups * kSumFloats * sizeof(float); }
};

// Records the probe. `sums` (sum_bytes()) receives, for every subgroup, a 16 x 16
// fragment whose every element equals probe.iterations when the products were right.
// A device without the NV cooperative matrices fails with ErrorKind::unavailable.
Status record_coopmat_probe(CommandBatch& batch, PipelineCache& pipelines, const DeviceBuffer& sums,
                            const CoopmatProbe& probe);

}  // namespace ember::gpu
