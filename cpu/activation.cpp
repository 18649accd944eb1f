#include "cpu/activation.h"

#include "cpu/threads.h"

namespace ember::cpu {

void activation(Activation act, const float* x, float* y, int64_t count) {
#pragma omp parallel for num_threads(threads()) schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = activate(act, x[i]);
}

}  // namespace ember::cpu
