// The small random Hugging Face model of each family that the family tests run, on the
// CPU against the reference (core/test_model_families.cpp) and offloaded to a Vulkan
// device against the CPU (gpu/test_vulkan_model_families.cpp).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "model_builder.h"

namespace ember::testing {

struct FamilyCase {
  std::string name;
  HfModelSpec spec;
};

// gtest names a failing parameter by this instead of its bytes.
void PrintTo(const FamilyCase& c, std::ostream* out);

HfModelSpec make_spec(Architecture architecture, int64_t vocab, int64_t hidden, int64_t heads, int64_t kv_heads,
                      int64_t ffn);

// Odd vocabularies and FFN sizes, head sizes that are not powers of two, and both
// config.json layouts, so no size or key happens to line up by accident.
std::vector<FamilyCase> family_cases();

// The case called `name`; fails the calling test when there is none.
HfModelSpec family(const std::string& name);

}  // namespace ember::testing
