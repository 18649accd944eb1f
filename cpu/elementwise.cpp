#include "cpu/elementwise.h"

#include <algorithm>
#include <functional>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// Below this many elements forking threads costs more than the work itself.
constexpr int64_t kMinParallelWork = 16384;
// Rows are cut into blocks of this many elements so that one long row (a plain
// same-shape op after coalescing) still spreads over the threads.
constexpr int64_t kBlockElements = 4096;

// The shape and operand strides after merging every pair of neighbouring axes that all
// operands walk contiguously across. A same-shape op becomes one long row and a bias
// broadcast becomes [rows, channels], so the inner loop gets long unit-stride runs.
// The output is contiguous, so it can always merge and needs no strides of its own.
template <size_t Operands>
struct Layout {
  Dims4 dims{1, 1, 1, 1};
  std::array<Dims4, Operands> strides{};
};

template <size_t Operands>
Layout<Operands> coalesce(const Dims4& dims, const std::array<Dims4, Operands>& strides) {
  Layout<Operands> layout;
  int target = 3;
  bool target_used = false;
  for (int axis = 3; axis >= 0; --axis) {
    if (dims[axis] == 1) continue;  // a unit axis never moves any operand
    if (target_used) {
      bool mergeable = true;
      for (size_t k = 0; k < Operands; ++k) {
        mergeable = mergeable && strides[k][axis] == layout.strides[k][target] * layout.dims[target];
      }
      if (mergeable) {
        layout.dims[target] *= dims[axis];
        continue;
      }
      --target;
    }
    layout.dims[target] = dims[axis];
    for (size_t k = 0; k < Operands; ++k) layout.strides[k][target] = strides[k][axis];
    target_used = true;
  }
  return layout;
}

// Calls row_block(operand offsets, output offset, count) for every block of every row
// of the layout, in parallel.
template <size_t Operands, typename RowBlock>
void for_each_row_block(const Layout<Operands>& layout, RowBlock&& row_block) {
  const auto& dims = layout.dims;
  const int64_t cols = dims[3];
  const int64_t rows = dims[0] * dims[1] * dims[2];
  const int64_t blocks_per_row = (cols + kBlockElements - 1) / kBlockElements;
  const int64_t items = rows * blocks_per_row;
#pragma omp parallel for num_threads(threads()) schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t row = item / blocks_per_row;
    const int64_t begin = (item % blocks_per_row) * kBlockElements;
    const int64_t index2 = row % dims[2];
    const int64_t index1 = row / dims[2] % dims[1];
    const int64_t index0 = row / (dims[2] * dims[1]);
    std::array<int64_t, Operands> offsets;
    for (size_t k = 0; k < Operands; ++k) {
      const Dims4& s = layout.strides[k];
      offsets[k] = index0 * s[0] + index1 * s[1] + index2 * s[2] + begin * s[3];
    }
    row_block(offsets, row * cols + begin, std::min(kBlockElements, cols - begin));
  }
}

// Unit-stride and broadcast-scalar operands get their own loops so they vectorise;
// any other stride takes the general gather loop.
template <typename Op>
void binary_row(Op op, const float* a, int64_t a_step, const float* b, int64_t b_step, float* out, int64_t count) {
  if (a_step == 1 && b_step == 1) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = op(a[i], b[i]);
  } else if (a_step == 1 && b_step == 0) {
    const float b_value = *b;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = op(a[i], b_value);
  } else if (a_step == 0 && b_step == 1) {
    const float a_value = *a;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = op(a_value, b[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) out[i] = op(a[i * a_step], b[i * b_step]);
  }
}

// The activation is a template argument so its switch folds away and the loop vectorises.
template <Activation act>
void activate_row(float* row, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) row[i] = activate(act, row[i]);
}

void activate_row(Activation act, float* row, int64_t count) {
  switch (act) {
    case Activation::none: return;
    case Activation::relu: return activate_row<Activation::relu>(row, count);
    case Activation::gelu_tanh: return activate_row<Activation::gelu_tanh>(row, count);
    case Activation::gelu_erf: return activate_row<Activation::gelu_erf>(row, count);
    case Activation::silu: return activate_row<Activation::silu>(row, count);
  }
}

template <typename Op>
void binary_with(Op op, StridedInput a, StridedInput b, float* out, const Dims4& dims, Activation post) {
  const Layout<2> layout = coalesce<2>(dims, {a.strides, b.strides});
  const int64_t a_step = layout.strides[0][3];
  const int64_t b_step = layout.strides[1][3];
  for_each_row_block(layout, [&](const std::array<int64_t, 2>& offsets, int64_t out_offset, int64_t count) {
    float* row = out + out_offset;
    binary_row(op, a.data + offsets[0], a_step, b.data + offsets[1], b_step, row, count);
    activate_row(post, row, count);  // while the row is still in L1
  });
}

void affine_row(const float* x, int64_t x_step, const float* scale, int64_t scale_step, const float* shift,
                int64_t shift_step, float* out, int64_t count) {
  if (x_step == 1 && scale_step == 1 && shift_step == 1) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = x[i] * scale[i] + shift[i];
  } else if (x_step == 1 && scale_step == 0 && shift_step == 0) {
    const float scale_value = *scale;
    const float shift_value = *shift;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = x[i] * scale_value + shift_value;
  } else {
    for (int64_t i = 0; i < count; ++i) out[i] = x[i * x_step] * scale[i * scale_step] + shift[i * shift_step];
  }
}

}  // namespace

void binary(BinaryOp op, StridedInput a, StridedInput b, float* out, const Dims4& dims, Activation post) {
  switch (op) {
    case BinaryOp::add: return binary_with(std::plus<float>(), a, b, out, dims, post);
    case BinaryOp::sub: return binary_with(std::minus<float>(), a, b, out, dims, post);
    case BinaryOp::mul: return binary_with(std::multiplies<float>(), a, b, out, dims, post);
    case BinaryOp::div: return binary_with(std::divides<float>(), a, b, out, dims, post);
  }
}

void affine(StridedInput x, StridedInput scale, StridedInput shift, float* out, const Dims4& dims) {
  const Layout<3> layout = coalesce<3>(dims, {x.strides, scale.strides, shift.strides});
  const int64_t x_step = layout.strides[0][3];
  const int64_t scale_step = layout.strides[1][3];
  const int64_t shift_step = layout.strides[2][3];
  for_each_row_block(layout, [&](const std::array<int64_t, 3>& offsets, int64_t out_offset, int64_t count) {
    affine_row(x.data + offsets[0], x_step, scale.data + offsets[1], scale_step, shift.data + offsets[2], shift_step,
               out + out_offset, count);
  });
}

void scale(const float* x, float factor, float* y, int64_t count) {
  parallel_simd_for(count, kMinParallelWork, [=](int64_t i) { y[i] = x[i] * factor; });
}

void swiglu(const float* gate, const float* up, float* y, int64_t count) {
  parallel_simd_for(count, kMinParallelWork,
                    [=](int64_t i) { y[i] = activate(Activation::silu, gate[i]) * up[i]; });
}

}  // namespace ember::cpu
