#include "cpu/isa.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

namespace ember::cpu {
namespace {

constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx_vnni, Isa::avx512, Isa::avx512_vnni, Isa::avx512_bf16};

// Clang 14's __builtin_cpu_supports knows neither "f16c", "avxvnni" nor "avx512bf16", so
// those bits come from CPUID itself; each is only used together with avx2 or avx512f,
// whose check already covers the OS saving the vector registers.
enum CpuidRegister { eax, ebx, ecx, edx };
bool cpuid_bit(unsigned leaf, unsigned subleaf, CpuidRegister reg, unsigned bit) {
  unsigned registers[4] = {};
  if (!__get_cpuid_count(leaf, subleaf, &registers[eax], &registers[ebx], &registers[ecx], &registers[edx])) return false;
  return (registers[reg] >> bit) & 1u;
}

bool cpu_runs(Isa isa) {
  __builtin_cpu_init();
  const bool f16c = cpuid_bit(1, 0, ecx, 29);
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return avx2;
    case Isa::avx_vnni: return avx2 && cpuid_bit(7, 1, eax, 4);
    case Isa::avx512: return avx512;
    case Isa::avx512_vnni: return avx512 && __builtin_cpu_supports("avx512vnni");
    case Isa::avx512_bf16: return avx512 && __builtin_cpu_supports("avx512vnni") && cpuid_bit(7, 1, eax, 5);
  }
  return false;
}

Isa highest_supported_at_most(Isa ceiling) {
  Isa best = Isa::scalar;
  for (Isa isa : kAllIsas)
    if (isa <= ceiling && isa_supported(isa)) best = isa;
  return best;
}

Isa from_environment(Isa detected) {
  const char* value = std::getenv("EMBER_CPU_ISA");
  if (value == nullptr) return detected;
  for (Isa isa : kAllIsas)
    if (isa_name(isa) == value) return highest_supported_at_most(isa);
  return detected;
}

std::atomic<int> g_forced{-1};

}  // namespace

bool isa_supported(Isa isa) {
  static const bool supported[] = {cpu_runs(Isa::scalar), cpu_runs(Isa::avx2), cpu_runs(Isa::avx_vnni),
                                   cpu_runs(Isa::avx512), cpu_runs(Isa::avx512_vnni), cpu_runs(Isa::avx512_bf16)};
  return supported[static_cast<int>(isa)];
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas)
    if (isa_supported(isa)) isas.push_back(isa);
  return isas;
}

Isa detected_isa() {
  static const Isa detected = highest_supported_at_most(Isa::avx512_bf16);
  return detected;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa from_env = from_environment(detected_isa());
  return from_env;
}

void force_isa(Isa isa) {
  g_forced.store(static_cast<int>(highest_supported_at_most(isa)), std::memory_order_relaxed);
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx_vnni: return "avx_vnni";
    case Isa::avx512: return "avx512";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::avx512_bf16: return "avx512_bf16";
  }
  return "unknown";
}

}  // namespace ember::cpu
