// The CPU backend: turns graph nodes into calls of the cpu/ kernels.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "core/embedding_ids.h"
#include "core/log.h"
#include "core/rope_params.h"
#include "cpu/attention.h"
#include "cpu/elementwise.h"
#include "cpu/embedding.h"
#include "cpu/interleaved_weights.h"
#include "cpu/isa.h"
#include "cpu/matmul.h"
#include "cpu/norm.h"
#include "cpu/quantize.h"
#include "cpu/reduce.h"
#include "cpu/rope.h"
#include "cpu/softmax.h"
#include "ember/backend.h"
#include "quant/convert.h"

namespace ember {
namespace {

cpu::ElementType element_type(DType type) {
  switch (type) {
    case DType::f16: return cpu::ElementType::f16;
    case DType::bf16: return cpu::ElementType::bf16;
    case DType::q8_0: return cpu::ElementType::q8_0;
    case DType::q4_0: return cpu::ElementType::q4_0;
    case DType::q4_1: return cpu::ElementType::q4_1;
    case DType::q4_k: return cpu::ElementType::q4_k;
    case DType::q6_k: return cpu::ElementType::q6_k;
    default: return cpu::ElementType::f32;
  }
}

// Buffer::rearranged's keys: cpu/interleaved_weights.h's layout; the file's own layout
// copied out of the file mapping.
constexpr uint32_t kInterleavedRows16 = 1;
constexpr uint32_t kAnonymousCopy = 2;

// Weights whose interleaved copy could not be made (out of memory, say): they keep the
// file layout instead of retrying on every product. Compared by owner, so a later buffer
// at a freed one's address is not taken for it.
class KeptPlain {
 public:
  bool contains(const std::shared_ptr<Buffer>& buffer) {
    std::lock_guard lock(mutex_);
    return buffers_.contains(buffer);
  }
  void insert(const std::shared_ptr<Buffer>& buffer) {
    std::lock_guard lock(mutex_);
    buffers_.insert(buffer);
  }

 private:
  std::mutex mutex_;
  std::set<std::weak_ptr<Buffer>, std::owner_less<>> buffers_;
};

// Where the CPU multiplies a weight from: its own bytes (data null), or a copy.
struct CpuWeight {
  const void* data = nullptr;
  cpu::WeightLayout layout = cpu::WeightLayout::plain;
};

// The copy of `weight` the CPU multiplies from, made once per weight buffer: the
// interleaved layout where this CPU runs the type faster that way; otherwise, for the
// pages of a mapped file, the same bytes in anonymous memory, which the kernel backs with
// huge pages. Streamed through the file's 4 KiB pages the weights cost a TLB miss per
// page: M f16 decoded 45 t/s from the file against 54-60 from a copy. Read-only buffers
// only (a model's weights): a writable one could change after its copy was made.
CpuWeight cpu_weight(const Tensor& weight) {
  static KeptPlain kept_plain;
  const cpu::ElementType type = element_type(weight.dtype());
  const std::shared_ptr<Buffer>& buffer = weight.buffer();
  const bool interleave = cpu::interleaving_pays(type, cpu::active_isa());
  if (buffer == nullptr || buffer->writable() || !(interleave || buffer->file_pages()) || weight.rank() != 2 ||
      weight.byte_offset() != 0 || weight.payload_bytes() != buffer->bytes() || kept_plain.contains(buffer))
    return {};
  const int64_t rows = weight.dim(0), in_features = weight.dim(1);
  const size_t copy_bytes = interleave ? static_cast<size_t>(cpu::interleaved_bytes(type, rows, in_features))
                                       : weight.payload_bytes();
  const auto make = [&](const std::byte* plain) -> Result<std::shared_ptr<Buffer>> {
    auto copy = Buffer::allocate(copy_bytes);
    if (!copy) return copy.status();
    auto bytes = copy.value()->host_write();
    if (!bytes) return bytes.status();
    if (interleave) {
      cpu::interleave_rows(type, plain, rows, in_features, bytes.value());
    } else {
      std::memcpy(bytes.value(), plain, copy_bytes);
    }
    return copy;
  };
  auto copy = buffer->rearranged(interleave ? kInterleavedRows16 : kAnonymousCopy, make);
  if (!copy) {
    kept_plain.insert(buffer);
    EMBER_LOG(warn, "keeping a {}x{} weight in the file's pages: {}", rows, in_features, copy.status().message());
    return {};
  }
  auto bytes = copy.value()->host_read();
  if (!bytes) return {};
  return {bytes.value(), interleave ? cpu::WeightLayout::interleaved : cpu::WeightLayout::plain};
}

cpu::Activation cpu_activation(Activation act) { return static_cast<cpu::Activation>(act); }
static_assert(static_cast<int>(cpu::Activation::silu) == static_cast<int>(Activation::silu));

// A contiguous host view of an input plus its first byte, or the error that stopped it.
struct HostInput {
  Tensor tensor;
  const void* data = nullptr;
};

Result<HostInput> host_input(const Tensor& tensor) {
  if (!tensor.defined()) return HostInput{};
  auto dense = tensor.contiguous();
  if (!dense) return dense.status();
  auto bytes = dense->read<std::byte>();
  if (!bytes) return bytes.status();
  return HostInput{std::move(dense.value()), bytes.value()};
}

// The strides that address `tensor` over a 4-D index space `dims` (right-aligned), with
// stride 0 on every axis the tensor broadcasts along.
cpu::StridedInput strided(const Tensor& tensor, const float* data, const cpu::Dims4& dims) {
  cpu::StridedInput input{data, {}};
  const int pad = 4 - tensor.rank();
  for (int axis = 0; axis < tensor.rank(); ++axis)
    input.strides[pad + axis] = (tensor.dim(axis) == 1 && dims[pad + axis] != 1) ? 0 : tensor.stride(axis);
  return input;
}

cpu::Dims4 dims4(const Shape& shape) {
  cpu::Dims4 dims{1, 1, 1, 1};
  for (int axis = 0; axis < shape.rank(); ++axis) dims[4 - shape.rank() + axis] = shape[axis];
  return dims;
}

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  bool supports(const Node&, std::span<const Tensor>) const override { return true; }

  Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) override {
    auto out = output.write<float>();
    if (!out) return out.status();
    switch (node.op) {
      case Op::add: return binary(cpu::BinaryOp::add, cpu::Activation::none, inputs, output, out.value());
      case Op::sub: return binary(cpu::BinaryOp::sub, cpu::Activation::none, inputs, output, out.value());
      case Op::mul: return binary(cpu::BinaryOp::mul, cpu::Activation::none, inputs, output, out.value());
      case Op::div: return binary(cpu::BinaryOp::div, cpu::Activation::none, inputs, output, out.value());
      case Op::add_relu: return binary(cpu::BinaryOp::add, cpu::Activation::relu, inputs, output, out.value());
      case Op::affine: return affine(inputs, output, out.value());
      case Op::cached_attention: return cached_attention(node, inputs, out.value());
      default: break;
    }
    // Every other op reads its inputs contiguous.
    std::vector<HostInput> in;
    for (const Tensor& tensor : inputs) {
      auto host = host_input(tensor);
      if (!host) return host.status();
      in.push_back(std::move(host.value()));
    }
    return run_dense(node, in, out.value());
  }

  // A layer's q, k and v (and its gate and up) read the same x: given together, their
  // products run in one parallel region (cpu::linears_of_one_x), so the threads meet once
  // for the group rather than once per product. The executor hands over such runs of
  // consecutive nodes as a batch; anything else in a batch runs node by node.
  size_t max_batch() const override { return 3; }
  bool joins_batch(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const override {
    return groups_as_linear(node, inputs) && std::none_of(from_batch.begin(), from_batch.end(), [](bool b) { return b; });
  }
  Status run_batch(std::span<const BatchItem> items) override {
    for (size_t first = 0; first < items.size();) {
      size_t end = first + 1;
      if (groups_as_linear(*items[first].node, items[first].inputs))
        while (end < items.size() && joins_linear(items[first], items[end])) ++end;
      if (end - first == 1) {
        EMBER_RETURN_IF_ERROR(run(*items[first].node, items[first].inputs, items[first].output));
      } else {
        EMBER_RETURN_IF_ERROR(run_linears(items.subspan(first, end - first)));
      }
      first = end;
    }
    return {};
  }

 private:
  // A linear of f32 x and a 2-D weight the CPU runs (block-quantized, f32, f16, bf16).
  static bool groups_as_linear(const Node& node, std::span<const Tensor> inputs) {
    return node.op == Op::linear && inputs.size() >= 2 && inputs[0].defined() && inputs[0].dtype() == DType::f32 &&
           inputs[1].defined() && inputs[1].rank() == 2 &&
           (cpu::is_block_quantized(element_type(inputs[1].dtype())) || inputs[1].dtype() == DType::f32 ||
            inputs[1].dtype() == DType::f16 || inputs[1].dtype() == DType::bf16);
  }

  // Whether `item` is a linear of the same x as `first` that cpu::linears_of_one_x runs with it.
  static bool joins_linear(const BatchItem& first, const BatchItem& item) {
    if (!groups_as_linear(*item.node, item.inputs)) return false;
    const Tensor &x = first.inputs[0], &other_x = item.inputs[0];
    return x.buffer() == other_x.buffer() && x.byte_offset() == other_x.byte_offset() && x.shape() == other_x.shape() &&
           x.is_contiguous() && other_x.is_contiguous() && first.inputs[1].dim(1) == item.inputs[1].dim(1) &&
           cpu::run_together(element_type(first.inputs[1].dtype()), element_type(item.inputs[1].dtype()),
                             x.elements() / std::max<int64_t>(1, first.inputs[1].dim(1)));
  }

  static Status run_linears(std::span<const BatchItem> items) {
    auto x = host_input(items[0].inputs[0]);
    if (!x) return x.status();
    const int64_t in_features = items[0].inputs[1].dim(1);
    std::vector<HostInput> held;  // the weights and biases read, alive until the products ran
    held.reserve(2 * items.size());
    std::vector<cpu::LinearOfX> linears;
    for (const BatchItem& item : items) {
      const Tensor& weight = item.inputs[1];
      auto out = item.output.write<float>();
      if (!out) return out.status();
      cpu::LinearOfX linear;
      linear.weight_type = element_type(weight.dtype());
      const CpuWeight copy = cpu_weight(weight);
      linear.weight = copy.data;
      linear.layout = copy.layout;
      if (linear.weight == nullptr) {
        auto plain = host_input(weight);
        if (!plain) return plain.status();
        linear.weight = plain->data;
        held.push_back(std::move(plain.value()));
      }
      if (item.inputs.size() > 2 && item.inputs[2].defined()) {
        auto bias = host_input(item.inputs[2]);
        if (!bias) return bias.status();
        linear.bias = static_cast<const float*>(bias->data);
        held.push_back(std::move(bias.value()));
      }
      linear.act = cpu_activation(item.node->params.activation);
      linear.y = out.value();
      linear.out_features = weight.dim(0);
      linears.push_back(linear);
    }
    const int64_t rows = in_features == 0 ? 0 : x->tensor.elements() / in_features;
    cpu::linears_of_one_x(static_cast<const float*>(x->data), rows, in_features, linears);
    return {};
  }

  static Status binary(cpu::BinaryOp op, cpu::Activation post, std::span<const Tensor> inputs, const Tensor& output,
                       float* out) {
    auto a = inputs[0].read<float>();
    if (!a) return a.status();
    auto b = inputs[1].read<float>();
    if (!b) return b.status();
    const cpu::Dims4 dims = dims4(output.shape());
    cpu::binary(op, strided(inputs[0], a.value(), dims), strided(inputs[1], b.value(), dims), out, dims, post);
    return {};
  }

  static Status affine(std::span<const Tensor> inputs, const Tensor& output, float* out) {
    const cpu::Dims4 dims = dims4(output.shape());
    std::array<cpu::StridedInput, 3> operands;
    for (size_t i = 0; i < 3; ++i) {
      auto data = inputs[i].read<float>();
      if (!data) return data.status();
      operands[i] = strided(inputs[i], data.value(), dims);
    }
    cpu::affine(operands[0], operands[1], operands[2], out, dims);
    return {};
  }

  // Each segment's new keys and values go into rows position..position + tokens of its
  // caches (rounded to the cache's type), then its queries attend over rows 0..position +
  // tokens of them.
  static Status cached_attention(const Node& node, std::span<const Tensor> inputs, float* out) {
    std::array<HostInput, 3> fresh;  // q, k_new, v_new
    for (size_t i = 0; i < fresh.size(); ++i) {
      auto host = host_input(inputs[i]);
      if (!host) return host.status();
      fresh[i] = std::move(host.value());
    }
    const int64_t q_heads = node.shape[1], head_dim = node.shape[2];
    const int64_t kv_heads = inputs[1].dim(1);
    const int64_t q_row = q_heads * head_dim, kv_row = kv_heads * head_dim;
    int64_t first_row = 0;
    for (size_t segment = 0; segment < node.params.segments.size(); ++segment) {
      const AttentionSegment& rows = node.params.segments[segment];
      const Tensor &k_cache = inputs[3 + 2 * segment], &v_cache = inputs[4 + 2 * segment];
      if (!k_cache.is_contiguous() || !v_cache.is_contiguous())
        return invalid_argument(fmt::format("the KV cache must be contiguous; got k {} and v {}", k_cache.describe(),
                                            v_cache.describe()));
      const DType cache_type = k_cache.dtype();
      const auto cache_row_bytes = static_cast<size_t>(row_bytes(cache_type, kv_row));
      std::array<std::byte*, 2> caches{};
      for (size_t i = 0; i < caches.size(); ++i) {
        auto bytes = inputs[3 + 2 * segment + i].write<std::byte>();
        if (!bytes) return bytes.status();
        caches[i] = bytes.value();
        const float* source = static_cast<const float*>(fresh[1 + i].data) + first_row * kv_row;
        std::byte* target = caches[i] + static_cast<size_t>(rows.position) * cache_row_bytes;
        if (cache_type == DType::f32) {
          std::memcpy(target, source, static_cast<size_t>(rows.tokens * kv_row) * sizeof(float));
        } else if (cache_type == DType::f16) {
          quant::f32_to_f16_row(source, reinterpret_cast<uint16_t*>(target), rows.tokens * kv_row);
        } else {
          cpu::quantize_rows(cache_type, source, rows.tokens, kv_row, target);
        }
      }
      cpu::AttentionArgs args;
      args.q = static_cast<const float*>(fresh[0].data) + first_row * q_row;
      args.k = caches[0];
      args.v = caches[1];
      args.kv_type = element_type(cache_type);
      args.out = out + first_row * q_row;
      args.tokens = rows.tokens;
      args.q_heads = q_heads;
      args.head_dim = head_dim;
      args.kv_heads = kv_heads;
      args.kv_length = rows.position + rows.tokens;
      args.position_offset = rows.position;
      args.scale = node.params.factor;
      cpu::attention(args);
      first_row += rows.tokens;
    }
    return {};
  }

  static Status run_dense(const Node& node, const std::vector<HostInput>& in, float* out) {
    const auto f32 = [&](size_t i) { return static_cast<const float*>(in[i].data); };
    const Shape& shape = node.shape;
    const int64_t last = shape.rank() > 0 ? shape[shape.rank() - 1] : 1;
    const int64_t rows = last == 0 ? 0 : shape.elements() / last;
    switch (node.op) {
      case Op::matmul: return matmul(node, in, out);
      case Op::linear: {
        const Tensor& weight = in[1].tensor;
        const int64_t in_features = weight.dim(1);
        const CpuWeight copy = cpu_weight(weight);
        cpu::linear(f32(0), rows, in_features, copy.data != nullptr ? copy.data : in[1].data,
                    element_type(weight.dtype()), f32(2), cpu_activation(node.params.activation), out, weight.dim(0),
                    copy.layout);
        return {};
      }
      case Op::scale: cpu::scale(f32(0), node.params.factor, out, shape.elements()); return {};
      case Op::activation: cpu::activation(cpu_activation(node.params.activation), f32(0), out, shape.elements()); return {};
      case Op::sum: case Op::max: case Op::mean: {
        const Shape& source = in[0].tensor.shape();
        int64_t outer = 1, inner = 1;
        for (int axis = 0; axis < node.params.axis; ++axis) outer *= source[axis];
        for (int axis = node.params.axis + 1; axis < source.rank(); ++axis) inner *= source[axis];
        const auto op = node.op == Op::sum ? cpu::ReduceOp::sum : node.op == Op::max ? cpu::ReduceOp::max : cpu::ReduceOp::mean;
        cpu::reduce(op, f32(0), outer, source[node.params.axis], inner, out);
        return {};
      }
      case Op::softmax: {
        cpu::CausalMask mask;
        mask.enabled = node.params.causal;
        mask.query_rows = shape.rank() >= 2 ? shape[shape.rank() - 2] : 1;
        mask.position_offset = node.params.position_offset;
        cpu::softmax(f32(0), out, rows, last, node.params.factor, mask);
        return {};
      }
      case Op::rms_norm: cpu::rms_norm(f32(0), f32(1), out, rows, last, node.params.eps); return {};
      case Op::layer_norm: cpu::layer_norm(f32(0), f32(1), f32(2), out, rows, last, node.params.eps); return {};
      case Op::rope: {
        const cpu::RopeParams params = rope_params(node.params);
        const auto* positions = in.size() > 1 ? static_cast<const int32_t*>(in[1].data) : nullptr;
        cpu::rope(f32(0), out, shape[0], shape[1], shape[2], positions, params);
        return {};
      }
      case Op::swiglu: cpu::swiglu(f32(0), f32(1), out, shape.elements()); return {};
      case Op::embedding: {
        const Tensor& table = in[0].tensor;
        const auto* ids = static_cast<const int32_t*>(in[1].data);
        EMBER_RETURN_IF_ERROR(check_embedding_ids(ids, shape[0], table.dim(0)));
        cpu::embedding(in[0].data, element_type(table.dtype()), table.dim(1), ids, shape[0], out);
        return {};
      }
      case Op::attention: {
        const Tensor& k = in[1].tensor;
        cpu::AttentionArgs args;
        args.q = f32(0);
        args.k = in[1].data;
        args.v = in[2].data;
        args.kv_type = element_type(k.dtype());
        args.out = out;
        args.tokens = shape[0];
        args.q_heads = shape[1];
        args.head_dim = shape[2];
        args.kv_heads = k.dim(1);
        args.kv_length = k.dim(0);
        args.position_offset = node.params.position_offset;
        args.scale = node.params.factor;
        cpu::attention(args);
        return {};
      }
      // A copy, not a view: every node owns a pooled output buffer, and the rows copied
      // are activations, tiny beside the weights the neighbouring projections stream.
      case Op::reshape:
        std::memcpy(out, in[0].data, static_cast<size_t>(shape.elements()) * sizeof(float));
        return {};
      default: return internal_error(fmt::format("the CPU backend has no kernel for {}", op_name(node.op)));
    }
  }

  static Status matmul(const Node& node, const std::vector<HostInput>& in, float* out) {
    const Tensor &a = in[0].tensor, &b = in[1].tensor;
    const int64_t k = a.dim(a.rank() - 1);
    const int64_t n = node.shape[node.shape.rank() - 1];
    const int64_t m = a.dim(a.rank() - 2);
    const int64_t b_rows = b.dim(b.rank() - 2), b_cols = b.dim(b.rank() - 1);
    cpu::MatmulArgs args;
    args.b_type = element_type(b.dtype());
    args.b_transposed = node.params.transpose_b;
    args.ldb = b_cols;
    args.k = k;
    args.n = n;
    args.lda = k;
    args.ldc = n;
    const auto* a_data = static_cast<const float*>(in[0].data);
    const auto* b_bytes = static_cast<const std::byte*>(in[1].data);
    if (b.rank() == 2) {
      // Shared weights: every batch row of a is one row of a single big product.
      args.a = a_data;
      args.b = b_bytes;
      args.c = out;
      args.m = a.elements() / k;
      cpu::matmul(args);
      return {};
    }
    const int64_t batches = a.elements() / (m * k);
    const size_t b_matrix_bytes = static_cast<size_t>(b_rows * b_cols) * cpu::element_bytes(args.b_type);
    args.m = m;
    for (int64_t batch = 0; batch < batches; ++batch) {
      args.a = a_data + batch * m * k;
      args.b = b_bytes + batch * b_matrix_bytes;
      args.c = out + batch * m * n;
      cpu::matmul(args);
    }
    return {};
  }
};

}  // namespace

std::shared_ptr<Backend> make_cpu_backend() { return std::make_shared<CpuBackend>(); }

}  // namespace ember
