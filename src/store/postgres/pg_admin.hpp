// Cluster chores of a node that shares a PostgreSQL database with others,
// each on a connection of its own (not the store's pool, so a busy pool
// never delays them):
//  - PgAdmin::database_size(): pg_database_size(current_database()), for
//    GET /metrics (the SQLite store reports its file sizes instead).
//  - PgLeader: which node evaluates alerts. The holder of a session advisory
//    lock is the leader; the others try again every `retry`. When the
//    leader's process or connection dies, PostgreSQL ends its session and
//    releases the lock, and the next node to try becomes leader. A leader
//    that finds its own connection broken steps down at once (its lock may
//    already be someone else's).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.hpp"

struct pg_conn;  // libpq's PGconn

namespace meterhub::store {

class PgAdmin {
 public:
  explicit PgAdmin(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~PgAdmin();
  PgAdmin(const PgAdmin&) = delete;
  PgAdmin& operator=(const PgAdmin&) = delete;

  // Bytes of the database on disk. Any thread (serialised).
  core::Result<std::int64_t> database_size();

 private:
  std::string conninfo_;
  std::mutex mu_;
  pg_conn* conn_ = nullptr;
};

struct PgLeaderOptions {
  std::string conninfo;
  std::int64_t lock_key = 7239412;  // the alert leader's advisory lock
  std::chrono::milliseconds retry{2'000};
};

class PgLeader {
 public:
  // on_change(true) when this node became leader, (false) when it lost it;
  // called on the PgLeader's thread, never twice with the same value.
  PgLeader(PgLeaderOptions opts, std::function<void(bool)> on_change);
  ~PgLeader();
  PgLeader(const PgLeader&) = delete;
  PgLeader& operator=(const PgLeader&) = delete;

  void start();
  // Releases the lock (by closing the session) and joins. Idempotent.
  void stop();
  bool leader() const { return leader_; }

 private:
  void run();
  // One round: connect if needed, check or try the lock. The new state.
  bool step();
  void close();

  PgLeaderOptions opts_;
  std::function<void(bool)> on_change_;
  pg_conn* conn_ = nullptr;
  std::atomic<bool> leader_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace meterhub::store
