#include "ember/atomic_file.h"

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

namespace ember {

Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const std::string target = path.string();
  const std::string temporary = target + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::remove(temporary.c_str());
      return Status(ErrorCode::io_error, fmt::format("{}: cannot write the file", target));
    }
  }
  if (std::rename(temporary.c_str(), target.c_str()) != 0) {
    std::remove(temporary.c_str());
    return Status(ErrorCode::io_error, fmt::format("{}: cannot rename the temporary file into place", target));
  }
  return {};
}

}  // namespace ember
