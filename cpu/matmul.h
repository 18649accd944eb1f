// Matrix products of f32 activations with f32/f16/bf16 weights, and with GGUF block
// weights through integer dot products.
//
// bf16 linear weights on a CPU with AVX512-BF16 (active_isa() avx512_bf16) multiply
// activations rounded to bf16 in the many-row GEMM (prefill), as llama.cpp does: products
// of bf16 pairs are exact in f32, so a result differs from the f32 product by at most
// 2^-8 · Σ|w · x| (x's rounding; bf16 keeps 8 significant bits) plus the f32 summation
// error. The one-row GEMV (decode) widens bf16 weights to f32 and keeps x exact: a
// vdpbf16ps GEMV decoded M 5–10% slower (docs/PERFORMANCE.md). EMBER_CPU_ISA=avx512_vnni
// widens in the GEMM too.
#pragma once

#include <cstdint>
#include <span>

#include "cpu/activation.h"
#include "cpu/element_type.h"

namespace ember::cpu {

// C[m, n] = A[m, k] · B.
// A: f32, row-major, leading dimension lda (elements).
// B: b_type; [k, n] row-major when !b_transposed, [n, k] row-major (the layout of linear
//    weights) when b_transposed; leading dimension ldb.
// C: f32 row-major, leading dimension ldc. C must not alias A or B.
struct MatmulArgs {
  const float* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  ElementType b_type = ElementType::f32;
  int64_t ldb = 0;
  bool b_transposed = false;
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
};
void matmul(const MatmulArgs& args);

// How a block-quantized weight's rows are stored: as in the GGUF file, or rearranged by
// interleave_rows (cpu/interleaved_weights.h).
enum class WeightLayout : uint8_t { plain, interleaved };

// y[rows, out] = act(x[rows, in] · W[out, in]ᵀ + bias[out]), all contiguous row-major;
// bias may be null. W may be any ElementType. For the plain types one row goes to gemv
// and several through a GEMM; block types go to quantized_matmul. The bias and
// activation follow in one pass over the output.
void linear(const float* x, int64_t rows, int64_t in_features, const void* weight, ElementType weight_type,
            const float* bias, Activation act, float* y, int64_t out_features,
            WeightLayout layout = WeightLayout::plain);

// y[out] = W[out, in] · x[in] (the decode shape): streams W once, split across threads
// by output rows. Uses the best ISA kernel this CPU runs (see cpu/isa.h).
void gemv(const void* weight, ElementType weight_type, int64_t out_features, int64_t in_features, const float* x,
          float* y);

// y[rows, out] = x[rows, in] · W[out, in]ᵀ for W of a block type (in a multiple of its
// block): x is quantized once to activation_dtype(weight_type) (cpu/quantized_dot.h), then
// integer dot-product tiles of weight rows × activation rows run across threads. Results
// do not depend on the thread count.
void quantized_matmul(const float* x, int64_t rows, int64_t in_features, const void* weight, ElementType weight_type,
                      float* y, int64_t out_features, WeightLayout layout = WeightLayout::plain);

// One of several linears of the same x (a layer's q, k and v; its gate and up):
// y[rows, out_features] = act(x · Wᵀ + bias), bias may be null.
struct LinearOfX {
  const void* weight = nullptr;
  ElementType weight_type = ElementType::q8_0;
  WeightLayout layout = WeightLayout::plain;
  const float* bias = nullptr;
  Activation act = Activation::none;
  float* y = nullptr;
  int64_t out_features = 0;

  // A bare product y = x · Wᵀ.
  static LinearOfX product(const void* weight, ElementType weight_type, float* y, int64_t out_features,
                           WeightLayout layout = WeightLayout::plain) {
    LinearOfX linear;
    linear.weight = weight;
    linear.weight_type = weight_type;
    linear.layout = layout;
    linear.y = y;
    linear.out_features = out_features;
    return linear;
  }
};

// Whether linears_of_one_x takes weights of types `a` and `b` together on `rows` rows of
// x: block types whose activations are quantized to the same format, or, for one row,
// plain types (f32, f16, bf16), whose GEMVs read x as it is.
bool run_together(ElementType a, ElementType b, int64_t rows);

// linear() for each of `linears`, whose types all run_together: the products of all of
// them run in one parallel region (x quantized once for block types), so the threads
// meet once per group instead of once per product. The same bits as linear() for each.
void linears_of_one_x(const float* x, int64_t rows, int64_t in_features, std::span<const LinearOfX> linears);

// The products of linears_of_one_x, before any bias or activation: block types, and
// plain types on one row.
void quantized_matmul_group(const float* x, int64_t rows, int64_t in_features, std::span<const LinearOfX> products);
void gemv_group(const float* x, int64_t in_features, std::span<const LinearOfX> products);

}  // namespace ember::cpu
