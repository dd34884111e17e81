#include "store/sqlite/checkpointer.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace meterhub::store {

bool Checkpointer::open(const std::string& path, int busy_timeout_ms, std::string& error) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    error = db_ ? sqlite3_errmsg(db_) : "out of memory";
    return false;
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  // A connection that has never read the database has not opened its WAL
  // index yet, and sqlite3_wal_checkpoint_v2 on it returns OK having done
  // nothing (log and checkpointed frames -1; seen with SQLite 3.40). One read
  // attaches it.
  if (sqlite3_exec(db_, "PRAGMA schema_version", nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "mh-checkpoint");
  return true;
}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close(db_);
}

void Checkpointer::poke() {
  {
    std::lock_guard lk(mu_);
    poked_ = true;
  }
  cv_.notify_one();
}

void Checkpointer::run() {
  bool failing = false;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || poked_; });
      if (stopping_) return;
      poked_ = false;
    }
    int log_pages = 0, done_pages = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &log_pages, &done_pages);
    runs_.fetch_add(1, std::memory_order_relaxed);
    if (rc == SQLITE_OK && done_pages > 0)
      pages_.fetch_add(static_cast<std::uint64_t>(done_pages), std::memory_order_relaxed);
    // BUSY only means another checkpoint was running; anything else is worth
    // one line when it starts and one when it ends, not one per commit.
    bool failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
    if (failed && !failing) spdlog::warn("WAL checkpoint failed: {}", sqlite3_errmsg(db_));
    if (!failed && failing) spdlog::info("WAL checkpoints work again");
    failing = failed;
  }
}

}  // namespace meterhub::store
