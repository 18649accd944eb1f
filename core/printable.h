// Text taken from a file (GGUF keys and tensor names, safetensors names and dtypes) on its
// way into a one-line error message.
#pragma once

#include <string>
#include <string_view>

namespace ember {

// `text` with each control byte shown as \n or \xNN, so a crafted name can neither split
// the one-line message nor send escape sequences to the user's terminal.
std::string printable(std::string_view text);

}  // namespace ember
