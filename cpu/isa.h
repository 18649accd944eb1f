// Run-time choice among the instruction-set variants of the hand-written kernels.
// Each variant lives in cpu/x86/<kernel>_<isa>.cpp, compiled for that ISA only.
#pragma once

#include <string_view>

namespace ember::cpu {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// Best ISA this CPU runs (from CPUID), lowered by EMBER_CPU_ISA=scalar|avx2|avx512 or by
// force_isa() so tests can run every path the machine can execute.
Isa active_isa();
Isa detected_isa();
void force_isa(Isa isa);  // clamped to detected_isa()
std::string_view isa_name(Isa isa);

}  // namespace ember::cpu
