// Token buckets per key (a client IP, a meter): `rate` requests per second
// on average, bursts up to `burst`. Memory is bounded: at most `max_keys`
// buckets are kept; full (idle) buckets are dropped first, and when every
// bucket is busy the oldest half goes, which only ever lets more through.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace meterhub::auth {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // rate <= 0 disables the limiter (everything passes).
  RateLimiter(double rate, double burst, std::size_t max_keys = 100'000);

  bool enabled() const { return rate_ > 0; }
  // nullopt: allowed (one token taken). Otherwise the whole seconds (>= 1)
  // until a token is available: the Retry-After to send.
  std::optional<unsigned> acquire(std::string_view key, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double tokens;
    Clock::time_point at;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
  };
  void prune(Shard& s, Clock::time_point now);

  double rate_, burst_;
  std::size_t max_per_shard_;
  static constexpr std::size_t kShards = 16;
  std::array<Shard, kShards> shards_;
};

}  // namespace meterhub::auth
