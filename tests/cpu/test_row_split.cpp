#include "cpu/row_split.h"

#include <gtest/gtest.h>

#include <omp.h>

#include <string>
#include <vector>

#include "cpu/threads.h"

namespace ember::cpu {
namespace {

struct Visit {
  int thread;
  size_t product;
  int64_t first_row, rows;
};

std::vector<Visit> visits_of(std::span<const RowShare> products, int64_t unit_rows, bool parallel) {
  std::vector<std::vector<Visit>> by_thread(static_cast<size_t>(threads()));
  for_each_row_share(products, unit_rows, parallel, [&](size_t product, int64_t first_row, int64_t rows) {
    const int thread = omp_get_thread_num();
    by_thread[static_cast<size_t>(thread)].push_back({thread, product, first_row, rows});
  });
  std::vector<Visit> all;
  for (const auto& visits : by_thread) all.insert(all.end(), visits.begin(), visits.end());
  return all;
}

// Groups of one x: M's q, k and v in q4_0 (the split that left one thread 1728 rows and
// the other 1344), M's down, the demo model's q, k and v in f32, rows that are not a
// multiple of the unit, a product of no rows, and rows of no bytes.
const std::vector<std::vector<RowShare>> kGroups = {
    {{2048, 1152, 224}, {512, 1152, 224}, {512, 1152, 224}},
    {{2048, 3168, 96}},
    {{288, 1152, 224}, {96, 1152, 224}, {96, 1152, 224}},
    {{1003, 200, 64}, {0, 200, 64}, {37, 600, 16}},
    {{45, 0, 16}},
};

TEST(RowShare, EveryRowOnceInChunksOnUnitsAndEachThreadItsShareOfTheBytes) {
  constexpr int64_t kUnit = 16;
  for (int thread_count : {1, 2, 3})
    for (const auto& group : kGroups) {
      set_threads(thread_count);
      SCOPED_TRACE(std::to_string(thread_count) + " threads, first product " + std::to_string(group[0].rows) + " rows");
      const std::vector<Visit> visits = visits_of(group, kUnit, true);
      std::vector<std::vector<int>> seen(group.size());
      for (size_t p = 0; p < group.size(); ++p) seen[p].assign(static_cast<size_t>(group[p].rows), 0);
      std::vector<int64_t> thread_bytes(static_cast<size_t>(thread_count), 0);
      int64_t total_bytes = 0;
      for (const RowShare& product : group) total_bytes += product.rows * product.row_bytes;
      for (const Visit& visit : visits) {
        const RowShare& product = group[visit.product];
        EXPECT_EQ(visit.first_row % kUnit, 0);
        EXPECT_GT(visit.rows, 0);
        EXPECT_LE(visit.rows, product.chunk_rows);
        ASSERT_LE(visit.first_row + visit.rows, product.rows);
        for (int64_t row = visit.first_row; row < visit.first_row + visit.rows; ++row) ++seen[visit.product][row];
        thread_bytes[static_cast<size_t>(visit.thread)] += visit.rows * product.row_bytes;
      }
      for (size_t p = 0; p < group.size(); ++p)
        for (int64_t row = 0; row < group[p].rows; ++row) ASSERT_EQ(seen[p][row], 1) << "product " << p << " row " << row;
      int64_t largest_unit = 0;
      for (const RowShare& product : group) largest_unit = std::max(largest_unit, kUnit * product.row_bytes);
      for (int t = 0; t < thread_count; ++t)
        EXPECT_NEAR(static_cast<double>(thread_bytes[static_cast<size_t>(t)]),
                    static_cast<double>(total_bytes) / thread_count, static_cast<double>(largest_unit))
            << "thread " << t;
    }
  set_threads(0);
}

TEST(RowShare, WithoutParallelOneThreadWalksEveryProductInOrder) {
  set_threads(2);
  const std::vector<RowShare> group = kGroups[0];
  const std::vector<Visit> visits = visits_of(group, 16, false);
  size_t product = 0;
  int64_t next_row = 0;
  for (const Visit& visit : visits) {
    EXPECT_EQ(visit.thread, 0);
    if (visit.product != product) {
      EXPECT_EQ(next_row, group[product].rows);
      product = visit.product;
      next_row = 0;
    }
    EXPECT_EQ(visit.first_row, next_row);
    next_row += visit.rows;
  }
  EXPECT_EQ(product, group.size() - 1);
  EXPECT_EQ(next_row, group.back().rows);
  set_threads(0);
}

// Chunks of about a byte budget: whole units, and never none.
TEST(RowShare, RowsForBytesAreWholeUnitsOfAboutTheBudget) {
  EXPECT_EQ(rows_for_bytes(256 * 1024, 1152, 16), 240);  // 227 rows hold the budget, rounded up to 16
  EXPECT_EQ(rows_for_bytes(256 * 1024, 1024, 16), 256);  // exactly 256 rows
  EXPECT_EQ(rows_for_bytes(256 * 1024, 1 << 20, 4), 4);  // a row past the budget still makes a unit
  EXPECT_EQ(rows_for_bytes(100, 0, 4), 100);             // rows of no bytes count as one byte each
}

}  // namespace
}  // namespace ember::cpu
