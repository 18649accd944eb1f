// The fused linear layer on the GPU: y = act(x · Wᵀ + bias), x f32 [rows, k], W [n, k]
// in f32, f16, q8_0 or q4_0 (the GGUF block bytes as stored in the file, decoded in the
// shader), bias f32 [n] or none, y f32 [rows, n]. One row runs the GEMV shader, more rows
// the tiled GEMM; a caller may force either. Against block weights both first round x to
// q8_0 blocks into a scratch buffer the FusedLinear keeps (grown as needed).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>

#include "gpu/allocator.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

// The shader's WEIGHT_TYPE and ACTIVATION specialization constants take these values.
enum class WeightType : uint32_t { f32, f16, q8_0, q4_0 };
enum class Activation : uint32_t { none, relu, gelu_tanh, silu };
enum class LinearPath { automatic, gemv, gemm };

// Bytes of one weight row of k weights (k a multiple of 32 for the block types).
uint64_t weight_row_bytes(WeightType type, uint64_t k);

struct LinearArgs {
  const DeviceBuffer* x = nullptr;
  uint32_t rows = 0;
  uint32_t k = 0;
  const DeviceBuffer* weights = nullptr;
  WeightType weight_type = WeightType::f32;
  uint32_t n = 0;
  const DeviceBuffer* bias = nullptr;  // optional
  Activation activation = Activation::none;
  DeviceBuffer* y = nullptr;
  LinearPath path = LinearPath::automatic;
};

class FusedLinear {
 public:
  static Result<std::unique_ptr<FusedLinear>> create(Context& context, PipelineCache& pipelines, Allocator& allocator);
  FusedLinear(const FusedLinear&) = delete;
  FusedLinear& operator=(const FusedLinear&) = delete;
  ~FusedLinear();

  // Checks the shapes against the buffers, runs the shader and waits for it.
  Status run(const LinearArgs& args);
  // run(), returning the seconds the device spent on it (Context::run_and_time): what
  // the GPU benchmarks report.
  Result<double> run_timed(const LinearArgs& args);

 private:
  FusedLinear(Context& context, PipelineCache& pipelines, Allocator& allocator)
      : context_(context), pipelines_(pipelines), allocator_(allocator) {}

  Result<double> execute(const LinearArgs& args, bool timed);
  Result<VkDescriptorSet> descriptor_set(const Pipeline& pipeline, std::initializer_list<const DeviceBuffer*> buffers);
  void release(VkDescriptorSet set);

  Context& context_;
  PipelineCache& pipelines_;
  Allocator& allocator_;
  // x rounded to q8_0 for the block GEMV; one run at a time uses it.
  std::mutex quantized_x_mutex_;
  DeviceBuffer quantized_x_;
  std::mutex descriptor_mutex_;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
};

}  // namespace ember::gpu
