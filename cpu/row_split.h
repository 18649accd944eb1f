// How the products of one x share out their weight rows among the threads: each thread
// takes one contiguous run of the group's rows (the products one after another) holding
// an equal part of the weight bytes, to within one unit of rows. A static split of
// equal-sized tiles left the products' partial last tiles unevenly spread: a decoded
// token's q, k and v of M (2048 + 512 + 512 rows in tiles of 192) gave one thread 1728
// rows and the other 1344.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <span>

#include "cpu/threads.h"

namespace ember::cpu {

struct RowShare {
  int64_t rows = 0;        // the product's output rows
  int64_t row_bytes = 0;   // weight bytes per row
  int64_t chunk_rows = 1;  // the most rows one visit takes: a multiple of the unit
};

// Rows of `row_bytes` each that hold about `bytes`: at least one unit, in whole units of
// unit_rows (a chunk_rows that fits a cache, say).
inline int64_t rows_for_bytes(int64_t bytes, int64_t row_bytes, int64_t unit_rows) {
  const int64_t rows = std::max<int64_t>(1, bytes / std::max<int64_t>(1, row_bytes));
  return (rows + unit_rows - 1) / unit_rows * unit_rows;
}

// visit(product, first_row, rows) for every row of every product, once, in runs of at
// most the product's chunk_rows that start on multiples of unit_rows. With `parallel`,
// on threads() threads, each walking its own share in row order.
template <class Visit>
void for_each_row_share(std::span<const RowShare> products, int64_t unit_rows, bool parallel, Visit visit) {
  // Rows of no bytes (an empty x) still count, so every row is visited.
  const auto unit_bytes_of = [&](const RowShare& product) { return unit_rows * std::max<int64_t>(1, product.row_bytes); };
  const auto units_of = [&](const RowShare& product) {
    return (std::max<int64_t>(0, product.rows) + unit_rows - 1) / unit_rows;
  };
  int64_t total_bytes = 0;
  for (const RowShare& product : products) total_bytes += units_of(product) * unit_bytes_of(product);
#pragma omp parallel num_threads(threads()) if (parallel)
  {
    const int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t low = total_bytes / team * me + total_bytes % team * me / team;
    const int64_t high = total_bytes / team * (me + 1) + total_bytes % team * (me + 1) / team;
    // A unit belongs to the thread whose byte range holds the unit's first byte.
    const auto first_unit_from = [](int64_t byte, int64_t unit_bytes) {
      return byte <= 0 ? int64_t{0} : (byte + unit_bytes - 1) / unit_bytes;
    };
    int64_t offset = 0;
    for (size_t p = 0; p < products.size(); ++p) {
      const int64_t rows = std::max<int64_t>(0, products[p].rows);
      const int64_t units = units_of(products[p]);
      const int64_t unit_bytes = unit_bytes_of(products[p]);
      const int64_t first = std::min(units, first_unit_from(low - offset, unit_bytes)) * unit_rows;
      const int64_t end = std::min(rows, std::min(units, first_unit_from(high - offset, unit_bytes)) * unit_rows);
      const int64_t chunk_rows = products[p].chunk_rows;
      for (int64_t row = first; row < end; row += chunk_rows) visit(p, row, std::min(chunk_rows, end - row));
      offset += units * unit_bytes;
    }
  }
}

}  // namespace ember::cpu
