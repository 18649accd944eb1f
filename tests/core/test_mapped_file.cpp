#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ember/buffer.h"
#include "ember/executor.h"
#include "ember/graph.h"
#include "ember/mapped_file.h"

namespace ember {
namespace {

class MappedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "ember-mapped-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "cannot create a scratch folder";
    folder_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }

  std::filesystem::path write_file(const std::string& name, const std::string& contents) {
    const std::filesystem::path path = folder_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  std::filesystem::path folder_;
};

TEST_F(MappedFileTest, MapsTheWholeFile) {
  const std::string contents = "GGUF and some bytes after it";
  const auto path = write_file("data.bin", contents);
  auto map = MappedFile::open(path);
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_EQ((*map)->path(), path);
  ASSERT_EQ((*map)->size(), contents.size());
  ASSERT_EQ((*map)->bytes().size(), contents.size());
  EXPECT_EQ(std::memcmp((*map)->bytes().data(), contents.data(), contents.size()), 0) << "mapped bytes differ from the file";
}

// Once a rearranged copy replaces a mapped tensor's pages they are handed back to the
// kernel: reading them again must give the file's bytes, and the file stays as it was.
TEST_F(MappedFileTest, FilePagesReadTheFileAgainAfterACopyReplacesThem) {
  std::string contents(5 * 4096 + 123, '\0');
  for (size_t i = 0; i < contents.size(); ++i) contents[i] = static_cast<char>(i * 131 % 251);
  const auto path = write_file("weights.bin", contents);
  auto map = MappedFile::open(path);
  ASSERT_TRUE(map.ok()) << map.status().message();
  auto* data = const_cast<std::byte*>((*map)->bytes().data());
  const size_t begin = 100, length = contents.size() - 300;
  auto buffer = Buffer::wrap_file_pages(data + begin, length, *map);
  auto copy = buffer->rearranged(1, [&](const std::byte* bytes) -> Result<std::shared_ptr<Buffer>> {
    auto out = Buffer::allocate(length);
    if (!out) return out.status();
    std::memcpy(out.value()->host_write().value(), bytes, length);
    return out;
  });
  ASSERT_TRUE(copy.ok()) << copy.status().message();
  EXPECT_EQ(std::memcmp(copy.value()->host_read().value(), contents.data() + begin, length), 0);
  EXPECT_EQ(std::memcmp(buffer->host_read().value(), contents.data() + begin, length), 0);
  EXPECT_EQ(std::memcmp((*map)->bytes().data(), contents.data(), contents.size()), 0);
  std::ifstream file(path, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, contents);
}

// The CPU multiplies a plain weight that lies in a file's pages from a copy in anonymous
// memory (huge pages), made once: the products have the bits of a writable weight's, the
// copy is the buffer's rearranged one (key 2 in core/cpu_backend.cpp), and the file
// stays as it was.
TEST_F(MappedFileTest, PlainWeightsInFilePagesAreMultipliedFromACopyWithTheSameBits) {
  const Shape shape{300, 96};
  std::string contents(static_cast<size_t>(shape.elements()) * 2, '\0');
  for (int64_t i = 0; i < shape.elements(); ++i) {
    const uint16_t half = static_cast<uint16_t>(0x3000 + i * 37 % 0x0c00);  // f16 in [0.125, 1)
    std::memcpy(contents.data() + 2 * i, &half, 2);
  }
  const auto path = write_file("weights.f16", contents);
  auto map = MappedFile::open(path);
  ASSERT_TRUE(map.ok()) << map.status().message();
  auto* data = const_cast<std::byte*>((*map)->bytes().data());
  const Tensor in_file = Tensor::view(Buffer::wrap_file_pages(data, contents.size(), *map), shape, DType::f16).value();
  Tensor writable = Tensor::empty(shape, DType::f16).value();
  std::memcpy(writable.write<std::byte>().value(), contents.data(), contents.size());
  for (int64_t rows : {1, 4}) {
    Tensor x = Tensor::empty({rows, 96}, DType::f32).value();
    for (int64_t i = 0; i < x.elements(); ++i) x.set_flat(i, std::sin(0.1f * static_cast<float>(i)));
    std::vector<Tensor> outputs;
    for (const Tensor& weight : {in_file, writable}) {
      Graph g;
      g.mark_output(g.linear(g.input("x", {rows, 96}), g.constant("w", weight), kInvalidNode));
      auto out = Executor().run(g, std::span(&x, 1));
      ASSERT_TRUE(out.ok()) << out.status().message();
      outputs.push_back((*out)[0]);
    }
    EXPECT_EQ(std::memcmp(outputs[0].read<float>().value(), outputs[1].read<float>().value(),
                          static_cast<size_t>(rows * 300) * sizeof(float)),
              0)
        << "rows " << rows;
  }
  auto made_again = in_file.buffer()->rearranged(2, [](const std::byte*) -> Result<std::shared_ptr<Buffer>> {
    return internal_error("the CPU made no copy of the file's weight");
  });
  EXPECT_TRUE(made_again.ok()) << made_again.status().message();
  std::ifstream file(path, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>()), contents);
}

TEST_F(MappedFileTest, EmptyFileIsAnEmptyMap) {
  const auto path = write_file("empty.bin", "");
  auto map = MappedFile::open(path);
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_EQ((*map)->size(), 0u);
  EXPECT_TRUE((*map)->bytes().empty());
}

TEST_F(MappedFileTest, MissingFileIsAnErrorNamingThePath) {
  const auto path = folder_ / "absent.gguf";
  auto map = MappedFile::open(path);
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), ErrorCode::io_error);
  EXPECT_NE(map.status().message().find(path.string()), std::string::npos) << map.status().message();
  EXPECT_NE(map.status().message().find("no such file"), std::string::npos) << map.status().message();
}

TEST_F(MappedFileTest, DirectoryIsAnErrorNamingThePath) {
  auto map = MappedFile::open(folder_);
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), ErrorCode::io_error);
  EXPECT_NE(map.status().message().find(folder_.string()), std::string::npos) << map.status().message();
  EXPECT_NE(map.status().message().find("directory"), std::string::npos) << map.status().message();
}

TEST_F(MappedFileTest, FifoIsRefusedWithoutBlocking) {
  const auto path = folder_ / "pipe";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto map = MappedFile::open(path);
  ASSERT_FALSE(map.ok()) << "a FIFO has no size to map";
  EXPECT_NE(map.status().message().find("not a regular file"), std::string::npos) << map.status().message();
}

TEST_F(MappedFileTest, UnreadableFileIsAnErrorNamingThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their permissions";
  const auto path = write_file("secret.bin", "hidden");
  std::filesystem::permissions(path, std::filesystem::perms::none);
  auto map = MappedFile::open(path);
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), ErrorCode::io_error);
  EXPECT_NE(map.status().message().find(path.string()), std::string::npos) << map.status().message();
}

TEST_F(MappedFileTest, MapOutlivesTheFileName) {
  const std::string contents = "still here";
  const auto path = write_file("gone.bin", contents);
  auto map = MappedFile::open(path);
  ASSERT_TRUE(map.ok()) << map.status().message();
  std::filesystem::remove(path);
  EXPECT_EQ(std::memcmp((*map)->bytes().data(), contents.data(), contents.size()), 0)
      << "an unlinked file's map must keep its bytes";
}

}  // namespace
}  // namespace ember
