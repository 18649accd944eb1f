#include "cpu/matmul.h"

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/isa.h"
#include "cpu/threads.h"
#include "cpu/x86/gemm_kernels.h"
#include "quant/convert.h"

namespace ember::cpu {
namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstStridedMap = Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using StridedMap = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstPanelMap = Eigen::Map<const RowMajor>;

// A widened panel of 16-bit B holds about this many floats (4 MiB): it stays in L3 for
// the GEMM, which blocks it for L1/L2 itself. Measured on Zen 5, 1 MiB panels made
// 64×11008×4096 f16 products ~1.4× slower: more, smaller GEMM calls, each with its own
// thread start-up and repacking of A.
constexpr int64_t kPanelFloats = 1024 * 1024;
// Each GEMM call repacks A, so a panel spans at least this many output columns to keep
// that repacking small next to the multiply (2 · 64 flops per packed element of A).
constexpr int64_t kMinPanelColumns = 64;
constexpr int64_t kPanelColumnStep = 16;

ConstStridedMap map_a(const MatmulArgs& args) { return {args.a, args.m, args.k, Eigen::OuterStride<>(args.lda)}; }
StridedMap map_c(const MatmulArgs& args, int64_t first_column, int64_t columns) {
  return {args.c + first_column, args.m, columns, Eigen::OuterStride<>(args.ldc)};
}

void matmul_f32(const MatmulArgs& args) {
  const auto* b = static_cast<const float*>(args.b);
  if (args.b_transposed) {
    const ConstStridedMap b_rows(b, args.n, args.k, Eigen::OuterStride<>(args.ldb));
    map_c(args, 0, args.n).noalias() = map_a(args) * b_rows.transpose();
  } else {
    const ConstStridedMap b_rows(b, args.k, args.n, Eigen::OuterStride<>(args.ldb));
    map_c(args, 0, args.n).noalias() = map_a(args) * b_rows;
  }
}

int64_t panel_columns(int64_t k, int64_t n) {
  const int64_t fitting = kPanelFloats / k / kPanelColumnStep * kPanelColumnStep;
  return std::min(n, std::max(kMinPanelColumns, fitting));
}

// Widens output columns [first, first + columns) of 16-bit B into `panel`: [columns, k]
// row-major when B is transposed, else [k, columns].
void widen_panel(const MatmulArgs& args, int64_t first, int64_t columns, float* panel) {
  const auto widen_row = args.b_type == ElementType::f16 ? quant::f16_to_f32_row : quant::bf16_to_f32_row;
  const auto* b = static_cast<const uint16_t*>(args.b);
  const int64_t panel_rows = args.b_transposed ? columns : args.k;
  const int64_t row_length = args.b_transposed ? args.k : columns;
#pragma omp parallel for num_threads(threads()) schedule(static)
  for (int64_t row = 0; row < panel_rows; ++row) {
    const uint16_t* source = args.b_transposed ? b + (first + row) * args.ldb : b + row * args.ldb + first;
    widen_row(source, panel + row * row_length, row_length);
  }
}

// 16-bit B never exists whole in f32: each panel of output columns is widened, multiplied
// while it is still in cache, and overwritten by the next.
void matmul_16bit(const MatmulArgs& args) {
  const int64_t step = panel_columns(args.k, args.n);
  std::vector<float> panel(static_cast<size_t>(step * args.k));
  for (int64_t first = 0; first < args.n; first += step) {
    const int64_t columns = std::min(step, args.n - first);
    widen_panel(args, first, columns, panel.data());
    if (args.b_transposed) {
      const ConstPanelMap b_panel(panel.data(), columns, args.k);
      map_c(args, first, columns).noalias() = map_a(args) * b_panel.transpose();
    } else {
      const ConstPanelMap b_panel(panel.data(), args.k, columns);
      map_c(args, first, columns).noalias() = map_a(args) * b_panel;
    }
  }
}

}  // namespace

void matmul(const MatmulArgs& args) {
  if (args.m <= 0 || args.n <= 0) return;
  if (args.k <= 0) {
    map_c(args, 0, args.n).setZero();
    return;
  }
  // The decode shape: one activation row against linear weights is a pure weight stream.
  if (args.m == 1 && args.b_transposed && args.ldb == args.k) {
    gemv(args.b, args.b_type, args.n, args.k, args.a, args.c);
    return;
  }
  // Linear layers (B transposed) run ember's own tiled kernel where the CPU has AVX-512
  // (with bf16 weights and AVX512-BF16, its vdpbf16ps variant, which rounds A to bf16);
  // everything else goes to Eigen. Eigen keeps its own thread count, which anything linked
  // in may change: pin it to threads(). Its GEMM then runs one OpenMP region of at most
  // that many threads (fewer for products too small to split) and stays serial when called
  // inside a parallel region.
  const Isa isa = active_isa();
  if (args.b_transposed && args.b_type == ElementType::bf16 && has_avx512_bf16(isa)) {
    x86::gemm_bf16_avx512bf16(args.a, args.lda, static_cast<const uint16_t*>(args.b), args.ldb, args.c, args.ldc,
                              args.m, args.n, args.k);
    return;
  }
  if (args.b_transposed && has_avx512(isa)) {
    x86::gemm_weights_avx512(args.a, args.lda, args.b, args.b_type, args.ldb, args.c, args.ldc, args.m, args.n,
                             args.k);
    return;
  }
  Eigen::setNbThreads(threads());
  if (args.b_type == ElementType::f32) {
    matmul_f32(args);
  } else {
    matmul_16bit(args);
  }
}

}  // namespace ember::cpu
