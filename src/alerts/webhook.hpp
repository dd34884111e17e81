// Posts alert events to one HTTP(S) URL (--alert-webhook), from its own
// thread, with libcurl (a well-kept client with TLS; see docs/alerts.md).
//
// Contract:
//  - post() never blocks on the network: it queues the body, or counts it as
//    dropped (and logs, rate-limited) when `max_queue` bodies already wait.
//  - Bodies are sent one at a time, in order. A network error, a timeout, 408,
//    429 or any 5xx is retried after a backoff that doubles from
//    `first_backoff` up to `max_backoff`, at most `max_attempts` tries in all;
//    any other answer outside 2xx, or the last failed try, gives the body up
//    (counted as failed, logged). A body is delivered at most once per 2xx.
//  - stop() interrupts a backoff wait, gives up what is still queued (logged
//    with its count) and joins the thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace meterhub::alerts {

struct WebhookOptions {
  std::string url;
  std::size_t max_queue = 1000;
  unsigned max_attempts = 8;
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{60'000};
  std::chrono::milliseconds timeout{10'000};  // per try, connect included
};

struct WebhookStats {
  std::uint64_t delivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t failed = 0;   // given up
  std::uint64_t dropped = 0;  // queue full
};

class Webhook {
 public:
  explicit Webhook(WebhookOptions opts);
  ~Webhook();
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  void start();
  bool post(std::string body);
  void stop();
  WebhookStats stats() const;

 private:
  void run();
  // One try: the HTTP status, or 0 for a transport error (`error` says which).
  long send(const std::string& body, std::string& error);

  WebhookOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<std::uint64_t> delivered_{0}, retries_{0}, failed_{0}, dropped_{0};
  std::chrono::steady_clock::time_point last_drop_log_{};
};

}  // namespace meterhub::alerts
