// Broken GGUF files derived from a valid one: each must be refused with an error that
// names the file and the problem, never a crash or an allocation sized by the forgery.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "ember/gguf.h"
#include "test_util.h"

namespace ember {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kHeaderBytes = 24;

class GgufMalformedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "ember-malformed-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "cannot create a scratch folder";
    folder_ = pattern;
    valid_ = build_valid_file();
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }

  // Alignment 64, so general.alignment is in the metadata; two tensors of two dims each.
  Bytes build_valid_file() {
    GgufWriter writer(64);
    writer.set("general.architecture", GgufValue::string("test"));
    writer.set("test.key_a", GgufValue::u32(7));
    writer.set("test.key_b", GgufValue::boolean(true));
    writer.set("test.names", GgufValue::strings({"alpha", "beta"}));
    writer.set("test.nested", GgufValue::array(GgufType::array, {GgufValue::array(GgufType::int32, {GgufValue::i32(1)})}));
    const auto fill = [](std::span<std::byte> out) {
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(i);
      return Status{};
    };
    EXPECT_TRUE(writer.add_tensor("tensor_a", {2, 8}, DType::f32, fill).ok());
    EXPECT_TRUE(writer.add_tensor("tensor_b", {2, 32}, DType::q8_0, fill).ok());
    const auto path = folder_ / "valid.gguf";
    EXPECT_TRUE(writer.write(path).ok());
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path save(const std::string& name, const Bytes& bytes) {
    const std::filesystem::path path = folder_ / name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // Where a unique string (a key or tensor name) starts in the valid file.
  size_t locate(const std::string& text) const {
    const auto found = std::search(valid_.begin(), valid_.end(), text.begin(), text.end());
    EXPECT_NE(found, valid_.end()) << text;
    EXPECT_EQ(std::search(found + 1, valid_.end(), text.begin(), text.end()), valid_.end()) << text << " is not unique";
    return static_cast<size_t>(found - valid_.begin());
  }

  std::filesystem::path folder_;
  Bytes valid_;
};

void put32(Bytes& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (8 * i));
}
void put64(Bytes& bytes, size_t at, uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

void expect_refused(const std::filesystem::path& path, const GgufLimits& limits, const std::string& keyword,
                    ErrorCode code) {
  auto file = GgufFile::open(path, limits);
  ASSERT_FALSE(file.ok()) << "opened a broken file";
  const Status status = file.status();
  const std::string& message = status.message();
  EXPECT_EQ(status.code(), code) << message;
  EXPECT_NE(message.find(path.filename().string()), std::string::npos) << "no file name in: " << message;
  EXPECT_NE(message.find(keyword), std::string::npos) << "no '" << keyword << "' in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "a multi-line message: " << message;
}

TEST(GgufNames, Utf8ValidationRejectsMalformedSequences) {
  EXPECT_TRUE(is_valid_utf8("plain.ascii"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc0\x80")) << "overlong NUL";
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80")) << "surrogate";
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80")) << "past U+10FFFF";
  EXPECT_FALSE(is_valid_utf8("\xe2\x9c")) << "cut short";
}

TEST_F(GgufMalformedTest, ValidFileOpens) {
  auto file = GgufFile::open(save("valid_again.gguf", valid_));
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->alignment(), 64u);
}

TEST_F(GgufMalformedTest, ShortFileOfAnotherKindIsNamedAsNotGguf) {
  expect_refused(save("notes.txt", {'h', 'e', 'l', 'l', 'o', '\n'}), {}, "not a GGUF file", ErrorCode::corrupt_file);
}

TEST_F(GgufMalformedTest, EveryTruncationIsRefused) {
  for (size_t length = 0; length < valid_.size(); ++length) {
    SCOPED_TRACE("truncated to " + std::to_string(length) + " of " + std::to_string(valid_.size()) + " bytes");
    const auto path = save("truncated.gguf", Bytes(valid_.begin(), valid_.begin() + static_cast<ptrdiff_t>(length)));
    expect_refused(path, {}, "end of the file", ErrorCode::corrupt_file);
  }
}

struct Case {
  std::string name;
  std::function<void(Bytes&)> corrupt;
  std::string keyword;
  ErrorCode code = ErrorCode::corrupt_file;
};

TEST_F(GgufMalformedTest, EachCorruptionIsRefusedWithItsReason) {
  const uint64_t after_header = valid_.size() - kHeaderBytes;
  const size_t architecture = locate("general.architecture");
  const size_t key_a = locate("test.key_a");
  const size_t key_b = locate("test.key_b");
  const size_t names = locate("test.names");
  const size_t alignment = locate("general.alignment");
  const size_t tensor_a = locate("tensor_a");
  const size_t tensor_b = locate("tensor_b");
  // Inside a key, past its name: value type at +length, value at +length+4.
  const size_t key_a_type = key_a + 10, key_b_value = key_b + 14, names_type = names + 10;
  const size_t alignment_type = alignment + 17, alignment_value = alignment + 21;
  // Inside a two-dim tensor entry, past its 8-byte name: n_dims, ne0, ne1, type, offset.
  const auto n_dims = [](size_t name) { return name + 8; };
  const auto ne0 = [](size_t name) { return name + 12; };
  const auto ne1 = [](size_t name) { return name + 20; };
  const auto type = [](size_t name) { return name + 28; };
  const auto offset = [](size_t name) { return name + 32; };

  const std::vector<Case> cases = {
      {"wrong magic", [](Bytes& b) { b[0] = 'X'; }, "bad magic"},
      {"version 1", [](Bytes& b) { put32(b, 4, 1); }, "unsupported GGUF version 1", ErrorCode::unsupported},
      {"version 4", [](Bytes& b) { put32(b, 4, 4); }, "unsupported GGUF version 4", ErrorCode::unsupported},
      {"big-endian version", [](Bytes& b) { put32(b, 4, 0x03000000); }, "big-endian", ErrorCode::unsupported},
      {"tensor count 2^63", [](Bytes& b) { put64(b, 8, uint64_t{1} << 63); }, "tensor count"},
      {"tensor count remaining+1", [&](Bytes& b) { put64(b, 8, after_header + 1); }, "tensor count"},
      {"kv count 2^63", [](Bytes& b) { put64(b, 16, uint64_t{1} << 63); }, "metadata key count"},
      {"kv count remaining+1", [&](Bytes& b) { put64(b, 16, after_header + 1); }, "metadata key count"},
      {"key length past the end", [&](Bytes& b) { put64(b, key_a - 8, b.size()); }, "past the end of the file"},
      {"string value past the end", [&](Bytes& b) { put64(b, architecture + 24, b.size()); }, "past the end of the file"},
      {"string length 2^64-1", [&](Bytes& b) { put64(b, architecture + 24, ~uint64_t{0}); }, "exceeds the limit"},
      {"unknown value type 13", [&](Bytes& b) { put32(b, key_a_type, 13); }, "unknown value type 13"},
      {"unknown array element type 13", [&](Bytes& b) { put32(b, names_type + 4, 13); }, "unknown value type 13"},
      {"array count 2^63", [&](Bytes& b) { put64(b, names_type + 8, uint64_t{1} << 63); }, "element count"},
      {"array count remaining+1", [&](Bytes& b) { put64(b, names_type + 8, b.size()); }, "element count"},
      {"bool value 2", [&](Bytes& b) { b[key_b_value] = 2; }, "neither 0 nor 1"},
      {"duplicate key", [&](Bytes& b) { b[key_b + 9] = 'a'; }, "duplicate metadata key 'test.key_a'"},
      {"invalid UTF-8 in a key", [&](Bytes& b) { b[key_a + 5] = 0xFF; }, "metadata key #1 is not valid UTF-8"},
      {"overlong UTF-8 in a key", [&](Bytes& b) { b[key_a + 5] = 0xC0; b[key_a + 6] = 0x80; }, "not valid UTF-8"},
      {"alignment 0", [&](Bytes& b) { put32(b, alignment_value, 0); }, "general.alignment 0 is not a nonzero power of two"},
      {"alignment 3", [&](Bytes& b) { put32(b, alignment_value, 3); }, "general.alignment 3 is not a nonzero power of two"},
      {"alignment as int32", [&](Bytes& b) { put32(b, alignment_type, 5); }, "general.alignment is a int32, not a uint32"},
      {"invalid UTF-8 in a tensor name", [&](Bytes& b) { b[tensor_b] = 0x80; }, "tensor #1 name is not valid UTF-8"},
      {"duplicate tensor name", [&](Bytes& b) { b[tensor_b + 7] = 'a'; }, "duplicate tensor name 'tensor_a'"},
      {"n_dims 0", [&](Bytes& b) { put32(b, n_dims(tensor_a), 0); }, "'tensor_a': 0 dimensions"},
      {"n_dims 5", [&](Bytes& b) { put32(b, n_dims(tensor_a), 5); }, "'tensor_a': 5 dimensions"},
      {"dimension past int64", [&](Bytes& b) { put64(b, ne0(tensor_a), uint64_t{1} << 63); }, "too large"},
      {"element count overflows",
       [&](Bytes& b) { put64(b, ne0(tensor_a), uint64_t{1} << 32); put64(b, ne1(tensor_a), uint64_t{1} << 32); },
       "element count of its dimensions overflows 64 bits"},
      {"byte size overflows",
       [&](Bytes& b) { put64(b, ne0(tensor_a), uint64_t{1} << 31); put64(b, ne1(tensor_a), uint64_t{1} << 31); },
       "byte size overflows 64 bits"},
      {"row of partial blocks", [&](Bytes& b) { put64(b, ne0(tensor_b), 16); }, "not whole q8_0 blocks"},
      {"unknown ggml type 99", [&](Bytes& b) { put32(b, type(tensor_a), 99); }, "unsupported ggml type 99",
       ErrorCode::unsupported},
      {"offset past the end", [&](Bytes& b) { put64(b, offset(tensor_b), uint64_t{1} << 40); },
       "'tensor_b': data [offset 1099511627776, 68 bytes] ends past the end of the file"},
      {"offset plus size overflows", [&](Bytes& b) { put64(b, offset(tensor_b), ~uint64_t{63}); },
       "ends past the end of the file"},
      {"misaligned offset", [&](Bytes& b) { put64(b, offset(tensor_b), 96); }, "offset 96 is not aligned to 64"},
      {"overlapping tensors", [&](Bytes& b) { put64(b, offset(tensor_b), 0); }, "overlap"},
      {"newline and escape in a tensor name",
       [&](Bytes& b) { b[tensor_a + 1] = '\n'; b[tensor_a + 2] = 0x1b; put32(b, type(tensor_a), 99); },
       "tensor 't\\n\\x1bsor_a': unsupported ggml type 99", ErrorCode::unsupported},
  };
  for (const Case& broken : cases) {
    SCOPED_TRACE(broken.name);
    Bytes bytes = valid_;
    broken.corrupt(bytes);
    ASSERT_NE(bytes, valid_) << "the corruption changed nothing";
    std::string file_name = broken.name;
    std::replace_if(file_name.begin(), file_name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    expect_refused(save(file_name + ".gguf", bytes), {}, broken.keyword, broken.code);
  }
}

TEST_F(GgufMalformedTest, ArraysNestedDeeperThanTheLimitAreRefused) {
  GgufValue nested = GgufValue::array(GgufType::uint8, {GgufValue(GgufValue::Storage(uint8_t{1}))});
  for (int depth = 1; depth < 5; ++depth) nested = GgufValue::array(GgufType::array, {nested});
  GgufWriter writer;
  writer.set("deep", nested);
  const auto path = folder_ / "deep.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  expect_refused(path, {}, "'deep': arrays nested deeper than the limit of 4", ErrorCode::corrupt_file);
  GgufLimits deeper;
  deeper.max_array_depth = 5;
  EXPECT_TRUE(GgufFile::open(path, deeper).ok()) << "five levels are fine under a limit of five";
}

TEST_F(GgufMalformedTest, LimitsAreCheckedBeforeAllocating) {
  const auto path = save("limits.gguf", valid_);
  GgufLimits few_tensors;
  few_tensors.max_tensors = 1;
  expect_refused(path, few_tensors, "tensor count 2 exceeds the limit of 1", ErrorCode::corrupt_file);
  GgufLimits few_keys;
  few_keys.max_metadata_entries = 2;
  expect_refused(path, few_keys, "metadata key count 6 exceeds the limit of 2", ErrorCode::corrupt_file);
  GgufLimits short_strings;
  short_strings.max_string_bytes = 8;
  expect_refused(path, short_strings, "exceeds the limit of 8 bytes", ErrorCode::corrupt_file);
  GgufLimits short_arrays;
  short_arrays.max_array_elements = 1;
  expect_refused(path, short_arrays, "'test.names': array of string element count 2 exceeds the limit of 1",
                 ErrorCode::corrupt_file);
  GgufLimits shallow;
  shallow.max_array_depth = 1;
  expect_refused(path, shallow, "'test.nested': arrays nested deeper than the limit of 1", ErrorCode::corrupt_file);
}

TEST_F(GgufMalformedTest, RandomByteDamageNeverCrashes) {
  testing::SeededRng rng;
  const auto path = folder_ / "damaged.gguf";
  for (int trial = 0; trial < 2000; ++trial) {
    Bytes bytes = valid_;
    const int64_t flips = rng.integer(1, 4);
    for (int64_t i = 0; i < flips; ++i)
      bytes[static_cast<size_t>(rng.integer(0, static_cast<int64_t>(bytes.size()) - 1))] =
          static_cast<uint8_t>(rng.integer(0, 255));
    save("damaged.gguf", bytes);
    auto file = GgufFile::open(path);
    if (file.ok()) {
      for (const GgufTensorInfo& info : file->tensors()) {
        auto tensor = file->tensor(info.name);
        if (tensor.ok()) {
          ASSERT_EQ(tensor->payload_bytes(), info.bytes) << "a view of the wrong size";
        }
      }
    } else {
      ASSERT_NE(file.status().message().find("damaged.gguf"), std::string::npos) << file.status().message();
    }
  }
}

}  // namespace
}  // namespace ember
