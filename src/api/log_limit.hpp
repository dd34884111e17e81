#pragma once
// At most `burst` log lines per second for one kind of event; the rest are
// counted and summarised once the second is over, so a flood of bad requests
// cannot flood the log. Thread-safe.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace meterhub::api {

class LogLimit {
 public:
  // `what` names the events in the summary line ("failed authentications").
  LogLimit(int burst, std::string what) : burst_(burst), what_(std::move(what)) {}

  bool allow() {
    std::lock_guard lk(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - window_ >= std::chrono::seconds(1)) {
      if (suppressed_)
        spdlog::warn("({} more {} in the last second not logged)", suppressed_, what_);
      window_ = now;
      lines_ = 0;
      suppressed_ = 0;
    }
    if (lines_ < burst_) {
      ++lines_;
      return true;
    }
    ++suppressed_;
    return false;
  }

 private:
  const int burst_;
  const std::string what_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_{};
  int lines_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace meterhub::api
