#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ember/safetensors.h"
#include "model_builder.h"
#include "tensor_fixtures.h"

namespace ember {
namespace {

using testing::NamedTensor;
using testing::ScratchDir;

std::string le_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

std::string le_f32(float value) {
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &value, 4);
  return bytes;
}

// A file as the format describes it: length, header, data; no padding unless given.
std::string assemble(std::string_view header, std::string_view data) {
  return le_u64(header.size()) + std::string(header) + std::string(data);
}

TEST(Safetensors, HandAssembledFileMatchesTheSpecification) {
  ScratchDir dir;
  // Header padded with spaces to 8 bytes as the Python writer does; data: two f32 then two f16.
  std::string header = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string data = le_f32(1.5f) + le_f32(-2.0f) + std::string("\x00\x3c\x00\xc0", 4);  // f16 1.0, -2.0
  testing::write_file(dir / "hand.safetensors", assemble(header, data));

  auto file = SafetensorsFile::open(dir / "hand.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->data_offset(), 8 + header.size());
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[0].name, "a");  // data order, not header order
  EXPECT_EQ(file->tensors()[1].name, "b");
  ASSERT_EQ(file->metadata().size(), 1u);
  EXPECT_EQ(file->metadata()[0], (std::pair<std::string, std::string>{"format", "pt"}));

  auto a = file->tensor("a");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->dtype(), DType::f32);
  EXPECT_EQ(a->shape(), (Shape{2}));
  EXPECT_EQ(a->get({0}), 1.5f);
  EXPECT_EQ(a->get({1}), -2.0f);
  auto b = file->tensor("b");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->dtype(), DType::f16);
  EXPECT_EQ(b->shape(), (Shape{1, 2}));
  EXPECT_EQ(b->get({0, 0}), 1.0f);
  EXPECT_EQ(b->get({0, 1}), -2.0f);
}

TEST(Safetensors, BuilderWritesWhatTheReaderReads) {
  testing::SeededRng rng;
  ScratchDir dir;
  const std::vector<NamedTensor> tensors = {{"x", testing::random_tensor(rng, {3, 5}, DType::bf16)},
                                            {"y", testing::random_tensor(rng, {4}, DType::f32)},
                                            {"z", testing::random_tensor(rng, {2, 1, 3}, DType::f16)}};
  const std::string bytes = testing::safetensors_bytes(tensors, {{"format", "pt"}});
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(header_length % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_length + (15 * 2 + 4 * 4 + 6 * 2));
  testing::write_file(dir / "t.safetensors", bytes);

  auto file = SafetensorsFile::open(dir / "t.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  for (const NamedTensor& expected : tensors) {
    auto actual = file->tensor(expected.name);
    ASSERT_TRUE(actual.ok()) << actual.status().message();
    EXPECT_EQ(actual->dtype(), expected.tensor.dtype());
    ASSERT_EQ(actual->shape(), expected.tensor.shape());
    for (int64_t i = 0; i < actual->elements(); ++i) EXPECT_EQ(actual->get_flat(i), expected.tensor.get_flat(i));
  }
}

TEST(Safetensors, TensorsAreReadOnlyViewsThatKeepTheMapAlive) {
  ScratchDir dir;
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  testing::write_file(dir / "v.safetensors", assemble(padded, le_f32(3.0f) + le_f32(4.0f)));
  Tensor view;
  {
    auto file = SafetensorsFile::open(dir / "v.safetensors");
    ASSERT_TRUE(file.ok()) << file.status().message();
    view = file->tensor("w").value();
  }
  EXPECT_FALSE(view.buffer()->writable());
  EXPECT_FALSE(view.write<float>().ok());
  EXPECT_EQ(view.get({1}), 4.0f);  // the file object is gone; the view still holds the map
}

TEST(Safetensors, MisalignedDataComesBackAsAnAlignedCopy) {
  ScratchDir dir;
  // A 57-byte header puts the data at byte 65: f32 values there are misaligned.
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(57 - header.size(), ' ');
  testing::write_file(dir / "m.safetensors", assemble(header, le_f32(-1.25f) + le_f32(7.0f)));
  auto file = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto w = file->tensor("w");
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->read<float>().value()) % alignof(float), 0u);
  EXPECT_EQ(w->get({0}), -1.25f);
  EXPECT_EQ(w->get({1}), 7.0f);
}

TEST(Safetensors, UnknownTensorNameIsAnErrorNamingFileAndTensor) {
  ScratchDir dir;
  testing::write_file(dir / "u.safetensors", assemble(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", le_f32(1)));
  auto file = SafetensorsFile::open(dir / "u.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto missing = file->tensor("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("u.safetensors"), std::string::npos);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);
}

struct MalformedCase {
  const char* label;
  std::string bytes;
  const char* expected;  // a phrase the error must contain
  ErrorCode code = ErrorCode::corrupt_file;
};

std::vector<MalformedCase> malformed_cases() {
  const std::string eight = le_f32(1) + le_f32(2);
  const std::string valid = assemble(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight);
  return {
      {"shorter than the length field", std::string("\x05\x00\x00", 3), "shorter than the 8-byte header length"},
      {"header length past the file", le_u64(1000) + "{}", "header length 1000 is larger than the 2 bytes after it"},
      {"JSON not an object", assemble("[1, 2]", ""), "header is a JSON array, not an object"},
      {"JSON that does not parse", assemble(R"({"w": )", ""), "header is not valid JSON"},
      {"bad dtype", assemble(R"({"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", eight),
       "unsupported dtype I64 for tensor 'x'", ErrorCode::unsupported},
      {"offsets past the end", assemble(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
       "tensor 'w': data_offsets [0, 16] end past the data section of 8 bytes"},
      {"overlapping tensors",
       assemble(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "tensors 'a' [0, 8] and 'b' [4, 8] overlap"},
      {"shape and size disagree", assemble(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       "tensor 'w': F32 [3] needs 12 bytes but data_offsets [0, 8] hold 8"},
      {"truncated data", valid.substr(0, valid.size() - 3), "tensor 'w': data_offsets [0, 8] end past the data section of 5 bytes"},
      {"offsets backwards", assemble(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       "tensor 'w': data_offsets [8, 0] run backwards"},
      {"five dimensions", assemble(R"({"w":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})", eight),
       "tensor 'w': shape has 5 dimensions"},
      {"negative dimension", assemble(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       "tensor 'w': shape entry -2 is not a non-negative integer"},
      {"element count overflows",
       assemble(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
       "tensor 'w': shape [4294967296,4294967296] overflows 64 bits"},
      {"byte count overflows",
       assemble(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", eight),
       "tensor 'w': shape [4611686018427387904] overflows 64 bits"},
      {"duplicate tensor name",
       assemble(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "header names 'w' twice"},
      {"metadata not strings", assemble(R"({"__metadata__":{"n":1}})", ""), "__metadata__ value of 'n' is not a string"},
      {"no data_offsets", assemble(R"({"w":{"dtype":"F32","shape":[2]}})", eight),
       "tensor 'w': data_offsets is not a pair of non-negative integers"},
      {"entry not an object", assemble(R"({"w":[1]})", ""), "tensor 'w': entry is not an object"},
  };
}

TEST(Safetensors, MalformedFilesAreRejectedByName) {
  ScratchDir dir;
  for (const MalformedCase& c : malformed_cases()) {
    SCOPED_TRACE(c.label);
    const auto path = dir / "bad.safetensors";
    testing::write_file(path, c.bytes);
    auto file = SafetensorsFile::open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), c.code);
    EXPECT_NE(file.status().message().find(path.string()), std::string::npos) << file.status().message();
    EXPECT_NE(file.status().message().find(c.expected), std::string::npos) << file.status().message();
  }
}

TEST(Safetensors, HeaderLongerThanTheLimitIsRejectedBeforeParsing) {
  ScratchDir dir;
  const auto path = dir / "huge.safetensors";
  const uint64_t length = kMaxSafetensorsHeaderBytes + 1;
  testing::write_file(path, le_u64(length));
  std::filesystem::resize_file(path, 8 + length);  // sparse: no 100 MiB written
  auto file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("exceeds the limit of 104857600 bytes"), std::string::npos)
      << file.status().message();
}

std::vector<NamedTensor> some_tensors(testing::SeededRng& rng, int count) {
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < count; ++i)
    tensors.push_back({std::string("t").append(std::to_string(i)), testing::random_tensor(rng, {i + 1, 3}, i % 2 ? DType::f16 : DType::f32)});
  return tensors;
}

void expect_model_holds(const SafetensorsModel& model, const std::vector<NamedTensor>& tensors) {
  ASSERT_EQ(model.tensor_names().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(model.tensor_names()[i], tensors[i].name);
    ASSERT_NE(model.find(tensors[i].name), nullptr);
    auto actual = model.tensor(tensors[i].name);
    ASSERT_TRUE(actual.ok()) << actual.status().message();
    ASSERT_EQ(actual->shape(), tensors[i].tensor.shape());
    for (int64_t e = 0; e < actual->elements(); ++e) EXPECT_EQ(actual->get_flat(e), tensors[i].tensor.get_flat(e));
  }
}

TEST(SafetensorsModel, ReadsASingleFileFolder) {
  testing::SeededRng rng;
  ScratchDir dir;
  const auto tensors = some_tensors(rng, 4);
  testing::write_safetensors(dir / "model.safetensors", tensors);
  auto model = SafetensorsModel::open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(model->files().size(), 1u);
  expect_model_holds(model.value(), tensors);
  EXPECT_FALSE(model->tensor("absent").ok());
}

TEST(SafetensorsModel, ReadsShardsThroughTheIndex) {
  testing::SeededRng rng;
  ScratchDir dir;
  const auto tensors = some_tensors(rng, 7);
  testing::write_sharded_safetensors(dir.path(), tensors, 3);
  ASSERT_TRUE(std::filesystem::exists(dir / "model-00003-of-00003.safetensors"));
  auto model = SafetensorsModel::open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(model->files().size(), 3u);
  expect_model_holds(model.value(), tensors);
}

TEST(SafetensorsModel, IndexProblemsAreErrorsNamingTheIndex) {
  testing::SeededRng rng;
  ScratchDir dir;
  testing::write_safetensors(dir / "a.safetensors", some_tensors(rng, 1));
  const auto index = dir / "model.safetensors.index.json";
  const std::pair<const char*, const char*> cases[] = {
      {R"({"weight_map": {"t0": "a.safetensors", "t9": "a.safetensors"}})", "lists tensor 't9' in a.safetensors"},
      {R"({"weight_map": {"t0": "../a.safetensors"}})", "is not a file name in the folder"},
      {R"({"weight_map": {"t0": 3}})", "is not a file name in the folder"},
      {R"({"metadata": {}})", "no weight_map object"},
      {R"({"weight_map": )", "not valid JSON"},
  };
  for (auto [text, expected] : cases) {
    SCOPED_TRACE(text);
    testing::write_file(index, text);
    auto model = SafetensorsModel::open(dir.path());
    ASSERT_FALSE(model.ok());
    EXPECT_NE(model.status().message().find(index.string()), std::string::npos) << model.status().message();
    EXPECT_NE(model.status().message().find(expected), std::string::npos) << model.status().message();
  }
}

TEST(SafetensorsModel, FolderWithoutWeightsIsAnError) {
  ScratchDir dir;
  auto model = SafetensorsModel::open(dir.path());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("no model.safetensors"), std::string::npos) << model.status().message();
}

TEST(SafetensorsModel, ABadShardIsNamedInTheError) {
  ScratchDir dir;
  testing::write_file(dir / "s1.safetensors", le_u64(99));
  testing::write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"w": "s1.safetensors"}})");
  auto model = SafetensorsModel::open(dir.path());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("s1.safetensors"), std::string::npos) << model.status().message();
}

}  // namespace
}  // namespace ember
