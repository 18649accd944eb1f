// Run-time choice among the instruction-set variants of the hand-written kernels.
// Each variant lives in cpu/x86/<kernel>_<isa>.cpp, compiled for that ISA only.
#pragma once

#include <string_view>
#include <vector>

namespace ember::cpu {

// Levels in the order a dispatcher prefers them. avx_vnni is AVX2 plus the VEX-encoded
// int8 dot product (vpdpbusd on 256 bits); avx512 is F/BW/VL/DQ; avx512_vnni adds the
// EVEX vpdpbusd. A CPU need not run every level below its best (Ice Lake has
// avx512_vnni but not avx_vnni), so ask isa_supported rather than comparing levels.
enum class Isa : int { scalar = 0, avx2 = 1, avx_vnni = 2, avx512 = 3, avx512_vnni = 4 };

// Best ISA this CPU runs (from CPUID), lowered by EMBER_CPU_ISA=<isa_name> or by
// force_isa() so tests can run every path the machine can execute.
Isa active_isa();
Isa detected_isa();
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();  // ascending, scalar first
// The highest supported level at or below `isa`.
void force_isa(Isa isa);
std::string_view isa_name(Isa isa);

// The dense f32/f16/bf16 kernels have two SIMD variants; the VNNI levels run them too.
inline bool has_avx512(Isa isa) { return isa >= Isa::avx512; }
inline bool has_avx2(Isa isa) { return isa >= Isa::avx2; }

}  // namespace ember::cpu
