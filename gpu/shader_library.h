// The compute shaders of gpu/shaders/, compiled to SPIR-V at build time and embedded in
// the library, with what a pipeline layout needs to know about each.
#pragma once

#include <cstdint>
#include <span>

namespace ember::gpu {

enum class ShaderId : uint32_t { linear_gemv, linear_gemm, linear_gemv_blocks, quantize_rows_q8, linear_gemm_float,
                                  linear_gemm_coopmat, elementwise, rms_norm, layer_norm, rope,
                                  kv_store, attention, attention_tiled, embedding, round_rows_f16, coopmat_probe,
                                  grid_barrier_probe, gemv_chain_probe };

struct ShaderInfo {
  const char* name;
  std::span<const uint32_t> spirv;
  uint32_t storage_buffers;     // bindings 0 .. storage_buffers-1, all storage buffers
  uint32_t push_constant_bytes;
};

const ShaderInfo& shader_info(ShaderId id);

}  // namespace ember::gpu
