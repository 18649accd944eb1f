#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "ember/gguf.h"
#include "test_util.h"

namespace ember {
namespace {

// Little-endian GGUF fields appended one by one, written from the specification alone.
class Assembler {
 public:
  void u8(uint8_t v) { bytes.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void f32(float v) {
    uint32_t raw = 0;
    std::memcpy(&raw, &v, 4);
    u32(raw);
  }
  void str(const std::string& text) {
    u64(text.size());
    bytes.insert(bytes.end(), text.begin(), text.end());
  }
  void pad_to(size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
  }
  std::vector<uint8_t> bytes;
};

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "ember-gguf-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "cannot create a scratch folder";
    folder_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }

  std::filesystem::path save(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::filesystem::path path = folder_ / name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  static std::vector<uint8_t> load(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  size_t files_in_folder() const {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(folder_), {}));
  }

  std::filesystem::path folder_;
};

// Two tensors and an explicit alignment of 64, laid out field by field as the specification describes.
Assembler hand_assembled_file(uint32_t version) {
  Assembler a;
  a.bytes = {'G', 'G', 'U', 'F'};
  a.u32(version);
  a.u64(2);  // tensors
  a.u64(4);  // metadata entries
  // Each entry: key, value type (string 8, uint32 4, array 9 of float32 6), value.
  a.str("general.architecture"); a.u32(8); a.str("llama");
  a.str("general.alignment"); a.u32(4); a.u32(64);
  a.str("llama.block_count"); a.u32(4); a.u32(2);
  a.str("tokenizer.ggml.scores"); a.u32(9); a.u32(6); a.u64(2); a.f32(0.5f); a.f32(-1.25f);
  // Each tensor: name, n_dims, ne0 (the row length) first, ggml type (F32 0, Q8_0 8), offset.
  a.str("a"); a.u32(2); a.u64(3); a.u64(2); a.u32(0); a.u64(0);
  a.str("b"); a.u32(1); a.u64(32); a.u32(8); a.u64(64);
  a.pad_to(64);
  for (int i = 0; i < 6; ++i) a.f32(static_cast<float>(i));
  a.pad_to(64);
  for (int i = 0; i < 34; ++i) a.u8(static_cast<uint8_t>(200 + i));
  return a;
}

TEST_F(GgufTest, ReadsHandAssembledFileToKnownValues) {
  for (uint32_t version : {2u, 3u}) {
    SCOPED_TRACE("version " + std::to_string(version));
    const auto path = save("hand.gguf", hand_assembled_file(version).bytes);
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    EXPECT_EQ(file->version(), version);
    EXPECT_EQ(file->alignment(), 64u);
    EXPECT_EQ(file->data_offset(), 320u) << "the tensor table ends at byte 262, rounded up to 64";
    ASSERT_EQ(file->metadata().size(), 4u);
    EXPECT_EQ(file->metadata()[0].first, "general.architecture") << "metadata keeps file order";
    EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
    EXPECT_EQ(file->find("llama.block_count")->type(), GgufType::uint32);
    EXPECT_EQ(file->get_int("llama.block_count").value(), 2);
    const GgufArray* scores = file->find("tokenizer.ggml.scores")->as_array();
    ASSERT_NE(scores, nullptr);
    EXPECT_EQ(scores->element_type, GgufType::float32);
    ASSERT_EQ(scores->values.size(), 2u);
    EXPECT_EQ(scores->values[1].as_float(), -1.25);

    ASSERT_EQ(file->tensors().size(), 2u);
    const GgufTensorInfo& a = file->tensors()[0];
    EXPECT_EQ(a.shape, (Shape{2, 3})) << "GGUF ne = [3, 2] is ember Shape {2, 3}";
    EXPECT_EQ(a.dtype, DType::f32);
    EXPECT_EQ(a.bytes, 24u);
    const GgufTensorInfo& b = file->tensors()[1];
    EXPECT_EQ(b.shape, (Shape{32}));
    EXPECT_EQ(b.dtype, DType::q8_0);
    EXPECT_EQ(b.offset, 64u);
    EXPECT_EQ(b.bytes, 34u);

    auto tensor_a = file->tensor("a");
    ASSERT_TRUE(tensor_a.ok()) << tensor_a.status().message();
    EXPECT_EQ(tensor_a->get({0, 2}), 2.0f) << "row 0 holds ne0 elements 0..2";
    EXPECT_EQ(tensor_a->get({1, 0}), 3.0f) << "row 1 starts at element 3";
    auto tensor_b = file->tensor("b");
    ASSERT_TRUE(tensor_b.ok()) << tensor_b.status().message();
    const std::byte* raw = tensor_b->read<std::byte>().value();
    EXPECT_EQ(static_cast<int>(raw[0]), 200);
    EXPECT_EQ(static_cast<int>(raw[33]), 233);
  }
}

TEST_F(GgufTest, WriterProducesTheHandAssembledBytes) {
  GgufWriter writer(64);
  writer.set("general.architecture", GgufValue::string("llama"));
  writer.set("general.alignment", GgufValue::u32(64));
  writer.set("llama.block_count", GgufValue::u32(2));
  writer.set("tokenizer.ggml.scores", GgufValue::array(GgufType::float32, {GgufValue::f32(0.5f), GgufValue::f32(-1.25f)}));
  ASSERT_TRUE(writer.add_tensor("a", {2, 3}, DType::f32, [](std::span<std::byte> out) {
    for (int i = 0; i < 6; ++i) {
      const auto value = static_cast<float>(i);
      std::memcpy(out.data() + 4 * i, &value, 4);
    }
    return Status{};
  }).ok());
  ASSERT_TRUE(writer.add_tensor("b", {32}, DType::q8_0, [](std::span<std::byte> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(200 + i);
    return Status{};
  }).ok());
  const auto path = folder_ / "written.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  EXPECT_EQ(load(path), hand_assembled_file(3).bytes) << "the writer must lay out exactly what the spec describes";
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type() != b.type()) return false;
  const GgufArray* left = a.as_array();
  if (left == nullptr) {
    return std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, GgufArray>) return false;
          else return v == std::get<T>(b.storage());
        },
        a.storage());
  }
  const GgufArray* right = b.as_array();
  if (left->element_type != right->element_type || left->values.size() != right->values.size()) return false;
  for (size_t i = 0; i < left->values.size(); ++i)
    if (!same_value(left->values[i], right->values[i])) return false;
  return true;
}

TEST_F(GgufTest, EveryMetadataTypeRoundTrips) {
  using Storage = GgufValue::Storage;
  const std::vector<std::pair<std::string, GgufValue>> metadata = {
      {"t.uint8", GgufValue(Storage(uint8_t{255}))},
      {"t.int8", GgufValue(Storage(int8_t{-128}))},
      {"t.uint16", GgufValue(Storage(uint16_t{65535}))},
      {"t.int16", GgufValue(Storage(int16_t{-32768}))},
      {"t.uint32", GgufValue::u32(4000000000u)},
      {"t.int32", GgufValue::i32(-2000000000)},
      {"t.float32", GgufValue::f32(3.5f)},
      {"t.bool_true", GgufValue::boolean(true)},
      {"t.bool_false", GgufValue::boolean(false)},
      {"t.string", GgufValue::string("héllo wörld ✓")},
      {"t.empty_string", GgufValue::string("")},
      {"t.uint64", GgufValue::u64(std::numeric_limits<uint64_t>::max())},
      {"t.int64", GgufValue(Storage(std::numeric_limits<int64_t>::min()))},
      {"t.float64", GgufValue(Storage(-1.0e300))},
      {"t.strings", GgufValue::strings({"<s>", "", "▁the", "\xe4\xb8\xad"})},
      {"t.empty_array", GgufValue::array(GgufType::int32, {})},
      {"t.nested", GgufValue::array(GgufType::array,
                                    {GgufValue::array(GgufType::int32, {GgufValue::i32(1), GgufValue::i32(-2)}),
                                     GgufValue::array(GgufType::string, {GgufValue::string("x")}),
                                     GgufValue::array(GgufType::array, {GgufValue::array(GgufType::boolean, {GgufValue::boolean(true)})})})},
  };
  GgufWriter writer;
  for (const auto& [key, value] : metadata) writer.set(key, value);
  const auto path = folder_ / "metadata.gguf";
  ASSERT_TRUE(writer.write(path).ok());

  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_EQ(file->metadata().size(), metadata.size()) << "no general.alignment is added at the default alignment";
  for (size_t i = 0; i < metadata.size(); ++i) {
    SCOPED_TRACE(metadata[i].first);
    EXPECT_EQ(file->metadata()[i].first, metadata[i].first) << "insertion order is kept";
    EXPECT_TRUE(same_value(file->metadata()[i].second, metadata[i].second)) << "value or type changed";
  }
  EXPECT_TRUE(file->tensors().empty());
}

TEST_F(GgufTest, SettingAKeyAgainReplacesItInPlace) {
  GgufWriter writer;
  writer.set("first", GgufValue::u32(1));
  writer.set("second", GgufValue::u32(2));
  writer.set("first", GgufValue::string("one"));
  const auto path = folder_ / "replace.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->metadata()[0].first, "first");
  EXPECT_EQ(file->get_string("first").value(), "one");
}

std::vector<std::byte> pattern_bytes(size_t count, uint64_t seed) {
  std::vector<std::byte> bytes(count);
  for (size_t i = 0; i < count; ++i) bytes[i] = static_cast<std::byte>((i * 131 + seed * 17 + (i >> 8)) & 0xFF);
  return bytes;
}

TEST_F(GgufTest, EveryDTypeRoundTripsByteIdenticalAndZeroCopy) {
  GgufWriter writer;
  std::vector<std::vector<std::byte>> payloads;
  std::vector<Shape> shapes;
  for (DType dtype : kAllDTypes) {
    const Shape shape{3, 2 * block_elements(dtype)};
    shapes.push_back(shape);
    payloads.push_back(pattern_bytes(static_cast<size_t>(row_bytes(dtype, shape.elements())), payloads.size()));
    const std::vector<std::byte>& payload = payloads.back();
    ASSERT_TRUE(writer.add_tensor(std::string(dtype_name(dtype)) + ".weight", shape, dtype,
                                  [payload](std::span<std::byte> out) {
                                    if (out.size() != payload.size()) return invalid_argument("wrong size asked for");
                                    std::memcpy(out.data(), payload.data(), out.size());
                                    return Status{};
                                  })
                    .ok());
  }
  const auto path = folder_ / "dtypes.gguf";
  ASSERT_TRUE(writer.write(path).ok());

  auto opened = GgufFile::open(path);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  std::vector<Tensor> tensors;
  {
    const GgufFile file = std::move(opened.value());
    ASSERT_EQ(file.tensors().size(), std::size(kAllDTypes));
    const std::byte* first = nullptr;
    for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
      const DType dtype = kAllDTypes[i];
      SCOPED_TRACE(std::string(dtype_name(dtype)));
      const GgufTensorInfo& info = file.tensors()[i];
      EXPECT_EQ(info.dtype, dtype);
      EXPECT_EQ(info.shape, shapes[i]);
      EXPECT_EQ(info.bytes, payloads[i].size());
      EXPECT_EQ(info.offset % 32, 0u) << "offsets follow the default alignment";
      auto tensor = file.tensor(info.name);
      ASSERT_TRUE(tensor.ok()) << tensor.status().message();
      EXPECT_FALSE(tensor->buffer()->writable()) << "views of the map are read-only";
      const std::byte* data = tensor->read<std::byte>().value();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 32, 0u) << "an aligned offset in a page-aligned map";
      if (first == nullptr) first = data;
      EXPECT_EQ(static_cast<uint64_t>(data - first), info.offset - file.tensors()[0].offset)
          << "every tensor lies at its file offset inside one map, not in a copy";
      EXPECT_EQ(file.tensor(info.name)->read<std::byte>().value(), data) << "a second view shares the same bytes";
      tensors.push_back(tensor.value());
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(std::string(dtype_name(kAllDTypes[i])));
    const std::byte* data = tensors[i].read<std::byte>().value();
    EXPECT_EQ(std::memcmp(data, payloads[i].data(), payloads[i].size()), 0)
        << "bytes differ, read after the GgufFile is gone (the tensor keeps the map alive)";
  }
}

TEST_F(GgufTest, CustomAlignmentIsRecordedAndFollowed) {
  GgufWriter writer(128);
  writer.set("general.name", GgufValue::string("aligned"));
  for (const char* name : {"t0", "t1", "t2"})
    ASSERT_TRUE(writer.add_tensor(name, {5}, DType::f32, [](std::span<std::byte> out) {
      std::fill(out.begin(), out.end(), std::byte{0x5A});
      return Status{};
    }).ok());
  const auto path = folder_ / "aligned.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->alignment(), 128u);
  EXPECT_EQ(file->find("general.alignment")->type(), GgufType::uint32);
  EXPECT_EQ(file->get_int("general.alignment").value(), 128);
  EXPECT_EQ(file->data_offset() % 128, 0u);
  for (const GgufTensorInfo& info : file->tensors()) EXPECT_EQ(info.offset % 128, 0u) << info.name;
  EXPECT_EQ(file->tensors()[1].offset, 128u) << "a 20-byte tensor is padded to the next 128";
  const std::vector<uint8_t> bytes = load(path);
  for (uint64_t i = file->data_offset() + 20; i < file->data_offset() + 128; ++i)
    ASSERT_EQ(bytes[i], 0) << "padding must be zero bytes, byte " << i;
}

// general.alignment may be 1, so a tensor can start at an odd byte of the file; the
// reader then hands out an aligned copy, since kernels read block scales and floats as
// typed fields (a misaligned one is undefined behaviour, caught by UBSan).
TEST_F(GgufTest, TensorAtAnOddOffsetIsReadThroughAnAlignedCopy) {
  // Names of two lengths move the data section by one byte: one of the files starts its
  // tensors at odd offsets.
  bool some_tensor_is_odd = false;
  for (const char* name : {"odd", "even"}) {
    SCOPED_TRACE(name);
    GgufWriter writer(1);
    writer.set("general.name", GgufValue::string(name));
    std::vector<std::vector<std::byte>> payloads;
    for (DType dtype : kAllDTypes) {
      const Shape shape{2 * block_elements(dtype)};
      payloads.push_back(pattern_bytes(static_cast<size_t>(row_bytes(dtype, shape.elements())), payloads.size()));
      const std::vector<std::byte>& payload = payloads.back();
      ASSERT_TRUE(writer.add_tensor(std::string(dtype_name(dtype)), shape, dtype,
                                    [payload](std::span<std::byte> out) {
                                      std::memcpy(out.data(), payload.data(), out.size());
                                      return Status{};
                                    })
                      .ok());
    }
    const auto path = folder_ / "unaligned.gguf";
    ASSERT_TRUE(writer.write(path).ok());
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    EXPECT_EQ(file->alignment(), 1u);
    for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
      const GgufTensorInfo& info = file->tensors()[i];
      SCOPED_TRACE(info.name);
      some_tensor_is_odd |= (file->data_offset() + info.offset) % 2 == 1;
      auto tensor = file->tensor(info.name);
      ASSERT_TRUE(tensor.ok()) << tensor.status().message();
      const std::byte* data = tensor->read<std::byte>().value();
      const uintptr_t needed = is_quantized(info.dtype) ? 4 : static_cast<uintptr_t>(block_bytes(info.dtype));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % needed, 0u);
      EXPECT_EQ(std::memcmp(data, payloads[i].data(), payloads[i].size()), 0);
    }
  }
  EXPECT_TRUE(some_tensor_is_odd) << "neither file starts a tensor at an odd byte";
}

TEST_F(GgufTest, ConstructorAlignmentReplacesACopiedAlignmentKey) {
  GgufWriter writer;  // 32
  writer.set("general.alignment", GgufValue::u32(64));
  ASSERT_TRUE(writer.add_tensor("x", {3}, DType::f32, [](std::span<std::byte>) { return Status{}; }).ok());
  ASSERT_TRUE(writer.add_tensor("y", {3}, DType::f32, [](std::span<std::byte>) { return Status{}; }).ok());
  const auto path = folder_ / "copied.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->tensors()[1].offset, 32u);
}

TEST_F(GgufTest, TensorCopiedFromATensorKeepsShapeDtypeAndValues) {
  Tensor source = Tensor::empty({2, 3}, DType::f32).value();
  for (int64_t i = 0; i < 6; ++i) source.set_flat(i, static_cast<float>(i) + 0.5f);
  const Tensor transposed = source.transpose(0, 1).value();
  GgufWriter writer;
  ASSERT_TRUE(writer.add_tensor("plain", source).ok());
  ASSERT_TRUE(writer.add_tensor("transposed", transposed).ok());
  const auto path = folder_ / "copies.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  const Tensor plain = file->tensor("plain").value();
  EXPECT_EQ(plain.shape(), (Shape{2, 3}));
  EXPECT_EQ(plain.get({1, 2}), 5.5f);
  const Tensor copy = file->tensor("transposed").value();
  EXPECT_EQ(copy.shape(), (Shape{3, 2}));
  EXPECT_EQ(copy.get({2, 1}), 5.5f) << "a non-contiguous tensor is written in its logical order";
  EXPECT_EQ(copy.get({1, 0}), 1.5f);
}

TEST_F(GgufTest, RankZeroTensorIsStoredAsOneElement) {
  GgufWriter writer;
  ASSERT_TRUE(writer.add_tensor("scalar", Shape{}, DType::f32, [](std::span<std::byte> out) {
    const float value = 7.0f;
    std::memcpy(out.data(), &value, 4);
    return Status{};
  }).ok());
  const auto path = folder_ / "scalar.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->tensors()[0].shape, (Shape{1}));
  EXPECT_EQ(file->tensor("scalar")->get({0}), 7.0f);
}

TEST_F(GgufTest, TypedGettersConvertOrNameTheProblem) {
  GgufWriter writer;
  writer.set("u8", GgufValue(GgufValue::Storage(uint8_t{7})));
  writer.set("huge", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  writer.set("negative", GgufValue::i32(-5));
  writer.set("ratio", GgufValue::f32(0.25f));
  writer.set("name", GgufValue::string("tiny"));
  writer.set("flag", GgufValue::boolean(true));
  const auto path = folder_ / "getters.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();

  EXPECT_EQ(file->get_int("u8").value(), 7);
  EXPECT_EQ(file->get_int("negative").value(), -5);
  EXPECT_EQ(file->get_float("negative").value(), -5.0) << "integers convert to double";
  EXPECT_EQ(file->get_float("ratio").value(), 0.25);
  EXPECT_EQ(file->get_string("name").value(), "tiny");

  const auto expect_error = [&](const Status& status, ErrorCode code, const std::string& words) {
    EXPECT_EQ(status.code(), code) << status.message();
    EXPECT_NE(status.message().find(path.string()), std::string::npos) << status.message();
    EXPECT_NE(status.message().find(words), std::string::npos) << status.message();
  };
  expect_error(file->get_int("absent").status(), ErrorCode::invalid_argument, "'absent' is missing");
  expect_error(file->get_float("absent").status(), ErrorCode::invalid_argument, "'absent' is missing");
  expect_error(file->get_string("absent").status(), ErrorCode::invalid_argument, "'absent' is missing");
  expect_error(file->get_int("huge").status(), ErrorCode::corrupt_file, "'huge' is a uint64");
  expect_error(file->get_int("ratio").status(), ErrorCode::corrupt_file, "'ratio' is a float32");
  expect_error(file->get_float("name").status(), ErrorCode::corrupt_file, "'name' is a string");
  expect_error(file->get_string("flag").status(), ErrorCode::corrupt_file, "'flag' is a bool");
  expect_error(file->tensor("nothing").status(), ErrorCode::invalid_argument, "no tensor named 'nothing'");
  EXPECT_EQ(file->find_tensor("nothing"), nullptr);
  EXPECT_EQ(file->find("nothing"), nullptr);
}

TEST(GgufValue, ConversionsSucceedOnlyWhenTheValueFits) {
  EXPECT_EQ(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_int(), std::nullopt);
  EXPECT_EQ(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_uint(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(GgufValue::i32(-1).as_uint(), std::nullopt);
  EXPECT_EQ(GgufValue::i32(-1).as_int(), -1);
  EXPECT_EQ(GgufValue::u32(3).as_float(), 3.0);
  EXPECT_EQ(GgufValue::f32(1.5f).as_int(), std::nullopt) << "a float is not silently truncated";
  EXPECT_EQ(GgufValue::boolean(true).as_int(), std::nullopt) << "bool is not an integer in GGUF";
  EXPECT_EQ(GgufValue::boolean(true).as_bool(), true);
  EXPECT_EQ(GgufValue::u32(1).as_bool(), std::nullopt);
  EXPECT_EQ(GgufValue::string("x").as_float(), std::nullopt);
  EXPECT_EQ(*GgufValue::string("x").as_string(), "x");
  EXPECT_EQ(GgufValue::u32(1).as_string(), nullptr);
  const GgufValue list = GgufValue::strings({"a", "b"});
  ASSERT_NE(list.as_array(), nullptr);
  EXPECT_EQ(list.as_array()->element_type, GgufType::string);
  EXPECT_EQ(*list.as_array()->values[1].as_string(), "b");
  EXPECT_EQ(gguf_type_name(GgufType::float64), "float64");
  EXPECT_EQ(gguf_type_name(GgufType::boolean), "bool");
}

TEST(GgufValue, GgmlTypeIdsFollowTheSpec) {
  const std::pair<uint32_t, DType> spec[] = {{0, DType::f32},   {1, DType::f16},   {2, DType::q4_0}, {3, DType::q4_1},
                                             {8, DType::q8_0},  {9, DType::q8_1},  {12, DType::q4_k}, {14, DType::q6_k}, {15, DType::q8_k},
                                             {26, DType::i32},  {30, DType::bf16}};
  for (const auto& [id, dtype] : spec) {
    EXPECT_EQ(dtype_from_ggml_type(id), dtype) << "ggml type " << id;
    EXPECT_EQ(ggml_type_of(dtype), id) << dtype_name(dtype);
  }
  EXPECT_EQ(dtype_from_ggml_type(6), std::nullopt) << "Q5_0 is not an ember type";
  EXPECT_EQ(dtype_from_ggml_type(99), std::nullopt);
}

Status fill_with(std::span<std::byte> out, std::byte value) {
  std::fill(out.begin(), out.end(), value);
  return {};
}

TEST_F(GgufTest, WriterRejectsWhatTheReaderWouldRefuse) {
  GgufWriter writer;
  const auto zeros = [](std::span<std::byte> out) { return fill_with(out, std::byte{0}); };
  ASSERT_TRUE(writer.add_tensor("w", {4, 64}, DType::q8_0, zeros).ok());
  const Status duplicate = writer.add_tensor("w", {4}, DType::f32, zeros);
  EXPECT_EQ(duplicate.code(), ErrorCode::invalid_argument);
  EXPECT_NE(duplicate.message().find("duplicate tensor name 'w'"), std::string::npos) << duplicate.message();
  const Status partial_block = writer.add_tensor("q", {4, 48}, DType::q8_0, zeros);
  EXPECT_EQ(partial_block.code(), ErrorCode::invalid_argument);
  EXPECT_NE(partial_block.message().find("not whole q8_0 blocks"), std::string::npos) << partial_block.message();
  EXPECT_FALSE(writer.add_tensor("bad\xff", {4}, DType::f32, zeros).ok()) << "tensor names must be UTF-8";

  GgufWriter mixed;
  mixed.set("list", GgufValue::array(GgufType::uint32, {GgufValue::u32(1), GgufValue::string("two")}));
  const auto path = folder_ / "mixed.gguf";
  const Status status = mixed.write(path);
  EXPECT_EQ(status.code(), ErrorCode::invalid_argument);
  EXPECT_NE(status.message().find("'list': array of uint32 holds a string at index 1"), std::string::npos)
      << status.message();
  EXPECT_FALSE(std::filesystem::exists(path));

  GgufWriter bad_key;
  bad_key.set("key\xc0\x80", GgufValue::u32(1));
  EXPECT_FALSE(bad_key.write(folder_ / "bad_key.gguf").ok()) << "keys must be UTF-8";
  EXPECT_FALSE(GgufWriter(48).write(folder_ / "odd.gguf").ok()) << "alignment must be a power of two";
  EXPECT_EQ(files_in_folder(), 0u) << "no file or temporary file is left by a refused write";
}

GgufWriter writer_with_failing_second_tensor() {
  GgufWriter writer;
  writer.set("general.name", GgufValue::string("doomed"));
  EXPECT_TRUE(writer.add_tensor("good", {64}, DType::f32, [](std::span<std::byte> out) {
    return fill_with(out, std::byte{1});
  }).ok());
  EXPECT_TRUE(writer.add_tensor("bad", {64}, DType::f32, [](std::span<std::byte>) {
    return Status(ErrorCode::io_error, "source shard vanished");
  }).ok());
  return writer;
}

TEST_F(GgufTest, FailingSourceLeavesNoTargetAndNoTemporaryFile) {
  const auto path = folder_ / "model.gguf";
  const Status status = writer_with_failing_second_tensor().write(path);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::io_error) << "the source's error code is kept";
  EXPECT_NE(status.message().find(path.string()), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("tensor 'bad': source shard vanished"), std::string::npos) << status.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(files_in_folder(), 0u) << "the temporary file must be removed";
}

TEST_F(GgufTest, FailedWriteLeavesAnExistingTargetUntouched) {
  const std::vector<uint8_t> previous = {'o', 'l', 'd', ' ', 'm', 'o', 'd', 'e', 'l'};
  const auto path = save("model.gguf", previous);
  ASSERT_FALSE(writer_with_failing_second_tensor().write(path).ok());
  EXPECT_EQ(load(path), previous) << "the target is replaced only by the final rename";
  EXPECT_EQ(files_in_folder(), 1u);
}

TEST_F(GgufTest, SuccessfulWriteReplacesAnExistingTarget) {
  const auto path = save("model.gguf", {'o', 'l', 'd'});
  GgufWriter writer;
  writer.set("general.name", GgufValue::string("new"));
  ASSERT_TRUE(writer.write(path).ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->get_string("general.name").value(), "new");
  EXPECT_EQ(files_in_folder(), 1u);
}

TEST_F(GgufTest, ShortWriteIsAnErrorAndLeavesNoFile) {
  // A file size limit makes write() fail partway with EFBIG, as a full disk would.
  struct sigaction ignore {}, previous_action {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &previous_action), 0);
  rlimit previous_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &previous_limit), 0);
  rlimit small = previous_limit;
  small.rlim_cur = 10000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);

  GgufWriter writer;
  ASSERT_TRUE(writer.add_tensor("big", {64, 1024}, DType::f32, [](std::span<std::byte> out) {
    return fill_with(out, std::byte{7});
  }).ok());
  const auto path = folder_ / "big.gguf";
  const Status status = writer.write(path);

  ::setrlimit(RLIMIT_FSIZE, &previous_limit);
  ::sigaction(SIGXFSZ, &previous_action, nullptr);
  ASSERT_FALSE(status.ok()) << "a 256 KiB tensor cannot fit under a 10000-byte limit";
  EXPECT_EQ(status.code(), ErrorCode::io_error);
  EXPECT_NE(status.message().find(path.string()), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("write failed"), std::string::npos) << status.message();
  EXPECT_EQ(files_in_folder(), 0u);
}

TEST_F(GgufTest, WriteIntoAMissingFolderIsAClearError) {
  const auto path = folder_ / "no" / "such" / "folder" / "model.gguf";
  GgufWriter writer;
  const Status status = writer.write(path);
  EXPECT_EQ(status.code(), ErrorCode::io_error);
  EXPECT_NE(status.message().find(path.string()), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("does not exist"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace ember
