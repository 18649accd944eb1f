// Run-time choice among the instruction-set variants of the hand-written kernels.
// Each variant lives in cpu/x86/<kernel>_<isa>.cpp, compiled for that ISA only.
#pragma once

#include <string_view>
#include <vector>

namespace ember::cpu {

// Levels in the order a dispatcher prefers them. avx_vnni is AVX2 plus the VEX-encoded
// int8 dot product (vpdpbusd on 256 bits); avx512 is F/BW/VL/DQ; avx512_vnni adds the
// EVEX vpdpbusd; avx512_bf16 adds vdpbf16ps (every CPU with it has avx512_vnni: Cooper
// Lake, Sapphire Rapids, Zen 4 on). A CPU need not run every level below its best (Ice
// Lake has avx512_vnni but not avx_vnni), so ask isa_supported rather than comparing levels.
enum class Isa : int { scalar = 0, avx2 = 1, avx_vnni = 2, avx512 = 3, avx512_vnni = 4, avx512_bf16 = 5 };

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
// The int8 kernels' 512-bit VNNI variants; avx512_bf16 runs them too.
inline bool has_avx512_vnni(Isa isa) { return isa >= Isa::avx512_vnni; }
// The many-row GEMM multiplies bf16 weights by bf16-rounded activations with vdpbf16ps
// instead of widening the weights to f32.
inline bool has_avx512_bf16(Isa isa) { return isa >= Isa::avx512_bf16; }

}  // namespace ember::cpu
