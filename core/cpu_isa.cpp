#include "ember/cpu_isa.h"

#include "cpu/isa.h"

namespace ember {

std::string_view cpu_kernel_isa() { return cpu::isa_name(cpu::active_isa()); }

}  // namespace ember
