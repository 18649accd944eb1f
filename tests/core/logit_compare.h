// Comparisons of logits tensors shared by the model tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "ember/tensor.h"

namespace ember::testing {

// max|got - expected| / max|expected| over all elements; infinity when shapes differ.
inline double relative_error(const Tensor& got, const Tensor& expected) {
  if (got.shape() != expected.shape()) return INFINITY;
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < expected.elements(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got.get_flat(i)) - expected.get_flat(i)));
    scale = std::max(scale, std::fabs(static_cast<double>(expected.get_flat(i))));
  }
  return worst / scale;
}

// ||got - expected|| / ||expected|| over all elements; infinity when shapes differ.
inline double relative_l2_error(const Tensor& got, const Tensor& expected) {
  if (got.shape() != expected.shape()) return INFINITY;
  double difference = 0.0, norm = 0.0;
  for (int64_t i = 0; i < expected.elements(); ++i) {
    const double want = expected.get_flat(i);
    difference += (got.get_flat(i) - want) * (got.get_flat(i) - want);
    norm += want * want;
  }
  return std::sqrt(difference / norm);
}

// A measured error as RecordProperty text.
inline std::string scientific(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

}  // namespace ember::testing
