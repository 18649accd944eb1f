// Which instruction-set level ember's CPU kernels run at: the best this CPU has (from
// CPUID), or lower when EMBER_CPU_ISA says so.
#pragma once

#include <string_view>

namespace ember {

// One of scalar, avx2, avx_vnni, avx512, avx512_vnni, avx512_bf16.
std::string_view cpu_kernel_isa();

}  // namespace ember
