#include <gtest/gtest.h>

#include <memory>

#include "ember/status.h"

namespace ember {
namespace {

Result<int> parse_positive(int value) {
  if (value <= 0) return invalid_argument("value must be positive");
  return value;
}

Status chain(int value) {
  auto parsed = parse_positive(value);
  EMBER_RETURN_IF_ERROR(parsed.status());
  return {};
}

TEST(Status, DefaultIsOk) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::ok);
}

TEST(Status, ErrorCarriesCodeAndMessage) {
  Status status = out_of_range("tensor 'x' index 7 past 5");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::out_of_range);
  EXPECT_EQ(status.message(), "tensor 'x' index 7 past 5");
}

TEST(Result, HoldsValueOrStatus) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(bad.status().message(), "value must be positive");
}

TEST(Result, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> boxed(std::make_unique<int>(5));
  ASSERT_TRUE(boxed.ok());
  std::unique_ptr<int> taken = std::move(boxed).value();
  EXPECT_EQ(*taken, 5);
}

TEST(Status, ReturnIfErrorPropagates) {
  EXPECT_TRUE(chain(1).ok());
  EXPECT_EQ(chain(0).code(), ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace ember
