// Library logging: one line per message on stderr, filtered by level.
#pragma once

#include <string_view>

namespace ember {

enum class LogLevel : int { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

// Messages below `level` are dropped. The default is warn, or EMBER_LOG=debug|info|warn|error|off.
void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, std::string_view message);

}  // namespace ember
