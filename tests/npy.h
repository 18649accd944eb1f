// Reads NumPy .npy files of little-endian float32 in C order (what the reference
// scripts save), for comparing ember's outputs with reference arrays.
#pragma once

#include <filesystem>

#include "ember/status.h"
#include "ember/tensor.h"

namespace ember::testing {

// An f32 tensor of the array's shape. Errors name the file: not .npy, another dtype,
// Fortran order, more than 4 dims, data shorter than the shape says.
Result<Tensor> read_npy(const std::filesystem::path& path);

}  // namespace ember::testing
