// BufferPool: reuses host buffers for intermediate tensors.
//
// Requests are rounded up to a size bucket (powers of two split into 8 steps, so at
// most 12.5% is wasted); a released buffer waits in its bucket for the next request of
// that bucket. A request takes the bucket's idle buffer at the lowest address, not the
// last one released: a pass that repeats the one before (a decoded token) then gets the
// same buffer for each node whatever order the last pass released them in, and a device
// binds them as it did before (gpu/descriptor_sets.h keeps those bindings). Cached (idle) bytes are capped: past the cap the least recently released
// buffers are freed. Buffers handed out stay valid after the pool is destroyed (they
// are then freed, not cached). All methods are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ember/buffer.h"
#include "ember/status.h"

namespace ember {

struct PoolStats {
  uint64_t allocations = 0;  // fresh buffers made
  uint64_t reuses = 0;       // requests served from the cache
  size_t bytes_live = 0;     // bucket bytes handed out and not yet released
  size_t bytes_peak = 0;     // most bytes_live seen since construction or reset_peak()
  size_t bytes_cached = 0;   // idle bytes waiting for reuse
  uint64_t trimmed = 0;      // buffers freed to respect the cap
};

class BufferPool {
 public:
  static constexpr size_t kDefaultCacheBytes = size_t{1} << 30;

  explicit BufferPool(size_t cache_cap_bytes = kDefaultCacheBytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A host buffer of at least `bytes` bytes; it returns to the pool when the last
  // shared_ptr to it goes away.
  Result<std::shared_ptr<Buffer>> acquire(size_t bytes);

  // Frees idle buffers, least recently released first, until at most `cached_bytes` remain.
  void trim(size_t cached_bytes);
  void set_cache_cap(size_t cache_cap_bytes);
  PoolStats stats() const;
  void reset_peak();

  // The size a request of `bytes` is rounded up to.
  static size_t bucket_size(size_t bytes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace ember
