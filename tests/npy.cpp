#include "npy.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace ember::testing {
namespace {

// The text after `'key': ` in the header dictionary, or empty when absent.
std::string_view header_value(std::string_view header, std::string_view key) {
  std::string quoted = "'";
  quoted.append(key).append("':");
  const size_t at = header.find(quoted);
  if (at == std::string_view::npos) return {};
  std::string_view rest = header.substr(at + quoted.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return rest;
}

}  // namespace

Result<Tensor> read_npy(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status(ErrorCode::io_error, path.string() + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto fail = [&](std::string_view why) {
    std::string message = path.string();
    message.append(": ").append(why);
    return invalid_argument(std::move(message));
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return fail("not a .npy file");
  const auto major = static_cast<uint8_t>(bytes[6]);
  // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4.
  const size_t length_bytes = major == 1 ? 2 : 4;
  size_t header_length = 0;
  for (size_t i = 0; i < length_bytes; ++i)
    header_length |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
  const size_t data_start = 8 + length_bytes + header_length;
  if (data_start > bytes.size()) return fail("header runs past the end");
  const std::string_view header(bytes.data() + 8 + length_bytes, header_length);

  if (!header_value(header, "descr").starts_with("'<f4'")) return fail("only little-endian float32 ('<f4') is read");
  if (!header_value(header, "fortran_order").starts_with("False")) return fail("Fortran order is not read");
  std::string_view shape_text = header_value(header, "shape");
  if (!shape_text.starts_with("(")) return fail("no shape");
  shape_text = shape_text.substr(1, shape_text.find(')') - 1);
  std::vector<int64_t> dims;
  while (!shape_text.empty()) {
    const std::string_view number = shape_text.substr(0, shape_text.find(','));
    int64_t dim = 0;
    if (std::from_chars(number.data(), number.data() + number.size(), dim).ec != std::errc()) return fail("bad shape");
    dims.push_back(dim);
    shape_text.remove_prefix(std::min(shape_text.size(), number.size() + 1));
    while (!shape_text.empty() && shape_text.front() == ' ') shape_text.remove_prefix(1);
  }
  auto shape = Shape::from(dims);
  if (!shape) return fail(shape.status().message());
  auto tensor = Tensor::empty(shape.value(), DType::f32);
  if (!tensor) return tensor.status();
  const size_t payload = tensor->payload_bytes();
  if (bytes.size() - data_start < payload) return fail("data is shorter than the shape says");
  auto out = tensor->write<std::byte>();
  if (!out) return out.status();
  std::memcpy(out.value(), bytes.data() + data_start, payload);
  return tensor;
}

}  // namespace ember::testing
