// Tensors filled from a test's seeded generator.
#pragma once

#include "ember/tensor.h"
#include "test_util.h"

namespace ember::testing {

inline Tensor random_tensor(SeededRng& rng, const Shape& shape, DType type = DType::f32) {
  Tensor t = Tensor::empty(shape, type).value();
  auto values = rng.uniform(static_cast<size_t>(shape.elements()));
  for (int64_t i = 0; i < t.elements(); ++i) t.set_flat(i, values[i]);
  return t;
}

}  // namespace ember::testing
