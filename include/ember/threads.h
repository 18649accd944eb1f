// The number of threads every CPU kernel uses (OpenMP, and Eigen's GEMM).
#pragma once

namespace ember {

// count < 1 means one per core. Results are bit-identical for a given count.
void set_num_threads(int count);
int num_threads();

}  // namespace ember
