// The PostgreSQL schema and its migrations, and PgStore::open.
//
// Same tables as the SQLite store (store/sqlite/*), in PostgreSQL's types:
// times are bigint ms UTC (core::TimeMs), values double precision, meters
// referenced by a bigint id. meter_readings has PRIMARY KEY (meter_id, ts)
// (idempotency: INSERT … ON CONFLICT DO NOTHING) and a `batch` column: the
// id of the transaction-wide batch that inserted it (fanout.hpp), with a
// BRIN index (batches grow with insertion order, so the index is tiny and
// costs almost nothing to maintain) for pointer notifications and resync.
#include <spdlog/spdlog.h>

#include <random>

#include "store/postgres/pg_store_impl.hpp"

namespace meterhub::store {

namespace {

// Forward-only; index i brings the schema to version i + 1. Applied under
// an advisory lock, each in its own transaction with its version bump.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE smart_meter (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  access_id   text   NOT NULL UNIQUE,
  name        text   NOT NULL DEFAULT '',
  location    text   NOT NULL DEFAULT '',
  interval_s  bigint,
  created_at  bigint NOT NULL,
  last_seen   bigint,
  raw_floor   bigint,              -- raw readings before this were deleted by retention
  write_seq   bigint NOT NULL DEFAULT 0  -- bumped by every write() of this meter (rollup tail cache)
);
CREATE SEQUENCE reading_batch;
CREATE TABLE meter_readings (
  meter_id     bigint NOT NULL REFERENCES smart_meter(id) ON DELETE CASCADE,
  ts           bigint NOT NULL,
  voltage      double precision NOT NULL,
  current      double precision NOT NULL,
  power        double precision NOT NULL,
  energy       double precision NOT NULL,
  frequency    double precision,
  power_factor double precision,
  batch        bigint NOT NULL,
  PRIMARY KEY (meter_id, ts)
);
CREATE INDEX meter_readings_batch ON meter_readings USING brin (batch);
CREATE TABLE rollup_1m (
  meter_id bigint NOT NULL REFERENCES smart_meter(id) ON DELETE CASCADE,
  bucket bigint NOT NULL, n bigint NOT NULL,
  v_sum double precision NOT NULL, v_min double precision NOT NULL, v_max double precision NOT NULL,
  i_sum double precision NOT NULL, i_min double precision NOT NULL, i_max double precision NOT NULL,
  p_sum double precision NOT NULL, p_min double precision NOT NULL, p_max double precision NOT NULL,
  f_n bigint NOT NULL, f_sum double precision NOT NULL, f_min double precision, f_max double precision,
  pf_n bigint NOT NULL, pf_sum double precision NOT NULL, pf_min double precision, pf_max double precision,
  first_ts bigint NOT NULL, e_first double precision NOT NULL,
  last_ts bigint NOT NULL, e_last double precision NOT NULL, kwh double precision NOT NULL,
  PRIMARY KEY (meter_id, bucket)
);
CREATE TABLE rollup_1h (LIKE rollup_1m INCLUDING ALL);
ALTER TABLE rollup_1h ADD FOREIGN KEY (meter_id) REFERENCES smart_meter(id) ON DELETE CASCADE;
CREATE TABLE tariff (
  meter_id    bigint PRIMARY KEY,  -- 0: the server-wide default
  doc         text   NOT NULL,
  updated_at  bigint NOT NULL
);
CREATE TABLE credential (
  id          text   PRIMARY KEY,
  kind        text   NOT NULL CHECK (kind IN ('device', 'token')),
  meter_id    bigint REFERENCES smart_meter(id) ON DELETE CASCADE,
  name        text   NOT NULL DEFAULT '',
  scope       text   NOT NULL DEFAULT '',
  salt        bytea  NOT NULL,
  hash        bytea  NOT NULL,
  created_at  bigint NOT NULL,
  revoked_at  bigint
);
CREATE INDEX credential_by_meter ON credential(meter_id) WHERE meter_id IS NOT NULL;
CREATE TABLE registry_state (
  id          int    PRIMARY KEY CHECK (id = 1),
  generation  bigint NOT NULL
);
INSERT INTO registry_state(id, generation) VALUES (1, 0);
CREATE TABLE alert_rule (
  meter_id   bigint PRIMARY KEY REFERENCES smart_meter(id) ON DELETE CASCADE,
  doc        text   NOT NULL,
  updated_at bigint NOT NULL
);
CREATE TABLE alert_event (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  meter_id      bigint NOT NULL REFERENCES smart_meter(id) ON DELETE CASCADE,
  kind          text   NOT NULL,
  raised_at     bigint NOT NULL,
  raised_value  double precision NOT NULL,
  message       text   NOT NULL,
  cleared_at    bigint,
  cleared_value double precision,
  clear_message text   NOT NULL DEFAULT ''
);
CREATE INDEX alert_event_by_meter ON alert_event(meter_id, id);
CREATE INDEX alert_event_active ON alert_event(id) WHERE cleared_at IS NULL;
CREATE TABLE meterhub_health (
  node       text   PRIMARY KEY,
  checked_at bigint NOT NULL
);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));
// Any constant: the advisory lock that serialises migrations across nodes.
constexpr const char* kMigrationLock = "7239411";

core::Result<void> migrate(PGconn* c) {
  auto fail = [&](const pg::Res& r, std::string_view what) { return pg::unavailable(c, r, what); };
  if (auto r = pg::exec(c, "SELECT pg_advisory_lock(" + std::string(kMigrationLock) + ")", {});
      !r.ok())
    return fail(r, "cannot lock the schema for migration");
  auto unlock = [&] {
    pg::exec(c, "SELECT pg_advisory_unlock(" + std::string(kMigrationLock) + ")", {});
  };
  if (auto r = pg::exec(c, "CREATE TABLE IF NOT EXISTS meterhub_schema (version int NOT NULL)");
      !r.ok()) {
    unlock();
    return fail(r, "cannot create the schema version table");
  }
  auto v = pg::exec(c, "SELECT version FROM meterhub_schema");
  if (!v.ok()) {
    unlock();
    return fail(v, "cannot read the schema version");
  }
  int version = v.rows() ? static_cast<int>(v.i64(0, 0)) : 0;
  if (version > kSchemaVersion) {
    unlock();
    return core::fail("store_unavailable",
                      "the database has schema version " + std::to_string(version) +
                          ", newer than this meterhub (" + std::to_string(kSchemaVersion) +
                          "): upgrade meterhub");
  }
  for (; version < kSchemaVersion; ++version) {
    std::string sql = "BEGIN;\n";
    sql += kMigrations[version];
    sql += version == 0
               ? "INSERT INTO meterhub_schema(version) VALUES (1);\n"
               : "UPDATE meterhub_schema SET version = " + std::to_string(version + 1) + ";\n";
    sql += "COMMIT;";
    if (auto r = pg::exec(c, sql.c_str()); !r.ok()) {
      pg::exec(c, "ROLLBACK");
      unlock();
      return fail(r, "migration to schema version " + std::to_string(version + 1) + " failed");
    }
    spdlog::info("database migrated to schema version {}", version + 1);
  }
  unlock();
  return {};
}

std::string random_node_id() {
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string s = "node-";
  for (int i = 0; i < 8; ++i) s.push_back(kAlnum[rd() % 36]);
  return s;
}

}  // namespace

bool is_postgres_url(std::string_view db) {
  return db.starts_with("postgresql://") || db.starts_with("postgres://");
}

core::Result<PGconn*> PgStore::Impl::ensure(pg::ConnPtr& c) {
  if (c && PQstatus(c.get()) == CONNECTION_OK) return c.get();
  c.reset(PQconnectdb(opts.conninfo.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    std::string why = c ? PQerrorMessage(c.get()) : "out of memory";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    c.reset();
    return core::fail("store_unavailable", "cannot connect to PostgreSQL: " + why);
  }
  // Server notices ("relation … already exists, skipping" from every start's
  // migration check) go to the debug log, not to stderr.
  PQsetNoticeProcessor(
      c.get(), [](void*, const char* m) { spdlog::debug("postgres: {}", m); }, nullptr);
  // Times are integers and text is UTF-8; keep the session predictable.
  // extra_float_digits > 0: doubles come back in shortest exact form
  // whatever the server's default (0 would round them to 15 digits).
  pg::exec(c.get(),
           "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'; SET extra_float_digits = 3");
  // The writer hears the fan-out channel too: after each COMMIT it holds the
  // notifications committed before it (pg_store.cpp, take_committed_before).
  if (&c == &writer) {
    if (auto r = pg::exec(c.get(), (std::string("LISTEN ") + pg::kReadingsChannel).c_str());
        !r.ok()) {
      auto err = pg::unavailable(c.get(), r, "cannot LISTEN on the writer connection");
      c.reset();
      return err;
    }
  }
  return c.get();
}

PgStore::PgStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgStore::~PgStore() = default;

const std::string& PgStore::node_id() const { return impl_->opts.node_id; }
const std::shared_ptr<pg::SeenBatches>& PgStore::seen() const { return impl_->opts.seen; }

core::Result<std::unique_ptr<PgStore>> PgStore::open(PgOptions opts) {
  if (opts.node_id.empty()) opts.node_id = random_node_id();
  if (!opts.seen) opts.seen = std::make_shared<pg::SeenBatches>();
  if (opts.readers == 0) opts.readers = 1;
  auto impl = std::make_unique<Impl>();
  impl->opts = std::move(opts);
  auto c = impl->ensure(impl->writer);
  if (!c) return std::unexpected(c.error());
  if (auto r = migrate(*c); !r) return std::unexpected(r.error());
  return std::unique_ptr<PgStore>(new PgStore(std::move(impl)));
}

}  // namespace meterhub::store
