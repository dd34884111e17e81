// PgListener: see pg_listener.hpp. One connection, one thread; everything
// that blocks (connect, poll) is bounded by poll_timeout so stop() is prompt.
#include "store/postgres/pg_listener.hpp"

#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "store/postgres/pg_util.hpp"

namespace meterhub::store {

namespace {

using Clock = std::chrono::steady_clock;

std::string trimmed_error(PGconn* c) {
  std::string why = c ? PQerrorMessage(c) : "out of memory";
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  return why;
}

}  // namespace

PgListener::PgListener(PgStore& store, PgListenerOptions opts, OnReadings on_readings,
                       OnRegistry on_registry)
    : store_(store),
      opts_(std::move(opts)),
      on_readings_(std::move(on_readings)),
      on_registry_(std::move(on_registry)) {}

PgListener::~PgListener() {
  stop();
  close();
}

void PgListener::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  connected_ = false;
}

core::Result<void> PgListener::connect_and_listen() {
  close();
  // The URL (or key=value string) first; the keepalives after it override
  // it, so a peer that vanishes without a FIN (network, VM) is noticed
  // within ~25 s instead of never — the listener only ever reads.
  const char* keys[] = {"dbname",
                        "connect_timeout",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "application_name",
                        nullptr};
  const char* vals[] = {opts_.conninfo.c_str(), "5",    "1", "10", "5", "3",
                        "meterhub-listener",    nullptr};
  PGconn* c = PQconnectStartParams(keys, vals, 1);
  if (!c || PQstatus(c) == CONNECTION_BAD) {
    std::string why = trimmed_error(c);
    if (c) PQfinish(c);
    return core::fail("store_unavailable", "listener cannot connect to PostgreSQL: " + why);
  }
  // Asynchronous connect, so stop() does not wait for connect_timeout.
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED || stopping_ || Clock::now() > deadline) {
      std::string why = stopping_ ? "stopping" : trimmed_error(c);
      if (st != PGRES_POLLING_FAILED && !stopping_) why = "timed out";
      PQfinish(c);
      return core::fail("store_unavailable", "listener cannot connect to PostgreSQL: " + why);
    }
    pollfd p{PQsocket(c), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const int n = ::poll(&p, 1, static_cast<int>(opts_.poll_timeout.count()));
    if (n > 0) st = PQconnectPoll(c);
  }
  conn_ = c;
  const std::string listen =
      std::string("LISTEN ") + pg::kReadingsChannel + "; LISTEN " + pg::kRegistryChannel;
  if (auto r = pg::exec(conn_, listen.c_str()); !r.ok()) {
    auto e = pg::unavailable(conn_, r, "LISTEN failed");
    close();
    return e;
  }
  connected_ = true;
  return {};
}

core::Result<void> PgListener::prepare() {
  if (auto r = connect_and_listen(); !r) return r;
  // Everything committed before this point is what the caller's caches are
  // about to be primed from: mark it seen, so the start-up resync hands
  // over only what commits after (LISTEN already catches everything after).
  auto mark = pg::exec(conn_,
                       "SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                       "FROM reading_batch");
  if (!mark.ok() || mark.rows() != 1)
    return pg::unavailable(conn_, mark, "cannot read the batch sequence");
  start_mark_ = mark.i64(0, 0);
  pg::Params p;
  p.add(start_mark_ - opts_.resync_margin);
  auto ids = pg::exec(conn_, "SELECT DISTINCT batch FROM meter_readings WHERE batch > $1", p);
  if (!ids.ok()) return pg::unavailable(conn_, ids, "cannot read the recent batches");
  for (int i = 0; i < ids.rows(); ++i) store_.seen()->insert(ids.i64(i, 0));
  return {};
}

void PgListener::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "mh-listener");  // top -H, perf
}

void PgListener::stop() {
  {
    std::lock_guard lk(sleep_mu_);
    stopping_ = true;
  }
  sleep_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PgListener::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lk(sleep_mu_);
  sleep_cv_.wait_for(lk, d, [&] { return stopping_.load(); });
}

PgListenerStats PgListener::stats() const {
  PgListenerStats s;
  s.notifications = notifications_.load();
  s.batches = batches_.load();
  s.readings = readings_.load();
  s.skipped = skipped_.load();
  s.pointer_fetches = pointer_fetches_.load();
  s.resyncs = resyncs_.load();
  s.resync_truncated = truncated_.load();
  s.reconnects = reconnects_.load();
  s.errors = errors_.load();
  s.connected = connected_.load();
  return s;
}

void PgListener::run() {
  auto backoff = opts_.backoff_min;
  bool need_resync = true;  // once at start, then after every reconnect
  bool lost = false;
  while (!stopping_) {
    if (!conn_) {
      if (auto r = connect_and_listen(); !r) {
        if (stopping_) break;
        spdlog::warn("fan-out: {}; retrying in {} ms", r.error().message, backoff.count());
        sleep_for(backoff);
        backoff = std::min(backoff * 2, opts_.backoff_max);
        continue;
      }
      if (lost) {
        ++reconnects_;
        spdlog::info("fan-out: listener reconnected to PostgreSQL");
      }
      need_resync = true;
    }
    if (need_resync) {
      ++resyncs_;
      resync();
      // A resync that could not read (the database went away again) is
      // retried after the next reconnect, with the same backoff.
      if (!conn_) {
        lost = true;
        sleep_for(backoff);
        backoff = std::min(backoff * 2, opts_.backoff_max);
        continue;
      }
      need_resync = false;
      backoff = opts_.backoff_min;  // healthy again
    }
    pollfd p{PQsocket(conn_), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(opts_.poll_timeout.count()));
    if (n == 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 || !drain()) {
      if (conn_)
        spdlog::warn("fan-out: listener lost its PostgreSQL connection: {}", trimmed_error(conn_));
      close();
      lost = true;
      sleep_for(backoff);
      backoff = std::min(backoff * 2, opts_.backoff_max);
    }
  }
  close();
}

bool PgListener::drain() {
  if (!PQconsumeInput(conn_)) return false;
  while (PGnotify* n = PQnotifies(conn_)) {
    const std::string channel = n->relname;
    const std::string payload = n->extra ? n->extra : "";
    PQfreemem(n);
    ++notifications_;
    if (channel == pg::kReadingsChannel)
      on_readings_payload(payload);
    else if (channel == pg::kRegistryChannel)
      on_registry_payload(payload);
    if (!conn_) return false;  // a read-back failed: reconnect and resync
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

void PgListener::on_readings_payload(std::string_view payload) {
  auto b = pg::decode_batch(payload);
  if (!b) {
    ++errors_;
    spdlog::error("fan-out: {}", b.error().message);
    return;
  }
  const auto& seen = store_.seen();
  if (seen->contains(b->id)) {
    ++skipped_;
    return;
  }
  if (b->pointer) {
    ++pointer_fetches_;
    auto rs = store_.read_batch(b->id);
    if (!rs) {
      // Not marked seen: the resync after the reconnect reads it again.
      ++errors_;
      spdlog::warn("fan-out: reading back batch {} failed: {}", b->id, rs.error().message);
      close();
      return;
    }
    b->readings = std::move(*rs);
  }
  publish(b->id, std::move(b->readings));
}

void PgListener::on_registry_payload(std::string_view payload) {
  // "<event> <meter_id> <node>" (pg_registry.cpp); this node's own changes
  // are already in its Hub.
  const auto sp = payload.find(' ');
  const std::string_view verb = payload.substr(0, sp);
  std::string_view rest =
      sp == std::string_view::npos ? std::string_view() : payload.substr(sp + 1);
  const auto sp2 = rest.find(' ');
  std::string meter(rest.substr(0, sp2));
  if (sp2 != std::string_view::npos && rest.substr(sp2 + 1) == store_.node_id()) return;
  RegistryChange change = RegistryChange::updated;
  if (verb == "created")
    change = RegistryChange::created;
  else if (verb == "updated")
    change = RegistryChange::updated;
  else if (verb == "deleted")
    change = RegistryChange::deleted;
  else
    meter.clear();
  if (meter.empty()) {
    ++errors_;
    spdlog::error("fan-out: malformed registry notification \"{}\"", payload);
    return;
  }
  on_registry_(change, meter);
}

bool PgListener::publish(std::int64_t batch, std::vector<core::Reading>&& readings) {
  const std::size_t n = readings.size();
  const auto& seen = store_.seen();
  if (!on_readings_(std::move(readings), [&] { return seen->insert(batch); })) {
    ++skipped_;
    return false;
  }
  ++batches_;
  readings_ += n;
  return true;
}

void PgListener::resync() {
  const auto& seen = store_.seen();
  const std::int64_t from = std::max(seen->max().value_or(start_mark_), start_mark_);
  auto rows = store_.read_batches_after(from - opts_.resync_margin, opts_.resync_limit);
  if (!rows) {
    spdlog::warn("fan-out: resync failed: {}", rows.error().message);
    close();
    return;
  }
  // Batch by batch, in id order (the store returns them so; made sure here,
  // since grouping below relies on it).
  std::stable_sort(rows->begin(), rows->end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::size_t end = rows->size();
  if (end >= opts_.resync_limit && end > 0) {
    // The last batch may be cut off by the limit: leave it (and everything
    // after it) out unless it is the only one.
    const std::int64_t last = rows->back().first;
    std::size_t k = end;
    while (k > 0 && (*rows)[k - 1].first == last) --k;
    if (k > 0) end = k;
    ++truncated_;
    spdlog::warn(
        "fan-out: more than {} readings committed by other nodes while this one was "
        "disconnected; live subscribers get those up to batch {}, the later ones are only in "
        "the store",
        opts_.resync_limit, (*rows)[end - 1].first);
  }
  std::size_t published = 0;
  for (std::size_t i = 0; i < end;) {
    const std::int64_t id = (*rows)[i].first;
    std::vector<core::Reading> batch;
    for (; i < end && (*rows)[i].first == id; ++i) batch.push_back(std::move((*rows)[i].second));
    if (seen->contains(id)) continue;
    if (publish(id, std::move(batch))) ++published;
  }
  if (published) spdlog::info("fan-out: resync handed over {} missed batches", published);
}

}  // namespace meterhub::store
