// PgAdmin and PgLeader: see pg_admin.hpp.
#include "store/postgres/pg_admin.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include "store/postgres/pg_util.hpp"

namespace meterhub::store {

namespace {

// A blocking connection with a bounded connect time and keepalives (a
// leader must notice a dead peer, not wait on it forever).
PGconn* connect(const std::string& conninfo, const char* app) {
  const char* keys[] = {"dbname",
                        "connect_timeout",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "application_name",
                        nullptr};
  const char* vals[] = {conninfo.c_str(), "5", "1", "10", "5", "3", app, nullptr};
  PGconn* c = PQconnectdbParams(keys, vals, 1);
  if (c && PQstatus(c) == CONNECTION_OK) return c;
  if (c) PQfinish(c);
  return nullptr;
}

}  // namespace

PgAdmin::~PgAdmin() {
  if (conn_) PQfinish(conn_);
}

core::Result<std::int64_t> PgAdmin::database_size() {
  std::lock_guard lk(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      if (conn_) PQfinish(conn_);
      conn_ = connect(conninfo_, "meterhub-admin");
      if (!conn_) return core::fail("store_unavailable", "cannot connect to PostgreSQL");
    }
    auto r = pg::exec(conn_, "SELECT pg_database_size(current_database())");
    if (r.ok() && r.rows() == 1) return r.i64(0, 0);
    if (PQstatus(conn_) == CONNECTION_OK) return pg::unavailable(conn_, r, "database size");
  }
  return core::fail("store_unavailable", "database size: connection lost");
}

PgLeader::PgLeader(PgLeaderOptions opts, std::function<void(bool)> on_change)
    : opts_(std::move(opts)), on_change_(std::move(on_change)) {}

PgLeader::~PgLeader() {
  stop();
  close();
}

void PgLeader::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

void PgLeader::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "mh-leader");  // top -H, perf
}

void PgLeader::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool PgLeader::step() {
  if (!conn_) {
    conn_ = connect(opts_.conninfo, "meterhub-leader");
    if (!conn_) return false;
  }
  pg::Params p;
  p.add(opts_.lock_key);
  if (leader_) {
    // Still our session? If the connection broke, PostgreSQL has already
    // released the lock: step down.
    auto r = pg::exec(conn_, "SELECT 1", {});
    if (r.ok()) return true;
    close();
    return false;
  }
  auto r = pg::exec(conn_, "SELECT pg_try_advisory_lock($1)", p);
  if (!r.ok()) {
    close();
    return false;
  }
  return r.rows() == 1 && r.text(0, 0) == "t";
}

void PgLeader::run() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    lk.unlock();
    const bool now = step();
    if (now != leader_) {
      leader_ = now;
      spdlog::info(now ? "this node now evaluates alerts (cluster leader)"
                       : "this node no longer evaluates alerts (leadership lost)");
      on_change_(now);
    }
    lk.lock();
    cv_.wait_for(lk, opts_.retry, [&] { return stopping_; });
  }
  lk.unlock();
  close();  // ends the session: the lock passes to another node
  if (leader_) {
    leader_ = false;
    on_change_(false);
  }
}

}  // namespace meterhub::store
