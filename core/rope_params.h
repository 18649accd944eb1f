// A rope node's parameters as the CPU kernel takes them: shared by the CPU backend and
// by the Vulkan backend, which computes the angle table on the host.
#pragma once

#include "cpu/rope.h"
#include "ember/ops.h"

namespace ember {

inline cpu::RopeParams rope_params(const OpParams& params) {
  return {.style = params.rope_style == RopeStyle::neox ? cpu::RopeStyle::neox : cpu::RopeStyle::normal,
          .rotary_dims = params.rotary_dims,
          .base = params.rope_base,
          .position_offset = params.position_offset,
          .position_scale = params.rope_position_scale};
}

}  // namespace ember
