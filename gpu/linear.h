// The fused linear layer on the GPU: y = act(x · Wᵀ + bias), x f32 [rows, k], W [n, k]
// in f32, f16, q8_0 or q4_0 (the GGUF block bytes as stored in the file, decoded in the
// shader), bias f32 [n] or none, y f32 [rows, n]. One row runs the GEMV shader, more rows
// the tiled GEMM, or for f16 weights the cooperative-matrix (tensor-core) GEMM where the
// device has one; a caller may force any of them. Against block weights the GEMV and
// GEMM first round x to q8_0 blocks into a scratch buffer the FusedLinear keeps (grown
// as needed); the cooperative-matrix GEMM rounds x to f16.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/allocator.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

// The shader's WEIGHT_TYPE and ACTIVATION specialization constants take these values.
enum class WeightType : uint32_t { f32, f16, q8_0, q4_0 };
enum class Activation : uint32_t { none, relu, gelu_tanh, silu };
enum class LinearPath { automatic, gemv, gemm, cooperative_matrix };

// Why the cooperative-matrix GEMM cannot take this call on this device, or "" if it can.
std::string cooperative_matrix_shortcoming(const DeviceCapabilities& capabilities, WeightType type, uint32_t k);

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

class LinearBatch;

class FusedLinear {
 public:
  static Result<std::unique_ptr<FusedLinear>> create(Context& context, PipelineCache& pipelines, Allocator& allocator);
  FusedLinear(const FusedLinear&) = delete;
  FusedLinear& operator=(const FusedLinear&) = delete;
  ~FusedLinear();

  // Checks the shapes against the buffers, runs the shader and waits for it: a batch of one.
  Status run(const LinearArgs& args);
  // run(), returning the seconds the device spent on it (Context::run_and_time): what
  // the GPU benchmarks report.
  Result<double> run_timed(const LinearArgs& args);

 private:
  friend class LinearBatch;
  FusedLinear(Context& context, PipelineCache& pipelines, Allocator& allocator)
      : context_(context), pipelines_(pipelines), allocator_(allocator) {}

  Result<VkDescriptorSet> descriptor_set(const Pipeline& pipeline, std::initializer_list<const DeviceBuffer*> buffers);
  void release(VkDescriptorSet set);

  Context& context_;
  PipelineCache& pipelines_;
  Allocator& allocator_;
  // x rounded to q8_0 for the block shaders; one batch at a time uses it.
  std::mutex quantized_x_mutex_;
  DeviceBuffer quantized_x_;
  std::mutex descriptor_mutex_;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
};

struct RecordedLinear;

// Several linear layers recorded into one command buffer and submitted once: each add()
// checks its layer and prepares it, run() records them all, submits and waits. They run
// in the order added, each seeing the results of those before it, so a chain of layers
// makes one round trip instead of one each. A batch holds the FusedLinear's scratch
// buffer from construction to destruction: one batch per FusedLinear at a time (a
// thread must not run() the FusedLinear while it holds a batch of it).
class LinearBatch {
 public:
  explicit LinearBatch(FusedLinear& linear);
  LinearBatch(const LinearBatch&) = delete;
  LinearBatch& operator=(const LinearBatch&) = delete;
  ~LinearBatch();

  // A layer that cannot be added leaves the batch as it was.
  Status add(const LinearArgs& args);
  Status run();
  // run(), returning the seconds the device spent on the whole batch.
  Result<double> run_timed();
  size_t size() const;

 private:
  void record(VkCommandBuffer commands) const;

  FusedLinear& linear_;
  std::unique_lock<std::mutex> scratch_lock_;
  std::vector<RecordedLinear> recorded_;
  std::vector<DeviceBuffer> retired_scratch_;  // outgrown scratch that recorded layers still use
};

}  // namespace ember::gpu
