// Whole files written so that a reader never sees half of one: the bytes go to PATH.tmp
// beside the target, which is renamed over PATH only when complete, and removed on any
// failure (a full disk, a missing folder), so nothing the user had is replaced by a
// partial file.
#pragma once

#include <filesystem>
#include <string_view>

#include "ember/status.h"

namespace ember {

// Errors are ErrorCode::io_error naming PATH.
Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace ember
