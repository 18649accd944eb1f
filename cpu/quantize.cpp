#include "cpu/quantize.h"

#include <algorithm>

#include "cpu/isa.h"
#include "cpu/threads.h"
#include "quant/quantize.h"

namespace ember::cpu {
namespace {

// Work handed to one thread at a time, in f32 input: small enough that two threads split
// even a single large row, large enough that a chunk's setup cost vanishes.
constexpr int64_t kChunkFloats = 16 * 1024;
// Below this many floats a parallel region costs more than it saves.
constexpr int64_t kParallelFloats = 64 * 1024;

using BlocksKernel = void (*)(DType, const float*, void*, int64_t);

BlocksKernel kernel_for(DType type, Isa isa) {
  if (!x86::has_simd_quantizer(type)) return quant::quantize_row_reference;
  if (has_avx512(isa))
    return type == DType::q4_k || type == DType::q6_k ? x86::quantize_blocks_avx2 : x86::quantize_blocks_avx512;
  if (has_avx2(isa)) return x86::quantize_blocks_avx2;
  return quant::quantize_row_reference;
}

// Every format quantizes each block on its own and rows are stored back to back, so the
// matrix is one long run of blocks: chunks of whole blocks can cross row boundaries, and
// the split never changes a byte of the output.
template <class ChunkFn>
void for_each_chunk(DType type, int64_t elements, ChunkFn&& chunk_fn) {
  const int64_t block = block_elements(type);
  const int64_t chunk_elements = std::max(block, kChunkFloats / block * block);
  const int64_t chunks = (elements + chunk_elements - 1) / chunk_elements;
#pragma omp parallel for num_threads(threads()) schedule(static) if (elements >= kParallelFloats)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * chunk_elements;
    chunk_fn(first, std::min(chunk_elements, elements - first));
  }
}

}  // namespace

bool x86::has_simd_quantizer(DType type) {
  return type == DType::q8_0 || type == DType::q8_1 || type == DType::q4_0 || type == DType::q4_1 ||
         type == DType::q4_k || type == DType::q6_k || type == DType::q8_k;
}

void quantize_rows(DType type, const float* x, int64_t rows, int64_t row_length, void* out) {
  const BlocksKernel kernel = kernel_for(type, active_isa());
  const int64_t block = block_elements(type);
  auto* bytes = static_cast<char*>(out);
  for_each_chunk(type, rows * row_length, [&](int64_t first, int64_t count) {
    kernel(type, x + first, bytes + first / block * block_bytes(type), count);
  });
}

void dequantize_rows(DType type, const void* blocks, int64_t rows, int64_t row_length, float* out) {
  const int64_t block = block_elements(type);
  const auto* bytes = static_cast<const char*>(blocks);
  for_each_chunk(type, rows * row_length, [&](int64_t first, int64_t count) {
    quant::dequantize_row(type, bytes + first / block * block_bytes(type), out + first, count);
  });
}

}  // namespace ember::cpu
