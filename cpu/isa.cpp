#include "cpu/isa.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

namespace ember::cpu {
namespace {

Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::scalar;
}

Isa from_environment(Isa detected) {
  const char* value = std::getenv("EMBER_CPU_ISA");
  if (value == nullptr) return detected;
  std::string_view name(value);
  Isa wanted = detected;
  if (name == "scalar") wanted = Isa::scalar;
  if (name == "avx2") wanted = Isa::avx2;
  if (name == "avx512") wanted = Isa::avx512;
  return std::min(wanted, detected);
}

std::atomic<int> g_forced{-1};

}  // namespace

Isa detected_isa() {
  static const Isa detected = detect();
  return detected;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa from_env = from_environment(detected_isa());
  return from_env;
}

void force_isa(Isa isa) { g_forced.store(static_cast<int>(std::min(isa, detected_isa())), std::memory_order_relaxed); }

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

}  // namespace ember::cpu
