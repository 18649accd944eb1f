#include "cpu/attention.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/fast_math.h"
#include "cpu/isa.h"
#include "cpu/threads.h"
#include "cpu/x86/attention_cache_kernels.h"
#include "quant/block_formats.h"

namespace ember::cpu {
namespace {

// Below this many multiply-adds (scores plus weighted values) one thread is faster.
constexpr int64_t kParallelWork = 64 * 1024;

// IEEE half → float without branches (Giesen's rebias-and-renormalise method), exact for
// every input — subnormals, infinities and NaN included — so the loops that widen the
// cache vectorise as plain selects.
inline float widen(uint16_t half) {
  constexpr uint32_t kShiftedExponent = 0x7c00u << 13;
  constexpr uint32_t kRebias = (127u - 15u) << 23;
  const uint32_t magnitude = static_cast<uint32_t>(half & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & kShiftedExponent;
  const uint32_t rebiased = magnitude + kRebias;
  // Infinity and NaN need the float's all-ones exponent.
  const uint32_t special = rebiased + ((128u - 16u) << 23);
  // A subnormal half is m·2⁻²⁴: give it the implicit one of 2⁻¹⁴ and subtract 2⁻¹⁴ again,
  // letting the FPU normalise.
  const float subnormal = std::bit_cast<float>(rebiased + (1u << 23)) - std::bit_cast<float>(113u << 23);
  const uint32_t unsigned_bits = exponent == kShiftedExponent ? special
                                 : exponent == 0             ? std::bit_cast<uint32_t>(subnormal)
                                                             : rebiased;
  return std::bit_cast<float>(unsigned_bits | static_cast<uint32_t>(half & 0x8000u) << 16);
}

inline float widen(float value) { return value; }

// A cache row of `length` values widened to f32.
void widen_row(const float* row, int64_t length, float* out) {
  for (int64_t d = 0; d < length; ++d) out[d] = row[d];
}

void widen_row(const uint16_t* row, int64_t length, float* out) {
#pragma omp simd
  for (int64_t d = 0; d < length; ++d) out[d] = widen(row[d]);
}

void widen_row(const quant::BlockQ8_0* row, int64_t length, float* out) {
  constexpr int kBlock = quant::kQK8_0;
  for (int64_t block = 0; block < length / kBlock; ++block, out += kBlock) {
    const float scale = widen(row[block].d);
    for (int lane = 0; lane < kBlock; ++lane) out[lane] = scale * static_cast<float>(row[block].qs[lane]);
  }
}

// Head-dim values per stored Element: one for the plain types, a whole block for q8_0.
template <class Element>
constexpr int64_t kValuesPer = 1;
template <>
constexpr int64_t kValuesPer<quant::BlockQ8_0> = quant::kQK8_0;

// The tiling (flash attention): a tile of query rows meets the keys a block at a time with
// a running softmax, so no score row longer than a key block ever exists, and each key
// and value is widened once per tile rather than once per query.
// Keys per block: a fixed width, so a block of scores is a few vector registers per row.
constexpr int64_t kKeyBlock = 64;
// Query rows per tile (tokens × the query heads sharing one kv head): enough rows that a
// widened key block is reused many times while it sits in L1.
constexpr int64_t kTileRows = 64;

// Value rows and output rows are padded with zeros to whole chunks of this many floats,
// the width the value accumulation keeps in registers.
constexpr int64_t kValueChunk = 16;

// Everything one thread needs for a tile (scratch_for keeps one per thread).
struct TileScratch {
  explicit TileScratch(int64_t head_dim)
      : head_dim(head_dim),
        padded_dim((head_dim + kValueChunk - 1) / kValueChunk * kValueChunk),
        queries(kTileRows * head_dim),
        keys_transposed(head_dim * kKeyBlock),
        values(kKeyBlock * padded_dim, 0.0f),
        scores(kTileRows * kKeyBlock),
        out(kTileRows * padded_dim),
        running_max(kTileRows),
        running_sum(kTileRows),
        widened_key(head_dim),
        visible(kTileRows) {}
  int64_t head_dim, padded_dim;
  std::vector<float> queries, keys_transposed, values, scores, out, running_max, running_sum, widened_key;
  std::vector<int64_t> visible;  // keys row i may see: its position + 1
};

// This thread's scratch, kept from call to call: allocating and zeroing it took about 5%
// of a decoded token's attention (perf, M at 64 cached keys).
TileScratch& scratch_for(int64_t head_dim) {
  thread_local std::unique_ptr<TileScratch> scratch;
  if (!scratch || scratch->head_dim != head_dim) scratch = std::make_unique<TileScratch>(head_dim);
  return *scratch;
}

// scores[i][j] = scale · q_i · k_j for kRows rows of the tile and the whole key block,
// each widened key element loaded once for all kRows rows.
template <int kRows>
void row_scores(const float* queries, int64_t head_dim, const float* keys_transposed, float scale, float* scores) {
  float sums[kRows][kKeyBlock] = {};
  for (int64_t d = 0; d < head_dim; ++d) {
    const float* k_d = keys_transposed + d * kKeyBlock;
    for (int r = 0; r < kRows; ++r) {
      const float q_d = queries[r * head_dim + d];
#pragma omp simd
      for (int64_t j = 0; j < kKeyBlock; ++j) sums[r][j] += q_d * k_d[j];
    }
  }
  for (int r = 0; r < kRows; ++r)
#pragma omp simd
    for (int64_t j = 0; j < kKeyBlock; ++j) scores[r * kKeyBlock + j] = scale * sums[r][j];
}

// Every row's sum over head_dim runs in the same order whether it falls in a 4-row step or
// the tail, so a query's result does not depend on the rows it was batched with.
void block_scores(const TileScratch& tile, int64_t rows, int64_t head_dim, float scale, float* scores) {
  constexpr int kStep = 4;
  int64_t i = 0;
  for (; i + kStep <= rows; i += kStep)
    row_scores<kStep>(tile.queries.data() + i * head_dim, head_dim, tile.keys_transposed.data(), scale,
                      scores + i * kKeyBlock);
  for (; i < rows; ++i)
    row_scores<1>(tile.queries.data() + i * head_dim, head_dim, tile.keys_transposed.data(), scale,
                  scores + i * kKeyBlock);
}

// out[r][:] += Σ_j weights[r][j] · values[j][:] for kRows rows, in chunks of head_dim held
// in registers across the whole key block. Each element of a row sums its keys in key
// order whatever kRows is.
template <int kRows>
void accumulate_values(const float* weights, int64_t keys, const float* values, int64_t padded_dim, float* out) {
  for (int64_t first = 0; first < padded_dim; first += kValueChunk) {
    float sums[kRows][kValueChunk];
    for (int r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < kValueChunk; ++c) sums[r][c] = out[r * padded_dim + first + c];
    for (int64_t j = 0; j < keys; ++j) {
      const float* value = values + j * padded_dim + first;
      for (int r = 0; r < kRows; ++r) {
        const float weight = weights[r * kKeyBlock + j];
#pragma omp simd
        for (int64_t c = 0; c < kValueChunk; ++c) sums[r][c] += weight * value[c];
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < kValueChunk; ++c) out[r * padded_dim + first + c] = sums[r][c];
  }
}

// Folds one key block into each row's running softmax and weighted value sum. Keys a row
// may not see get weight exactly 0 (they are real keys of later rows of the tile, never
// the unwritten rows past the prompt), so they add nothing.
void fold_block(TileScratch& tile, int64_t rows, int64_t first_key, int64_t keys) {
  const int64_t padded_dim = tile.padded_dim;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t seen = std::min(keys, tile.visible[i] - first_key);
    float* scores = tile.scores.data() + i * kKeyBlock;
    if (seen <= 0) {
      std::fill(scores, scores + keys, 0.0f);
      continue;
    }
    float block_max = scores[0];
    for (int64_t j = 1; j < seen; ++j) block_max = scores[j] > block_max ? scores[j] : block_max;
    const float previous_max = tile.running_max[i];
    if (block_max > previous_max) {
      // The first block has no previous sum: its rescale would multiply zeros.
      const float rescale = previous_max == -INFINITY ? 0.0f : fast_exp(previous_max - block_max);
      tile.running_sum[i] *= rescale;
      float* out = tile.out.data() + i * padded_dim;
#pragma omp simd
      for (int64_t d = 0; d < padded_dim; ++d) out[d] *= rescale;
      tile.running_max[i] = block_max;
    }
    const float row_max = tile.running_max[i];
#pragma omp simd
    for (int64_t j = 0; j < seen; ++j) scores[j] = fast_exp(scores[j] - row_max);
    std::fill(scores + seen, scores + keys, 0.0f);
    float block_sum = 0.0f;
    for (int64_t j = 0; j < seen; ++j) block_sum += scores[j];
    tile.running_sum[i] += block_sum;
  }
  constexpr int kStep = 4;
  int64_t i = 0;
  for (; i + kStep <= rows; i += kStep)
    accumulate_values<kStep>(tile.scores.data() + i * kKeyBlock, keys, tile.values.data(), padded_dim,
                             tile.out.data() + i * padded_dim);
  for (; i < rows; ++i)
    accumulate_values<1>(tile.scores.data() + i * kKeyBlock, keys, tile.values.data(), padded_dim,
                         tile.out.data() + i * padded_dim);
}

// The 512-bit kernels widen 16 elements at a time and transpose 16 x 16 blocks of keys.
bool widens_in_avx512(int64_t head_dim) { return has_avx512(active_isa()) && head_dim % 16 == 0; }

// keys cache rows from `rows` on into tile.keys_transposed[d][j]. Columns past the last
// key keep whatever they held: their scores are computed but never used.
template <class Element>
void widen_keys(const Element* rows, int64_t cache_row, int64_t keys, int64_t head_dim, TileScratch& tile) {
  float* transposed = tile.keys_transposed.data();
  if constexpr (kValuesPer<Element> == 1) {
    if (widens_in_avx512(head_dim))
      return x86::widen_keys_transposed_avx512(rows, cache_row, keys, head_dim, transposed, kKeyBlock);
  }
  for (int64_t j = 0; j < keys; ++j) {
    widen_row(rows + j * cache_row, head_dim, tile.widened_key.data());
    for (int64_t d = 0; d < head_dim; ++d) transposed[d * kKeyBlock + j] = tile.widened_key[d];
  }
}

// keys cache rows from `rows` on into tile.values[j][d].
template <class Element>
void widen_values(const Element* rows, int64_t cache_row, int64_t keys, int64_t head_dim, TileScratch& tile) {
  if constexpr (std::is_same_v<Element, uint16_t>) {
    if (widens_in_avx512(head_dim))
      return x86::widen_values_avx512(rows, cache_row, keys, head_dim, tile.values.data(), tile.padded_dim);
  }
  for (int64_t j = 0; j < keys; ++j) widen_row(rows + j * cache_row, head_dim, &tile.values[j * tile.padded_dim]);
}

// One tile: tokens [first_token, first_token + tokens) × the `group` query heads of kv head
// `kv_head`, over every key the last of them may see.
template <class Element>
void attend_tile(const AttentionArgs& args, int64_t kv_head, int64_t first_token, int64_t tokens, TileScratch& tile) {
  const int64_t head_dim = args.head_dim;
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t rows = tokens * group;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t g = 0; g < group; ++g) {
      const int64_t row = t * group + g;
      const float* q = args.q + ((first_token + t) * args.q_heads + kv_head * group + g) * head_dim;
      std::copy(q, q + head_dim, tile.queries.begin() + row * head_dim);
      tile.visible[row] = args.position_offset + first_token + t + 1;
      tile.running_max[row] = -INFINITY;
      tile.running_sum[row] = 0.0f;
    }
  std::fill(tile.out.begin(), tile.out.begin() + rows * tile.padded_dim, 0.0f);

  const int64_t cache_row = args.kv_heads * head_dim / kValuesPer<Element>;
  const int64_t head_offset = kv_head * head_dim / kValuesPer<Element>;
  const auto* k = static_cast<const Element*>(args.k) + head_offset;
  const auto* v = static_cast<const Element*>(args.v) + head_offset;
  const int64_t key_end = args.position_offset + first_token + tokens;
  for (int64_t first_key = 0; first_key < key_end; first_key += kKeyBlock) {
    const int64_t keys = std::min(kKeyBlock, key_end - first_key);
    widen_keys(k + first_key * cache_row, cache_row, keys, head_dim, tile);
    widen_values(v + first_key * cache_row, cache_row, keys, head_dim, tile);
    block_scores(tile, rows, head_dim, args.scale, tile.scores.data());
    fold_block(tile, rows, first_key, keys);
  }

  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t g = 0; g < group; ++g) {
      const int64_t row = t * group + g;
      const float normaliser = 1.0f / tile.running_sum[row];
      const float* source = tile.out.data() + row * tile.padded_dim;
      float* out = args.out + ((first_token + t) * args.q_heads + kv_head * group + g) * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) out[d] = source[d] * normaliser;
    }
}

template <class Element>
void attention_typed(const AttentionArgs& args) {
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t tile_tokens = std::max<int64_t>(1, kTileRows / group);
  const int64_t token_blocks = (args.tokens + tile_tokens - 1) / tile_tokens;
  const int64_t tiles = token_blocks * args.kv_heads;
  const int64_t last_visible = args.position_offset + args.tokens;
  const bool parallel = threads() > 1 && args.tokens * args.q_heads * last_visible * args.head_dim * 2 >= kParallelWork;
  // Later tokens see more keys: the largest tiles go first, one at a time, so the threads
  // finish together. Each tile is computed whole by one thread in a fixed order, so the
  // schedule never changes a result. The threads take tiles from an atomic counter rather
  // than through schedule(dynamic): Debian's LLVM OpenMP runtime formats a trace message
  // with vsnprintf on every dynamic-loop step, about 200 per decoded token of M
  // (docs/PERFORMANCE.md, nineteenth session).
  const auto run_tile = [&](TileScratch& tile, int64_t item) {
    const int64_t token_block = token_blocks - 1 - item / args.kv_heads;
    const int64_t first_token = token_block * tile_tokens;
    attend_tile<Element>(args, item % args.kv_heads, first_token, std::min(tile_tokens, args.tokens - first_token), tile);
  };
  if (!parallel) {
    TileScratch& tile = scratch_for(args.head_dim);
    for (int64_t item = 0; item < tiles; ++item) run_tile(tile, item);
    return;
  }
  std::atomic<int64_t> next_item{0};
#pragma omp parallel num_threads(threads())
  {
    TileScratch& tile = scratch_for(args.head_dim);
    for (int64_t item = next_item.fetch_add(1, std::memory_order_relaxed); item < tiles;
         item = next_item.fetch_add(1, std::memory_order_relaxed))
      run_tile(tile, item);
  }
}

}  // namespace

void attention(const AttentionArgs& args) {
  if (args.tokens <= 0 || args.q_heads <= 0 || args.head_dim <= 0) return;
  switch (args.kv_type) {
    case ElementType::f16: return attention_typed<uint16_t>(args);
    case ElementType::q8_0: return attention_typed<quant::BlockQ8_0>(args);
    default: return attention_typed<float>(args);
  }
}

}  // namespace ember::cpu
