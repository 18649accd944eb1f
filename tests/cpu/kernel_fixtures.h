// Fixtures shared by the matmul, linear and attention kernel tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/element_type.h"
#include "cpu/isa.h"
#include "cpu/threads.h"
#include "quant/bf16.h"
#include "quant/f16.h"
#include "test_util.h"

namespace ember::testing {

// The kernels' ISA lowered to `isa` (or the best supported level below it) for a scope.
class ForcedIsa {
 public:
  explicit ForcedIsa(cpu::Isa isa) : saved_(cpu::active_isa()) { cpu::force_isa(isa); }
  ~ForcedIsa() { cpu::force_isa(saved_); }
  ForcedIsa(const ForcedIsa&) = delete;
  ForcedIsa& operator=(const ForcedIsa&) = delete;

 private:
  cpu::Isa saved_;
};

// A weight matrix in one storage type, with the f32 values its elements decode to, so the
// reference multiplies exactly the rounded weights the kernel sees.
struct Weights {
  cpu::ElementType type = cpu::ElementType::f32;
  std::vector<float> f32;
  std::vector<uint16_t> bits;
  std::vector<float> decoded;

  const void* data() const { return type == cpu::ElementType::f32 ? static_cast<const void*>(f32.data()) : bits.data(); }
};

inline Weights make_weights(SeededRng& rng, cpu::ElementType type, size_t count) {
  Weights w;
  w.type = type;
  w.decoded = rng.uniform(count);
  if (type == cpu::ElementType::f32) {
    w.f32 = w.decoded;
    return w;
  }
  w.bits.resize(count);
  for (size_t i = 0; i < count; ++i) {
    w.bits[i] = type == cpu::ElementType::f16 ? quant::f32_to_f16(w.decoded[i]) : quant::f32_to_bf16(w.decoded[i]);
    w.decoded[i] = type == cpu::ElementType::f16 ? quant::f16_to_f32(w.bits[i]) : quant::bf16_to_f32(w.bits[i]);
  }
  return w;
}

// What a linear layer's kernels multiply weights of `type` by: x itself, or x rounded to
// bf16 where the GEMM (not the one-row GEMV) runs bf16 weights on vdpbf16ps
// (avx512_bf16; cpu/matmul.h says why). A reference built from these values leaves the
// kernels only their f32 summation error.
inline float activation_as_multiplied(float x, cpu::ElementType weight_type, bool through_gemv) {
  if (through_gemv || weight_type != cpu::ElementType::bf16 || !cpu::has_avx512_bf16(cpu::active_isa())) return x;
  return quant::bf16_to_f32(quant::f32_to_bf16(x));
}

inline std::string type_name(cpu::ElementType type) {
  return type == cpu::ElementType::f32 ? "f32" : type == cpu::ElementType::f16 ? "f16" : "bf16";
}

// Sets the kernel thread count for one scope.
class ThreadCount {
 public:
  explicit ThreadCount(int count) : saved_(cpu::threads()) { cpu::set_threads(count); }
  ~ThreadCount() { cpu::set_threads(saved_); }

 private:
  int saved_;
};

}  // namespace ember::testing
