#include "ember/buffer_pool.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ember {

struct BufferPool::State {
  struct Idle {
    size_t bucket;
    std::unique_ptr<Buffer> buffer;
  };

  std::mutex mutex;
  size_t cap;
  PoolStats stats;
  std::list<Idle> idle_by_age;  // front: least recently released
  std::unordered_map<size_t, std::vector<std::list<Idle>::iterator>> idle_by_bucket;

  // Caller holds the mutex.
  void evict_oldest() {
    Idle& oldest = idle_by_age.front();
    auto& same_bucket = idle_by_bucket[oldest.bucket];
    same_bucket.erase(std::find(same_bucket.begin(), same_bucket.end(), idle_by_age.begin()));
    stats.bytes_cached -= oldest.bucket;
    ++stats.trimmed;
    idle_by_age.pop_front();
  }

  void trim_to(size_t limit) {
    while (stats.bytes_cached > limit && !idle_by_age.empty()) evict_oldest();
  }

  void release(Buffer* raw, size_t bucket) {
    std::unique_ptr<Buffer> buffer(raw);
    std::lock_guard lock(mutex);
    stats.bytes_live -= bucket;
    // One larger than the whole cache is not kept. One with a device home keeps it, so
    // that the next node on the device reuses its device memory too.
    if (bucket > cap) return;
    buffer->discard_contents();
    idle_by_age.push_back({bucket, std::move(buffer)});
    idle_by_bucket[bucket].push_back(std::prev(idle_by_age.end()));
    stats.bytes_cached += bucket;
    trim_to(cap);
  }
};

BufferPool::BufferPool(size_t cache_cap_bytes) : state_(std::make_shared<State>()) { state_->cap = cache_cap_bytes; }

BufferPool::~BufferPool() {
  std::lock_guard lock(state_->mutex);
  state_->trim_to(0);
}

size_t BufferPool::bucket_size(size_t bytes) {
  constexpr size_t kSmallest = 256;
  if (bytes <= kSmallest) return kSmallest;
  const int top_bit = std::bit_width(bytes - 1) - 1;  // floor(log2(bytes - 1))
  const size_t step = (size_t{1} << top_bit) / 8;
  return (bytes + step - 1) / step * step;
}

Result<std::shared_ptr<Buffer>> BufferPool::acquire(size_t bytes) {
  const size_t bucket = bucket_size(bytes);
  std::unique_ptr<Buffer> buffer;
  {
    std::lock_guard lock(state_->mutex);
    auto found = state_->idle_by_bucket.find(bucket);
    if (found != state_->idle_by_bucket.end() && !found->second.empty()) {
      // The idle buffer at the lowest address, whatever order they came back in.
      auto& idle = found->second;
      const auto lowest = std::min_element(idle.begin(), idle.end(), [](const auto& a, const auto& b) {
        return std::less<const Buffer*>()(a->buffer.get(), b->buffer.get());
      });
      auto entry = *lowest;
      *lowest = idle.back();
      idle.pop_back();
      buffer = std::move(entry->buffer);
      state_->idle_by_age.erase(entry);
      state_->stats.bytes_cached -= bucket;
      ++state_->stats.reuses;
    }
  }
  if (buffer == nullptr) {
    auto fresh = Buffer::allocate_unique(bucket);
    if (!fresh) {
      // The cache may be what fills memory: give it back and try once more.
      trim(0);
      fresh = Buffer::allocate_unique(bucket);
      if (!fresh) return fresh.status();
    }
    buffer = std::move(fresh.value());
    std::lock_guard lock(state_->mutex);
    ++state_->stats.allocations;
  }
  {
    std::lock_guard lock(state_->mutex);
    state_->stats.bytes_live += bucket;
    state_->stats.bytes_peak = std::max(state_->stats.bytes_peak, state_->stats.bytes_live);
  }
  std::weak_ptr<State> owner = state_;
  return std::shared_ptr<Buffer>(buffer.release(), [owner, bucket](Buffer* raw) {
    if (auto state = owner.lock())
      state->release(raw, bucket);
    else
      delete raw;
  });
}

void BufferPool::trim(size_t cached_bytes) {
  std::lock_guard lock(state_->mutex);
  state_->trim_to(cached_bytes);
}

void BufferPool::set_cache_cap(size_t cache_cap_bytes) {
  std::lock_guard lock(state_->mutex);
  state_->cap = cache_cap_bytes;
  state_->trim_to(cache_cap_bytes);
}

PoolStats BufferPool::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

void BufferPool::reset_peak() {
  std::lock_guard lock(state_->mutex);
  state_->stats.bytes_peak = state_->stats.bytes_live;
}

}  // namespace ember
