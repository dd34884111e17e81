#include "auth/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace meterhub::auth {

RateLimiter::RateLimiter(double rate, double burst, std::size_t max_keys)
    : rate_(rate), burst_(std::max(1.0, burst)), max_per_shard_(std::max<std::size_t>(1, max_keys / kShards)) {}

std::optional<unsigned> RateLimiter::acquire(std::string_view key, Clock::time_point now) {
  if (rate_ <= 0) return std::nullopt;
  Shard& s = shards_[std::hash<std::string_view>{}(key) % kShards];
  std::lock_guard lk(s.mu);
  auto it = s.buckets.find(std::string(key));
  if (it == s.buckets.end()) {
    if (s.buckets.size() >= max_per_shard_) prune(s, now);
    it = s.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.at).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  const double wait = (1.0 - b.tokens) / rate_;
  return static_cast<unsigned>(std::max(1.0, std::ceil(wait)));
}

void RateLimiter::prune(Shard& s, Clock::time_point now) {
  // Buckets that have refilled completely hold no information: drop them.
  std::erase_if(s.buckets, [&](const auto& kv) {
    const double elapsed = std::chrono::duration<double>(now - kv.second.at).count();
    return kv.second.tokens + elapsed * rate_ >= burst_;
  });
  if (s.buckets.size() < max_per_shard_) return;
  // Every bucket is busy (a flood of distinct keys): forget the least
  // recently used half. Forgetting refills, so this errs on letting through.
  std::vector<Clock::time_point> ats;
  ats.reserve(s.buckets.size());
  for (const auto& kv : s.buckets) ats.push_back(kv.second.at);
  auto mid = ats.begin() + static_cast<std::ptrdiff_t>(ats.size() / 2);
  std::nth_element(ats.begin(), mid, ats.end());
  const auto cut = *mid;
  std::erase_if(s.buckets, [&](const auto& kv) { return kv.second.at <= cut; });
}

}  // namespace meterhub::auth
