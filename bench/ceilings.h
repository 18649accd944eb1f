// The machine's ceilings, measured by the same binary as the kernels they bound.
#pragma once

#include <cstdint>

namespace ember::bench {

// Runs `iterations` rounds of 16 independent 512-bit FMA chains per thread on `threads`
// threads; returns a value that depends on every FMA so the work cannot be elided.
// Requires AVX-512F (check before calling).
float fma_avx512_chains(int64_t iterations, int threads);
inline constexpr int64_t kFlopsPerFmaRound = 16 * 16 * 2;  // 16 chains × 16 lanes × (mul + add)

// The int8 dot-product peak: `iterations` rounds of 16 independent 512-bit vpdpbusd
// chains per thread. Each vpdpbusd does 64 multiply-adds, counted as 2 ops each, as
// peers.md and the quantized kernels' GOP/s do. Requires AVX512-VNNI.
int32_t int8_dot_avx512vnni_chains(int64_t iterations, int threads);
inline constexpr int64_t kOpsPerDotRound = 16 * 64 * 2;

// The bf16 pair dot-product peak: `iterations` rounds of 16 independent 512-bit vdpbf16ps
// chains per thread. Each adds 32 products (two per f32 lane): 64 FLOPs, counted as the
// FMA probe counts a multiply-add. Requires AVX512-BF16.
float bf16_dot_avx512bf16_chains(int64_t iterations, int threads);
inline constexpr int64_t kFlopsPerBf16DotRound = 16 * 32 * 2;

// Sums `count` floats (a multiple of 128 × threads, 64-byte aligned) on `threads`
// threads, each reading 4 streams into 8 independent 512-bit accumulators, so the adds
// never limit the rate: memory does. Requires AVX-512F.
float read_sum_avx512(const float* data, int64_t count, int threads);

}  // namespace ember::bench
