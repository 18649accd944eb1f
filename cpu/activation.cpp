#include "cpu/activation.h"

#include "cpu/threads.h"

namespace ember::cpu {

namespace {

// Below this many elements a parallel region costs more than the work.
constexpr int64_t kMinParallelWork = 16384;

// The activation is a template parameter so its switch leaves the loop and the loop vectorises.
template <Activation kAct>
void activate_all(const float* x, float* y, int64_t count) {
  parallel_simd_for(count, kMinParallelWork, [=](int64_t i) { y[i] = activate(kAct, x[i]); });
}

}  // namespace

void activation(Activation act, const float* x, float* y, int64_t count) {
  switch (act) {
    case Activation::none: return activate_all<Activation::none>(x, y, count);
    case Activation::relu: return activate_all<Activation::relu>(x, y, count);
    case Activation::gelu_tanh: return activate_all<Activation::gelu_tanh>(x, y, count);
    case Activation::gelu_erf: return activate_all<Activation::gelu_erf>(x, y, count);
    case Activation::silu: return activate_all<Activation::silu>(x, y, count);
  }
}

}  // namespace ember::cpu
