// The fused linear layer on the GPU: y = act(x · Wᵀ + bias), x f32 [rows, k], W [n, k]
// in f32, f16, q8_0 or q4_0 (the GGUF block bytes, as the file stores them or split,
// gpu/block_layout.h, decoded in the shader), bias f32 [n] or none, y f32 [rows, n].
// One row runs the GEMV shader, more rows the tiled GEMM or, where the device has one,
// the cooperative-matrix (tensor-core) GEMM: for f16 weights from 2 rows on, for q8_0 and
// q4_0 from 64 (a prompt, not a decoded token); a caller may force any path. Against block weights the GEMV and tiled GEMM
// first round x to q8_0 blocks, as the CPU does, into a scratch buffer the FusedLinear
// keeps (grown as needed), and give the CPU's numbers; the cooperative-matrix GEMM
// multiplies f16 roundings of x (made by a pass into the same scratch) and of each
// weight (2^-11 of each product): 5.6-5.9x
// faster than the tiled GEMM at 512 x 14336 -> 4096 on the H200 (docs/PERFORMANCE.md),
// and it moved a 6.5 M model's logits by a few 1e-3 of their range.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gpu/allocator.h"
#include "gpu/block_layout.h"
#include "gpu/command_batch.h"
#include "gpu/descriptor_sets.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

// The shader's WEIGHT_TYPE and ACTIVATION specialization constants take these values.
enum class WeightType : uint32_t { f32, f16, q8_0, q4_0 };
enum class Activation : uint32_t { none, relu, gelu_tanh, silu };
enum class LinearPath { automatic, gemv, gemm, cooperative_matrix };

// Why the cooperative-matrix GEMM cannot take this call on this device, or "" if it can.
std::string cooperative_matrix_shortcoming(const DeviceCapabilities& capabilities, WeightType type, uint32_t k);

// Whether `type` is stored in GGUF blocks of 32 (q8_0, q4_0): k must then be a multiple
// of 32, and the GEMV and tiled GEMM round x to q8_0 first.
constexpr bool is_block(WeightType type) { return type == WeightType::q8_0 || type == WeightType::q4_0; }

// Bytes of one weight row of k weights (k a multiple of 32 for the block types).
uint64_t weight_row_bytes(WeightType type, uint64_t k);

struct LinearArgs {
  const DeviceBuffer* x = nullptr;
  uint32_t rows = 0;
  uint32_t k = 0;
  const DeviceBuffer* weights = nullptr;
  WeightType weight_type = WeightType::f32;
  // Block weights only: split means the buffer holds exactly this matrix's n x k/32
  // blocks, split as one (gpu/block_layout.h).
  BlockLayout weight_layout = BlockLayout::file;
  uint32_t n = 0;
  const DeviceBuffer* bias = nullptr;  // optional
  Activation activation = Activation::none;
  DeviceBuffer* y = nullptr;
  LinearPath path = LinearPath::automatic;
  // Output columns per GEMV workgroup (1 to kMaxGemvColumns); 0 lets gemv_columns(n) choose.
  uint32_t gemv_columns = 0;
  // Rows of y per cooperative-matrix workgroup (128, 64 or 32); 0 lets coopmat_tile_rows choose.
  uint32_t tile_rows = 0;
  // Its columns (128, or 256 with 64 rows or more); 0 lets coopmat_tile_columns choose.
  uint32_t tile_columns = 0;
  // Slices of x and W it keeps in shared memory (1, or 2 to load one while it multiplies
  // the other, where the device's shared memory holds them); 0 takes 2 where it can.
  uint32_t stages = 0;
};

constexpr uint32_t kMaxGemvColumns = 8;  // the GEMV shaders' kMaxColumns

// Where the op that writes a GEMV's x leaves x rounded to q8_0 (FusedLinear::
// prepare_rounded_x): the buffer, and the X_LAYOUT of gpu/shaders/q8_planes.glsl.
struct RoundedX {
  const DeviceBuffer* buffer = nullptr;
  uint32_t layout = 0;
};

// Bytes of one block of 32 rounded values in that layout.
uint64_t rounded_block_bytes(uint32_t layout);
// Whether `op` may round `count` values into `rounded` (nothing to check without one):
// whole blocks of 32, and room for them.
Status check_rounding(const char* op, const std::optional<RoundedX>& rounded, uint64_t count);

// The GEMV's columns per workgroup for n outputs of `type` (measured on the H200,
// docs/PERFORMANCE.md): several for block weights and large n, so that a workgroup reads
// and decodes its x blocks once for all of them; one for float weights, whose GEMV then
// keeps more loads in flight.
uint32_t gemv_columns(WeightType type, uint32_t n);

// The cooperative-matrix GEMM's rows per 128-column tile for `rows` x n outputs: 128
// where that makes about a workgroup per multiprocessor of a large GPU, otherwise fewer.
uint32_t coopmat_tile_rows(uint32_t rows, uint32_t n);
// Its columns per tile of `tile_rows` rows: 256 for products large enough to keep a
// large GPU busy with such tiles (each loads fewer bytes per product), else 128.
uint32_t coopmat_tile_columns(uint32_t rows, uint32_t n, uint32_t tile_rows);
// The shared memory its workgroup takes for a tile shape and a number of stages.
uint32_t coopmat_shared_bytes(uint32_t tile_rows, uint32_t tile_columns, uint32_t stages);

class FusedLinear {
 public:
  static Result<std::unique_ptr<FusedLinear>> create(Context& context, PipelineCache& pipelines, Allocator& allocator);
  FusedLinear(const FusedLinear&) = delete;
  FusedLinear& operator=(const FusedLinear&) = delete;

  // Checks the shapes against the buffers, then adds the layer's dispatches to `batch`
  // (gpu/command_batch.h), which from then on holds this FusedLinear's x scratch: one
  // batch at a time records block-weight layers. A layer that cannot be recorded adds
  // no dispatch.
  Status record(CommandBatch& batch, const LinearArgs& args);
  // For an op about to be recorded that writes x [rows, k]: where to leave x rounded, as
  // the GEMV of a block-weight linear of `type` weights over it recorded right after that
  // op reads it (rows 1, the automatic path), so that the linear records no rounding pass
  // of its own (nor do siblings over the same x). Nothing (nullopt) where that linear
  // would not read such a rounding. The caller must then record exactly one dispatch,
  // which writes it, before the linear.
  Result<std::optional<RoundedX>> prepare_rounded_x(CommandBatch& batch, const DeviceBuffer& x, uint32_t rows,
                                                     uint32_t k, WeightType type);
  // A batch of this one layer, run and waited for.
  Status run(const LinearArgs& args);
  // run(), returning the seconds the device spent on it (Context::run_and_time): what
  // the GPU benchmarks report.
  Result<double> run_timed(const LinearArgs& args);

 private:
  FusedLinear(Context& context, PipelineCache& pipelines, Allocator& allocator, std::unique_ptr<DescriptorSets> sets)
      : context_(context), pipelines_(pipelines), allocator_(allocator), own_sets_(std::move(sets)) {}

  Context& context_;
  PipelineCache& pipelines_;
  Allocator& allocator_;
  std::unique_ptr<DescriptorSets> own_sets_;  // for run()'s batches
  // x rounded to q8_0 for the block shaders, or to f16 for the cooperative-matrix GEMM;
  // the batch recording into it holds the mutex.
  std::mutex quantized_x_mutex_;
  DeviceBuffer quantized_x_;
  // What quantized_x_ will hold once the last recorded dispatch has run: a linear recorded
  // right after it into the same batch, over the same x in the same layout (q, k and v;
  // gate and up), reads it as it is, with no rounding pass and no barrier before it.
  struct QuantizedSource {
    uint64_t batch = 0;  // CommandBatch::serial
    size_t dispatches = 0;
    const DeviceBuffer* x = nullptr;
    uint32_t layout = 0;
    uint64_t values = 0;
    bool operator==(const QuantizedSource&) const = default;
  };
  QuantizedSource quantized_source_;
  // Grows quantized_x_ to `bytes`; the batch keeps the smaller buffer for layers recorded before.
  Status reserve_quantized_x(CommandBatch& batch, uint64_t bytes);
  // The products recorded last, back to back over one x since a barrier: a product over
  // the same x that reads none of their outputs joins them with no barrier of its own.
  struct Siblings {
    uint64_t batch = 0;  // CommandBatch::serial
    size_t dispatches = 0;
    const DeviceBuffer* x = nullptr;
    std::vector<const DeviceBuffer*> outputs;
  };
  std::mutex siblings_mutex_;  // batches may be recorded on several threads
  Siblings siblings_;
};

}  // namespace ember::gpu
