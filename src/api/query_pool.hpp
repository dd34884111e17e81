// A small bounded pool of threads for read queries, so a heavy query never
// runs on (and stalls) a network thread. submit() refuses when the queue is
// full; the caller answers 503 rather than queueing without bound.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace meterhub::api {

class QueryPool {
 public:
  QueryPool(std::size_t threads, std::size_t max_queue);
  ~QueryPool();
  QueryPool(const QueryPool&) = delete;
  QueryPool& operator=(const QueryPool&) = delete;

  bool submit(std::function<void()> task);
  // Runs what is queued, then joins. Later submits are refused.
  void stop();

 private:
  void run();

  std::size_t max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace meterhub::api
