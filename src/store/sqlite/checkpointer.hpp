// Copies WAL pages back into the database file on its own thread and its own
// connection, so the ingest writer's commits never pay for a checkpoint (an
// inline auto-checkpoint is a burst of page writes plus an fsync of the main
// file on the commit path: a latency spike for every request in that group).
//
// Contract: poke() is cheap and may be called from any thread (the writer
// calls it from its WAL hook after a commit). Checkpoints are PASSIVE: they
// never block the writer or readers, and copy what they can. The destructor
// stops the thread and closes the connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace meterhub::store {

class Checkpointer {
 public:
  // Opens its own read-write connection to `path` (already in WAL mode).
  // Returns false with `error` set if that fails.
  bool open(const std::string& path, int busy_timeout_ms, std::string& error);
  ~Checkpointer();

  void poke();
  std::uint64_t runs() const { return runs_.load(); }
  // WAL frames copied back so far (what proves the checkpoints do something).
  std::uint64_t pages() const { return pages_.load(); }

 private:
  void run();

  sqlite3* db_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = false;
  bool stopping_ = false;
  std::atomic<std::uint64_t> runs_{0};
  std::atomic<std::uint64_t> pages_{0};
};

}  // namespace meterhub::store
