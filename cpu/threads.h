// The one thread-count setting of the CPU kernels. Every kernel runs its OpenMP regions
// with exactly threads() threads and a static schedule, so a given thread count always
// splits work the same way and gives bit-identical results.
#pragma once

namespace ember::cpu {

void set_threads(int count);  // count < 1 means "all cores"
int threads();

}  // namespace ember::cpu
