#include "ember/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace ember {
namespace {

LogLevel level_from_environment() {
  const char* value = std::getenv("EMBER_LOG");
  if (value == nullptr) return LogLevel::warn;
  const std::string_view name(value);
  if (name == "debug") return LogLevel::debug;
  if (name == "info") return LogLevel::info;
  if (name == "error") return LogLevel::error;
  if (name == "off") return LogLevel::off;
  return LogLevel::warn;
}

std::atomic<LogLevel>& current_level() {
  static std::atomic<LogLevel> level{level_from_environment()};
  return level;
}

std::string_view level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warning";
    case LogLevel::error: return "error";
    case LogLevel::off: break;
  }
  return "";
}

}  // namespace

void set_log_level(LogLevel level) { current_level().store(level); }
LogLevel log_level() { return current_level().load(); }

void log_message(LogLevel level, std::string_view message) {
  if (level < log_level() || level == LogLevel::off) return;
  // One fprintf per line keeps lines from different threads whole.
  std::fprintf(stderr, "ember %.*s: %.*s\n", static_cast<int>(level_tag(level).size()), level_tag(level).data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace ember
