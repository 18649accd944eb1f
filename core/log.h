// fmt-style logging for library code: EMBER_LOG(warn, "tensor {} ...", name).
#pragma once

#include <fmt/format.h>

#include "ember/log.h"

#define EMBER_LOG(level, ...)                                                        \
  do {                                                                               \
    if (::ember::LogLevel::level >= ::ember::log_level())                            \
      ::ember::log_message(::ember::LogLevel::level, ::fmt::format(__VA_ARGS__));    \
  } while (0)
