#include "cpu/threads.h"

#include <omp.h>

#include <Eigen/Core>

namespace ember::cpu {
namespace {
int g_threads = 0;
}

void set_threads(int count) {
  g_threads = count < 1 ? omp_get_num_procs() : count;
  Eigen::setNbThreads(g_threads);
}

int threads() {
  if (g_threads == 0) set_threads(0);
  return g_threads;
}

}  // namespace ember::cpu
