// PgStore's internals, shared by its files (pg_store.cpp: schema, writes,
// reads, retention; pg_registry.cpp: meters, credentials, tariffs, alerts).
// Internal to src/store/postgres.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/postgres/pg_store.hpp"
#include "store/postgres/pg_util.hpp"
#include "store/rollup_plan.hpp"

namespace meterhub::store {

struct PgStore::Impl {
  PgOptions opts;

  // The ingest writer's own connection (write, probe_write, retention,
  // delete_meter, writer_missing_meters): only the writer thread uses it.
  pg::ConnPtr writer;
  // Writer thread only: the rollup planner's cache of each meter's newest
  // readings, and per meter the write_seq this node's last committed write
  // left. The cache of a meter is used only while its row still has that
  // write_seq (no other node and no retention touched it since).
  RollupPlanner planner;
  std::unordered_map<std::int64_t, std::int64_t> tail_seq;
  // Writer thread only: statements pg_store.cpp prepared on the writer
  // connection (SQL text -> name). Valid for one server session: `conn` and
  // `pid` tell which, and a reconnect starts an empty cache.
  struct Prepared {
    PGconn* conn = nullptr;
    int pid = 0;
    std::unordered_map<std::string, std::string> names;
  } prepared;

  // Connections for every other thread, checked out one call at a time.
  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::vector<pg::ConnPtr> idle;
  std::size_t open_count = 0;

  // A usable connection: `c` if it is open, else a new one (or the error).
  core::Result<PGconn*> ensure(pg::ConnPtr& c);

  // Runs `fn` on a pooled connection (opened or reopened as needed), and
  // returns it to the pool; a connection found broken afterwards is closed
  // (the next call opens a new one). At most opts.readers at a time.
  template <class F>
  auto with_conn(F&& fn) -> decltype(fn(static_cast<PGconn*>(nullptr))) {
    pg::ConnPtr c;
    {
      std::unique_lock lk(pool_mu);
      pool_cv.wait(lk, [&] { return !idle.empty() || open_count < opts.readers; });
      if (!idle.empty()) {
        c = std::move(idle.back());
        idle.pop_back();
      } else {
        ++open_count;
      }
    }
    auto give_back = [&] {
      std::lock_guard lk(pool_mu);
      if (c && PQstatus(c.get()) == CONNECTION_OK)
        idle.push_back(std::move(c));
      else
        --open_count;
      c.reset();
      pool_cv.notify_one();
    };
    auto conn = ensure(c);
    if (!conn) {
      give_back();
      return std::unexpected(conn.error());
    }
    auto out = fn(*conn);
    give_back();
    return out;
  }
};

// The statements of one transaction (pg_store.cpp, pg_registry.cpp); remembers whether a failure is
// worth retrying the whole transaction for. With a `Prepared` cache (the writer connection), each
// statement text is parsed and planned once per session: measured on the dev server, that took a
// single-reading write() from 6.1 to 2.3 ms (the rollup UPSERT over 25 arrays alone took ~0.7 ms
// unprepared).
class Tx {
 public:
  explicit Tx(PGconn* c, PgStore::Impl::Prepared* cache = nullptr) : c_(c), cache_(cache) {}
  bool retry() const { return retry_; }
  void set_retry() { retry_ = true; }

  core::Result<pg::Res> run(std::string_view what, const std::string& sql,
                            const pg::Params& p = pg::Params()) {
    pg::Res r;
    if (cache_) {
      const int pid = PQbackendPID(c_);
      if (cache_->conn != c_ || cache_->pid != pid) {
        cache_->names.clear();
        cache_->conn = c_;
        cache_->pid = pid;
      }
      auto it = cache_->names.find(sql);
      if (it == cache_->names.end()) {
        std::string name = "mh_core_" + std::to_string(cache_->names.size());
        pg::Res prep(PQprepare(c_, name.c_str(), sql.c_str(), 0, nullptr));
        if (!prep.ok()) {
          retry_ = pg::retryable(prep);
          return pg::unavailable(c_, prep, what);
        }
        it = cache_->names.emplace(sql, std::move(name)).first;
      }
      auto ptrs = p.pointers();
      r = pg::Res(
          PQexecPrepared(c_, it->second.c_str(), p.size(), ptrs.data(), nullptr, nullptr, 0));
    } else {
      r = pg::exec(c_, sql, p);
    }
    if (!r.ok()) {
      retry_ = pg::retryable(r);
      return pg::unavailable(c_, r, what);
    }
    return r;
  }

 private:
  PGconn* c_;
  PgStore::Impl::Prepared* cache_;
  bool retry_ = false;
};

}  // namespace meterhub::store
