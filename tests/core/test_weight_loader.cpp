// rows_in_own_buffer (core/model_weights.h): a matrix's row range as a tensor over a
// buffer of its own, on the same bytes, which keeps the whole alive; GPT-2's fused
// attn_qkv is split so.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "core/model_weights.h"
#include "test_util.h"

namespace ember {
namespace {

TEST(RowsInOwnBuffer, GivesTheRowsOverABufferOfTheirOwnThatOutlivesTheWhole) {
  testing::SeededRng rng;
  const std::vector<float> values = rng.uniform(7 * 5);
  auto whole = Tensor::empty(Shape{7, 5}, DType::f32);
  ASSERT_TRUE(whole) << whole.status().message();
  for (int64_t i = 0; i < whole->elements(); ++i) whole->set_flat(i, values[static_cast<size_t>(i)]);

  auto part = rows_in_own_buffer(whole.value(), 2, 3);
  ASSERT_TRUE(part) << part.status().message();
  EXPECT_EQ(part->shape(), (Shape{3, 5}));
  EXPECT_EQ(part->byte_offset(), 0u);
  EXPECT_NE(part->buffer(), whole->buffer());
  EXPECT_EQ(part->buffer()->bytes(), 3u * 5u * sizeof(float));
  whole = Tensor();  // the part alone holds the bytes now
  for (int64_t i = 0; i < part->elements(); ++i) EXPECT_EQ(part->get_flat(i), values[static_cast<size_t>(10 + i)]);
}

TEST(RowsInOwnBuffer, KeepsBlockRowsAndFilePagesAndRefusesRowsPastTheEnd) {
  testing::SeededRng rng;
  constexpr int64_t kRows = 4, kColumns = 64;  // q8_0: 2 blocks of 34 bytes a row
  constexpr size_t kRowBytes = 68;
  auto bytes = std::make_shared<std::vector<std::byte>>(kRows * kRowBytes);
  for (std::byte& byte : *bytes) byte = static_cast<std::byte>(rng.integer(0, 255));
  auto pages = Buffer::wrap_file_pages(bytes->data(), bytes->size(), bytes);
  auto whole = Tensor::view(pages, Shape{kRows, kColumns}, DType::q8_0);
  ASSERT_TRUE(whole) << whole.status().message();

  auto part = rows_in_own_buffer(whole.value(), 1, 2);
  ASSERT_TRUE(part) << part.status().message();
  EXPECT_EQ(part->shape(), (Shape{2, kColumns}));
  EXPECT_TRUE(part->buffer()->file_pages());
  EXPECT_FALSE(part->buffer()->writable());
  ASSERT_EQ(part->buffer()->bytes(), 2 * kRowBytes);
  auto read = part->read<std::byte>();
  ASSERT_TRUE(read) << read.status().message();
  EXPECT_EQ(std::memcmp(read.value(), bytes->data() + kRowBytes, 2 * kRowBytes), 0);

  EXPECT_FALSE(rows_in_own_buffer(whole.value(), 3, 2));
  EXPECT_FALSE(rows_in_own_buffer(whole.value(), -1, 1));
}

}  // namespace
}  // namespace ember
