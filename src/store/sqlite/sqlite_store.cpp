#include "store/sqlite/sqlite_store.hpp"

#include "store/sqlite/alerts.hpp"
#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/registry.hpp"
#include "store/sqlite/rollups.hpp"
#include "store/sqlite/sqlite_util.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <unordered_map>

namespace meterhub::store {
namespace {

using core::Reading;
using core::Result;
using core::TimeMs;
using namespace sqlite;

// Forward-only migrations; index i brings the schema to version i + 1.
// Values are REAL (never text); (meter_id, ts) is the primary key of a
// WITHOUT ROWID table, so readings are clustered by meter and time and a
// duplicate is rejected by the key itself.
// Migration 3 adds the device registry (store/sqlite/registry.hpp).
// Migration 2 adds the rollup tables (store/sqlite/rollups.hpp; filled from
// the existing readings in the same transaction) and tariffs.
std::vector<std::string> migrations() {
  return {
      R"sql(
CREATE TABLE smart_meter (
  id          INTEGER PRIMARY KEY,
  access_id   TEXT    NOT NULL UNIQUE,
  name        TEXT    NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  last_seen   INTEGER
);
CREATE TABLE meter_readings (
  meter_id     INTEGER NOT NULL REFERENCES smart_meter(id),
  ts           INTEGER NOT NULL,
  voltage      REAL    NOT NULL,
  current      REAL    NOT NULL,
  power        REAL    NOT NULL,
  energy       REAL    NOT NULL,
  frequency    REAL,
  power_factor REAL,
  PRIMARY KEY (meter_id, ts)
) WITHOUT ROWID;
CREATE TABLE meterhub_health (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  checked_at INTEGER NOT NULL
);
)sql",
      std::string(kRollupSchema) + R"sql(
-- Raw readings of this meter before raw_floor were deleted by retention.
ALTER TABLE smart_meter ADD COLUMN raw_floor INTEGER;
CREATE TABLE tariff (
  meter_id    INTEGER PRIMARY KEY,  -- 0: the server-wide default
  doc         TEXT    NOT NULL,
  updated_at  INTEGER NOT NULL
);
)sql",
      kRegistrySchema,
      kAlertSchema,  // 4: alerts (store/sqlite/alerts.hpp)
  };
}

// A read-only connection and its prepared statements.
struct ReadConn {
  Db conn;
  Stmt list_meters, find_meter, range_asc, range_desc, latest_all, rollup_1m, rollup_1h, tariff;
  Stmt totals_1m, totals_1h, kwh_1m, kwh_1h;
};

constexpr const char* kMeterColumns =
    "m.access_id, m.name, m.created_at, m.last_seen, m.location, m.interval_s, r.ts, r.voltage, "
    "r.current, r.power, "
    "r.energy, r.frequency, r.power_factor "
    "FROM smart_meter m LEFT JOIN meter_readings r ON r.meter_id = m.id AND r.ts = "
    "(SELECT max(ts) FROM meter_readings WHERE meter_id = m.id) ";

// Columns ts, voltage, current, power, energy, frequency, power_factor from `col`.
void read_values(sqlite3_stmt* s, int col, Reading& r) {
  r.ts = sqlite3_column_int64(s, col);
  r.voltage = sqlite3_column_double(s, col + 1);
  r.current = sqlite3_column_double(s, col + 2);
  r.power = sqlite3_column_double(s, col + 3);
  r.energy = sqlite3_column_double(s, col + 4);
  r.frequency = opt_double(s, col + 5);
  r.power_factor = opt_double(s, col + 6);
}

MeterInfo meter_row(sqlite3_stmt* s) {
  MeterInfo m;
  m.meter_id = text(s, 0);
  m.name = text(s, 1);
  m.created_at = sqlite3_column_int64(s, 2);
  if (sqlite3_column_type(s, 3) != SQLITE_NULL) m.last_seen = sqlite3_column_int64(s, 3);
  m.location = text(s, 4);
  if (sqlite3_column_type(s, 5) != SQLITE_NULL) m.interval_s = sqlite3_column_int64(s, 5);
  if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
    Reading r;
    r.meter_id = m.meter_id;
    read_values(s, 6, r);
    m.latest = std::move(r);
  }
  return m;
}

}  // namespace

struct SqliteStore::Impl {
  SqliteOptions opts;
  // Writer connection and statements: used by the single writer thread only.
  Db writer;
  Stmt begin, commit, rollback, insert_meter, select_meter, insert_reading, touch_meter, health;
  Stmt registry_gen, all_floors;
  // The registry generation the writer's caches (meter_ids, raw_floors,
  // rollup tails) were last checked against: a meter deleted by another
  // process sharing the file moves it, and the caches are dropped.
  std::int64_t cached_generation = -1;
  Stmt all_meter_ids, oldest_raw_after, newest_raw, delete_raw, set_floor, oldest_minute_after,
      delete_minute;
  RollupWriter rollups;
  // Admin connection for rare writes from any thread (tariffs); serialised by
  // admin_mu, and by SQLite's write lock against the writer thread.
  std::mutex admin_mu;
  Db admin;
  std::unordered_map<std::string, std::int64_t> meter_ids;  // committed meters only
  // Meters whose oldest raw readings retention deleted (id -> floor): their
  // rollups hold consumption that the remaining raw rows cannot recompute.
  std::unordered_map<std::int64_t, TimeMs> raw_floors;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<ReadConn>> pool;
  sqlite3*& wdb = writer.db;
  // Destroyed (stopped) before the writer connection closes.
  std::unique_ptr<Checkpointer> checkpointer;

  ~Impl() {
    if (wdb) sqlite3_wal_hook(wdb, nullptr, nullptr);
  }

  // WAL size (pages) at which a commit asks the checkpointer to run, and at
  // which the writer checkpoints inline because the checkpointer fell behind
  // (e.g. a long-running reader pins old pages): bounds the WAL file.
  // Background checkpoints copy the newest version of every page in the WAL:
  // checkpointing every ~4 MiB copied the same hot pages (rollups, the index
  // of the newest readings) over and over; ~32 MiB measured 5-10% more
  // single-reading POSTs on this disk and stays under the inline bound.
  static constexpr int kCheckpointPages = 8000;         // ~32 MiB
  static constexpr int kInlineCheckpointPages = 16384;  // ~64 MiB

  static int on_wal_commit(void* arg, sqlite3* db, const char* name, int pages) {
    auto* self = static_cast<Impl*>(arg);
    if (pages >= kInlineCheckpointPages)
      sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    else if (pages >= kCheckpointPages && self->checkpointer)
      self->checkpointer->poke();
    return SQLITE_OK;
  }

  void configure(sqlite3* db) const {
    sqlite3_busy_timeout(db, opts.busy_timeout_ms);
    sqlite3_extended_result_codes(db, 1);
  }

  Result<void> migrate() {
    if (auto r = exec(wdb, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        !r)
      return r;
    if (auto r = exec(wdb, "BEGIN IMMEDIATE"); !r) return r;
    Stmt q;
    int version = 0;
    if (auto r = prepare(wdb, "SELECT max(version) FROM schema_version", q); !r) return r;
    if (sqlite3_step(q.s) == SQLITE_ROW) version = sqlite3_column_int(q.s, 0);
    sqlite3_reset(q.s);
    const std::vector<std::string> steps = migrations();
    const int latest = static_cast<int>(steps.size());
    if (version > latest) {
      (void)exec(wdb, "ROLLBACK");
      return core::fail("store_unavailable", "database schema version " + std::to_string(version) +
                                                 " is newer than this meterhub understands (" +
                                                 std::to_string(latest) + "); upgrade meterhub");
    }
    for (int v = version; v < latest; ++v) {
      if (auto r = exec(wdb, steps[static_cast<std::size_t>(v)].c_str()); !r) {
        (void)exec(wdb, "ROLLBACK");
        return r;
      }
      if (v + 1 == 2) {  // rollups of the readings stored before they existed
        RollupWriter w;
        w.rules = opts.counter_rules;
        auto r = w.prepare(wdb);
        if (r) r = w.rebuild();
        if (!r) {
          (void)exec(wdb, "ROLLBACK");
          return r;
        }
      }
      std::string up = "INSERT INTO schema_version(version) VALUES(" + std::to_string(v + 1) + ")";
      if (auto r = exec(wdb, up.c_str()); !r) {
        (void)exec(wdb, "ROLLBACK");
        return r;
      }
      spdlog::info("database migrated to schema version {}", v + 1);
    }
    return exec(wdb, "COMMIT");
  }

  Result<void> prepare_writer() {
    const std::pair<Stmt*, const char*> stmts[] = {
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
        {&insert_meter,
         "INSERT INTO smart_meter(access_id, created_at) VALUES(?1, ?2) "
         "ON CONFLICT(access_id) DO NOTHING RETURNING id"},
        {&select_meter, "SELECT id FROM smart_meter WHERE access_id = ?1"},
        {&insert_reading,
         "INSERT INTO meter_readings(meter_id, ts, voltage, current, power, energy, frequency, "
         "power_factor) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
         "ON CONFLICT(meter_id, ts) DO NOTHING"},
        {&touch_meter,
         "UPDATE smart_meter SET last_seen = max(coalesce(last_seen, 0), ?2) WHERE id = ?1"},
        {&health,
         "INSERT INTO meterhub_health(id, checked_at) VALUES(1, ?1) "
         "ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at"},
        {&all_meter_ids, "SELECT id FROM smart_meter ORDER BY id"},
        // Retention: the ts below which one batch of a meter's rows can go.
        {&oldest_raw_after,
         "SELECT ts FROM meter_readings WHERE meter_id = ?1 ORDER BY ts LIMIT 1 OFFSET ?2"},
        {&newest_raw, "SELECT max(ts) FROM meter_readings WHERE meter_id = ?1"},
        {&delete_raw, "DELETE FROM meter_readings WHERE meter_id = ?1 AND ts < ?2"},
        {&set_floor,
         "UPDATE smart_meter SET raw_floor = max(coalesce(raw_floor, ?2), ?2) WHERE id = ?1"},
        {&oldest_minute_after,
         "SELECT bucket FROM rollup_1m WHERE meter_id = ?1 ORDER BY bucket LIMIT 1 OFFSET ?2"},
        {&delete_minute, "DELETE FROM rollup_1m WHERE meter_id = ?1 AND bucket < ?2"},
        {&registry_gen, "SELECT generation FROM registry_state WHERE id = 1"},
        {&all_floors, "SELECT id, raw_floor FROM smart_meter WHERE raw_floor IS NOT NULL"},
    };
    for (auto& [st, sql] : stmts)
      if (auto r = prepare(wdb, sql, *st); !r) return r;
    rollups.rules = opts.counter_rules;
    if (auto r = rollups.prepare(wdb); !r) return r;
    return sync_caches();
  }

  // (Re)fills the writer's caches from committed rows when the registry
  // generation moved (or on first use). One indexed row read otherwise.
  Result<void> sync_caches() {
    std::int64_t gen = 0;
    int rc = sqlite3_step(registry_gen.s);
    if (rc == SQLITE_ROW) gen = sqlite3_column_int64(registry_gen.s, 0);
    sqlite3_reset(registry_gen.s);
    if (rc != SQLITE_ROW) return unavailable(wdb, "reading registry state failed");
    if (gen == cached_generation) return {};
    meter_ids.clear();
    raw_floors.clear();
    rollups.forget();
    Stmt all;
    if (auto r = prepare(wdb, "SELECT access_id, id FROM smart_meter", all); !r) return r;
    while (sqlite3_step(all.s) == SQLITE_ROW)
      meter_ids.emplace(text(all.s, 0), sqlite3_column_int64(all.s, 1));
    while (sqlite3_step(all_floors.s) == SQLITE_ROW)
      raw_floors[sqlite3_column_int64(all_floors.s, 0)] = sqlite3_column_int64(all_floors.s, 1);
    sqlite3_reset(all_floors.s);
    cached_generation = gen;
    return {};
  }

  Result<std::int64_t> meter_id_for(const std::string& access_id, TimeMs now,
                                    std::unordered_map<std::string, std::int64_t>& pending,
                                    std::vector<std::string>& created) {
    if (auto it = meter_ids.find(access_id); it != meter_ids.end()) return it->second;
    if (auto it = pending.find(access_id); it != pending.end()) return it->second;
    sqlite3_stmt* s = insert_meter.s;
    sqlite3_bind_text(s, 1, access_id.data(), static_cast<int>(access_id.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    int rc = sqlite3_step(s);
    std::int64_t id = -1;
    if (rc == SQLITE_ROW) {
      id = sqlite3_column_int64(s, 0);
      rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return unavailable(wdb, "creating meter failed");
    if (id >= 0) {
      created.push_back(access_id);
    } else {
      // Created meanwhile by another process sharing the file.
      sqlite3_stmt* q = select_meter.s;
      sqlite3_bind_text(q, 1, access_id.data(), static_cast<int>(access_id.size()), SQLITE_STATIC);
      if (sqlite3_step(q) == SQLITE_ROW) id = sqlite3_column_int64(q, 0);
      sqlite3_reset(q);
      if (id < 0) return unavailable(wdb, "looking up meter failed");
    }
    pending.emplace(access_id, id);
    return id;
  }

  Result<WriteOutcome> write(std::span<const Reading> readings, TimeMs received_at) {
    WriteOutcome out;
    out.inserted.assign(readings.size(), 0);
    if (readings.empty()) return out;
    if (!step_reset(begin.s)) return unavailable(wdb, "BEGIN failed");
    if (auto r = sync_caches(); !r) {
      step_reset(rollback.s);
      return std::unexpected(r.error());
    }
    std::unordered_map<std::string, std::int64_t> pending;  // meters created in this txn
    std::vector<std::int64_t> touched;
    auto abort = [&](const char* what) {
      auto err = unavailable(wdb, what);
      step_reset(rollback.s);
      rollups.forget();  // its cache may hold what was just rolled back
      return err;
    };
    // Resolve meters in arrival order (new meters get ids in that order)...
    std::vector<std::int64_t> ids(readings.size());
    for (std::size_t i = 0; i < readings.size(); ++i) {
      auto id = meter_id_for(readings[i].meter_id, received_at, pending, out.new_meters);
      if (!id) {
        step_reset(rollback.s);
        return std::unexpected(id.error());
      }
      ids[i] = *id;
    }
    // ...then insert in key order: consecutive inserts land on the same
    // B-tree pages (a batch from many meters is otherwise a random walk).
    // Stable, so of two equal readings the earlier one counts as the new one.
    std::vector<std::uint32_t> order(readings.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::uint32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return ids[a] != ids[b] ? ids[a] < ids[b] : readings[a].ts < readings[b].ts;
    });
    std::int64_t last_id = -1;
    for (std::uint32_t i : order) {
      const Reading& r = readings[i];
      const std::int64_t id = ids[i];
      if (id != last_id) {
        touched.push_back(id);
        last_id = id;
      }
      sqlite3_stmt* s = insert_reading.s;
      sqlite3_bind_int64(s, 1, id);
      sqlite3_bind_int64(s, 2, r.ts);
      sqlite3_bind_double(s, 3, r.voltage);
      sqlite3_bind_double(s, 4, r.current);
      sqlite3_bind_double(s, 5, r.power);
      sqlite3_bind_double(s, 6, r.energy);
      if (r.frequency)
        sqlite3_bind_double(s, 7, *r.frequency);
      else
        sqlite3_bind_null(s, 7);
      if (r.power_factor)
        sqlite3_bind_double(s, 8, *r.power_factor);
      else
        sqlite3_bind_null(s, 8);
      int rc = sqlite3_step(s);
      sqlite3_reset(s);
      if (rc != SQLITE_DONE) return abort("inserting reading failed");
      out.inserted[i] = sqlite3_changes(wdb) > 0 ? 1 : 0;
    }
    // Rollups, per meter, from the readings this transaction inserted.
    {
      std::vector<const Reading*> fresh;
      std::size_t j = 0;
      while (j < order.size()) {
        const std::int64_t id = ids[order[j]];
        fresh.clear();
        for (; j < order.size() && ids[order[j]] == id; ++j)
          if (out.inserted[order[j]]) fresh.push_back(&readings[order[j]]);
        if (auto r = rollups.apply(id, fresh, raw_floors.contains(id)); !r) {
          step_reset(rollback.s);
          rollups.forget();
          return std::unexpected(r.error());
        }
      }
    }
    for (std::int64_t id : touched) {
      sqlite3_bind_int64(touch_meter.s, 1, id);
      sqlite3_bind_int64(touch_meter.s, 2, received_at);
      if (!step_reset(touch_meter.s)) return abort("updating last_seen failed");
    }
    if (!step_reset(commit.s)) return abort("COMMIT failed");
    meter_ids.merge(pending);
    return out;
  }

  Result<void> probe_write(TimeMs now) {
    if (!step_reset(begin.s)) return unavailable(wdb, "BEGIN failed");
    sqlite3_bind_int64(health.s, 1, now);
    if (!step_reset(health.s)) {
      auto err = unavailable(wdb, "health write failed");
      step_reset(rollback.s);
      return err;
    }
    if (!step_reset(commit.s)) {
      auto err = unavailable(wdb, "COMMIT failed");
      step_reset(rollback.s);
      return err;
    }
    return {};
  }

  // The ts/bucket below which at most `batch` rows of one meter are older
  // than `horizon`; nullopt when none are.
  std::optional<TimeMs> cut(Stmt& nth, std::int64_t id, TimeMs horizon, std::size_t batch) {
    sqlite3_bind_int64(nth.s, 1, id);
    sqlite3_bind_int64(nth.s, 2, static_cast<std::int64_t>(batch));
    std::optional<TimeMs> c = horizon;
    if (sqlite3_step(nth.s) == SQLITE_ROW)
      c = std::min<TimeMs>(horizon, sqlite3_column_int64(nth.s, 0));
    sqlite3_reset(nth.s);
    return c;
  }

  Result<RetentionOutcome> apply_retention(const RetentionPolicy& p, TimeMs now) {
    RetentionOutcome out;
    if (p.raw_ms <= 0 && p.minute_ms <= 0) return out;
    if (!step_reset(begin.s)) return unavailable(wdb, "BEGIN failed");
    auto abort = [&](const char* what) {
      auto err = unavailable(wdb, what);
      step_reset(rollback.s);
      return err;
    };
    std::vector<std::int64_t> meters;
    std::vector<std::pair<std::int64_t, TimeMs>> floors_set;
    if (auto r = each_row(wdb, all_meter_ids.s,
                          [&](sqlite3_stmt* s) { meters.push_back(sqlite3_column_int64(s, 0)); });
        !r) {
      step_reset(rollback.s);
      return std::unexpected(r.error());
    }
    for (std::int64_t id : meters) {
      if (out.raw_deleted >= p.batch && out.minute_deleted >= p.batch) break;
      if (p.raw_ms > 0 && out.raw_deleted < p.batch) {
        const std::size_t room = p.batch - out.raw_deleted;
        auto c = cut(oldest_raw_after, id, now - p.raw_ms, room);
        // The newest reading of a meter is kept: it is the meter's "latest".
        sqlite3_bind_int64(newest_raw.s, 1, id);
        if (sqlite3_step(newest_raw.s) == SQLITE_ROW &&
            sqlite3_column_type(newest_raw.s, 0) != SQLITE_NULL)
          c = std::min<TimeMs>(*c, sqlite3_column_int64(newest_raw.s, 0));
        sqlite3_reset(newest_raw.s);
        sqlite3_bind_int64(delete_raw.s, 1, id);
        sqlite3_bind_int64(delete_raw.s, 2, *c);
        if (!step_reset(delete_raw.s)) return abort("deleting old readings failed");
        const auto n = static_cast<std::size_t>(sqlite3_changes(wdb));
        out.raw_deleted += n;
        if (n > 0) {
          sqlite3_bind_int64(set_floor.s, 1, id);
          sqlite3_bind_int64(set_floor.s, 2, *c);
          if (!step_reset(set_floor.s)) return abort("recording retention floor failed");
          floors_set.emplace_back(id, *c);
        }
      }
      if (p.minute_ms > 0 && out.minute_deleted < p.batch) {
        auto c = cut(oldest_minute_after, id, now - p.minute_ms, p.batch - out.minute_deleted);
        sqlite3_bind_int64(delete_minute.s, 1, id);
        sqlite3_bind_int64(delete_minute.s, 2, *c);
        if (!step_reset(delete_minute.s)) return abort("deleting old minute rollups failed");
        out.minute_deleted += static_cast<std::size_t>(sqlite3_changes(wdb));
      }
    }
    if (!step_reset(commit.s)) return abort("COMMIT failed");
    for (auto [id, floor] : floors_set) raw_floors[id] = std::max(raw_floors[id], floor);
    if (out.raw_deleted > 0) rollups.forget();
    out.more = out.raw_deleted >= p.batch || out.minute_deleted >= p.batch;
    return out;
  }

  // The admin connection, opened on first use; call with admin_mu held.
  Result<sqlite3*> admin_db() {
    if (!admin.db) {
      if (sqlite3_open_v2(opts.path.c_str(), &admin.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                          nullptr) != SQLITE_OK) {
        auto err = unavailable(admin.db, "opening admin connection failed");
        sqlite3_close(admin.db);
        admin.db = nullptr;
        return err;
      }
      configure(admin.db);
    }
    return admin.db;
  }

  // Runs fn(admin connection) under admin_mu.
  template <class F>
  auto with_admin(F&& fn) -> decltype(fn(static_cast<sqlite3*>(nullptr))) {
    std::lock_guard lk(admin_mu);
    auto db = admin_db();
    if (!db) return std::unexpected(db.error());
    return fn(*db);
  }

  Result<std::optional<std::size_t>> delete_meter(std::string_view meter_id) {
    auto d = sqlite::delete_meter(wdb, meter_id);
    if (!d) return std::unexpected(d.error());
    if (!*d) return std::optional<std::size_t>();
    meter_ids.erase(std::string(meter_id));
    raw_floors.erase((*d)->id);
    rollups.forget();
    return std::optional<std::size_t>((*d)->readings);
  }

  Result<std::vector<std::string>> writer_missing_meters(std::span<const std::string> wanted) {
    if (auto r = sync_caches(); !r) return std::unexpected(r.error());
    std::vector<std::string> missing;
    for (const std::string& key : wanted) {
      if (meter_ids.contains(key)) continue;
      sqlite3_stmt* q = select_meter.s;
      sqlite3_bind_text(q, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
      int rc = sqlite3_step(q);
      std::int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
      sqlite3_reset(q);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return unavailable(wdb, "looking up meter failed");
      if (id < 0)
        missing.push_back(key);
      else
        meter_ids.emplace(key, id);
    }
    return missing;
  }

  Result<bool> set_tariff(std::string_view meter_id, std::optional<std::string> doc, TimeMs now) {
    return with_admin([&](sqlite3* db) {
      return transaction<bool>(db, [&]() -> Result<bool> {
        std::int64_t id = 0;
        if (!meter_id.empty()) {
          Stmt q;
          if (auto r = prepare(db, "SELECT id FROM smart_meter WHERE access_id = ?1", q); !r)
            return std::unexpected(r.error());
          sqlite3_bind_text(q.s, 1, meter_id.data(), static_cast<int>(meter_id.size()),
                            SQLITE_TRANSIENT);
          id = -1;
          if (sqlite3_step(q.s) == SQLITE_ROW) id = sqlite3_column_int64(q.s, 0);
          if (id < 0) return false;
        }
        Stmt st;
        const char* sql = doc ? "INSERT INTO tariff(meter_id, doc, updated_at) VALUES(?1, ?2, ?3) "
                                "ON CONFLICT(meter_id) DO UPDATE SET doc = excluded.doc, "
                                "updated_at = excluded.updated_at"
                              : "DELETE FROM tariff WHERE meter_id = ?1";
        if (auto r = prepare(db, sql, st); !r) return std::unexpected(r.error());
        sqlite3_bind_int64(st.s, 1, id);
        if (doc) {
          sqlite3_bind_text(st.s, 2, doc->data(), static_cast<int>(doc->size()), SQLITE_TRANSIENT);
          sqlite3_bind_int64(st.s, 3, now);
        }
        if (!step_reset(st.s)) return unavailable(db, "writing tariff failed");
        return true;
      });
    });
  }

  Result<std::unique_ptr<ReadConn>> open_reader() {
    auto c = std::make_unique<ReadConn>();
    int rc = sqlite3_open_v2(opts.path.c_str(), &c->conn.db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return unavailable(c->conn.db, "opening read connection failed");
    configure(c->conn.db);
    std::string meters_sql = std::string("SELECT ") + kMeterColumns + "ORDER BY m.access_id";
    std::string meter_sql = std::string("SELECT ") + kMeterColumns + "WHERE m.access_id = ?1";
    constexpr const char* range =
        "SELECT r.ts, r.voltage, r.current, r.power, r.energy, r.frequency, r.power_factor "
        "FROM meter_readings r JOIN smart_meter m ON m.id = r.meter_id "
        "WHERE m.access_id = ?1 AND r.ts >= ?2 AND r.ts < ?3 ";
    std::string asc = std::string(range) + "ORDER BY r.ts ASC LIMIT ?4";
    std::string desc = std::string(range) + "ORDER BY r.ts DESC LIMIT ?4";
    const char* latest =
        "SELECT m.access_id, r.ts, r.voltage, r.current, r.power, r.energy, r.frequency, "
        "r.power_factor FROM smart_meter m CROSS JOIN meter_readings r ON r.meter_id = m.id AND "
        // CROSS JOIN keeps smart_meter the outer loop: with a plain JOIN the
        // planner scanned every reading (minutes at start-up on 347 M rows).
        "r.ts = "
        "(SELECT max(ts) FROM meter_readings WHERE meter_id = m.id)";
    const std::string rollup = std::string("SELECT ") + kRollupColumns + " FROM ";
    const std::string rollup_where =
        " r JOIN smart_meter m ON m.id = r.meter_id WHERE m.access_id = ?1 AND r.bucket >= ?2 AND "
        "r.bucket < ?3 ORDER BY r.bucket";
    const std::string r1m = rollup + "rollup_1m" + rollup_where;
    const std::string r1h = rollup + "rollup_1h" + rollup_where;
    const char* tariff =
        "SELECT t.doc FROM tariff t WHERE t.meter_id = CASE WHEN ?1 = '' THEN 0 ELSE "
        "(SELECT id FROM smart_meter WHERE access_id = ?1) END";
    // Per meter, a range of its primary key (bucket alone is not a key
    // prefix: filtering on it scanned whole tables).
    auto totals = [](const char* table) {
      return std::string(
                 "SELECT access_id, kwh FROM (SELECT m.access_id, (SELECT "
                 "total(max(r.kwh, 0)) FROM ") +
             table +
             " r WHERE r.meter_id = m.id AND r.bucket >= ?1 AND r.bucket < ?2) AS kwh, "
             "(SELECT 1 FROM " +
             table +
             " r WHERE r.meter_id = m.id AND r.bucket >= ?1 AND r.bucket < ?2 LIMIT 1) AS seen "
             "FROM smart_meter m) WHERE seen ORDER BY access_id";
    };
    const std::string t1m = totals("rollup_1m");
    const std::string t1h = totals("rollup_1h");
    const std::string k1m = "SELECT r.bucket, max(r.kwh, 0) FROM rollup_1m" + rollup_where;
    const std::string k1h = "SELECT r.bucket, max(r.kwh, 0) FROM rollup_1h" + rollup_where;
    for (auto [st, sql] :
         {std::pair{&c->kwh_1m, k1m.c_str()}, std::pair{&c->kwh_1h, k1h.c_str()},
          std::pair{&c->totals_1m, t1m.c_str()}, std::pair{&c->totals_1h, t1h.c_str()},
          std::pair{&c->rollup_1m, r1m.c_str()}, std::pair{&c->rollup_1h, r1h.c_str()},
          std::pair{&c->tariff, tariff}, std::pair{&c->list_meters, meters_sql.c_str()},
          std::pair{&c->find_meter, meter_sql.c_str()}, std::pair{&c->range_asc, asc.c_str()},
          std::pair{&c->range_desc, desc.c_str()}, std::pair{&c->latest_all, latest}})
      if (auto r = prepare(c->conn.db, sql, *st); !r) return std::unexpected(r.error());
    return c;
  }

  // A pooled read connection, returned to the pool when the lease ends.
  struct Lease {
    Impl* impl;
    std::unique_ptr<ReadConn> conn;
    Lease(Impl* i, std::unique_ptr<ReadConn> c) : impl(i), conn(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (!conn) return;
      std::lock_guard lk(impl->pool_mu);
      impl->pool.push_back(std::move(conn));
    }
  };

  Result<Lease> lease() {
    {
      std::lock_guard lk(pool_mu);
      if (!pool.empty()) {
        Lease l{this, std::move(pool.back())};
        pool.pop_back();
        return l;
      }
    }
    auto c = open_reader();
    if (!c) return std::unexpected(c.error());
    return Lease{this, std::move(*c)};
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  auto failed = [&](const core::Error& e) {
    return core::fail("store_unavailable", "cannot open database " + opts.path + ": " + e.message);
  };
  std::filesystem::path p(opts.path);
  if (p.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec)
      return core::fail("store_unavailable", "cannot create directory " + p.parent_path().string() +
                                                 ": " + ec.message());
  }
  int rc =
      sqlite3_open_v2(opts.path.c_str(), &impl->wdb,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return unavailable(impl->wdb, "cannot open database " + opts.path);
  impl->configure(impl->wdb);
  if (sqlite3_db_readonly(impl->wdb, "main") == 1)
    return core::fail("store_unavailable", "database " + opts.path + " is read-only");
  // WAL: readers never block the writer; synchronous=FULL: a commit is on
  // disk when COMMIT returns (the ack-after-commit promise depends on it).
  Stmt wal;
  if (auto r = prepare(impl->wdb, "PRAGMA journal_mode=WAL", wal); !r) return failed(r.error());
  std::string mode;
  if (sqlite3_step(wal.s) == SQLITE_ROW) mode = text(wal.s, 0);
  sqlite3_reset(wal.s);
  if (mode != "wal")
    return core::fail("store_unavailable", "cannot put database " + opts.path +
                                               " in WAL mode (got '" + mode +
                                               "'): " + sqlite3_errmsg(impl->wdb));
  for (const char* pragma : {"PRAGMA synchronous=FULL", "PRAGMA foreign_keys=OFF",
                             // A group commit dirties hundreds of pages; with SQLite's default 2 MB
                             // cache it spills them mid-transaction and re-reads them (~12% of the
                             // writer's time in the batched benchmark). 64 MiB is an upper bound,
                             // allocated only as pages are used.
                             "PRAGMA cache_size=-65536",
                             // After a checkpoint the WAL file is truncated back to this size.
                             "PRAGMA journal_size_limit=67108864"})
    if (auto r = exec(impl->wdb, pragma); !r) return failed(r.error());
  if (auto r = impl->migrate(); !r) return failed(r.error());
  if (auto r = impl->prepare_writer(); !r) return failed(r.error());
  // Checkpoints run beside the writer, not on its commit path. The hook
  // replaces SQLite's inline auto-checkpoint.
  impl->checkpointer = std::make_unique<Checkpointer>();
  std::string ckpt_error;
  if (!impl->checkpointer->open(opts.path, opts.busy_timeout_ms, ckpt_error))
    return failed(core::Error{"store_unavailable", ckpt_error, std::nullopt, {}});
  sqlite3_wal_hook(impl->wdb, &Impl::on_wal_commit, impl.get());
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Result<WriteOutcome> SqliteStore::write(std::span<const Reading> readings, TimeMs received_at) {
  return impl_->write(readings, received_at);
}

Result<void> SqliteStore::probe_write(TimeMs now) { return impl_->probe_write(now); }

std::uint64_t SqliteStore::checkpoint_runs() const { return impl_->checkpointer->runs(); }
std::uint64_t SqliteStore::checkpoint_pages() const { return impl_->checkpointer->pages(); }

Result<std::vector<MeterInfo>> SqliteStore::list_meters() {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  std::vector<MeterInfo> out;
  auto r = each_row(l->conn->conn.db, l->conn->list_meters.s,
                    [&](sqlite3_stmt* s) { out.push_back(meter_row(s)); });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::optional<MeterInfo>> SqliteStore::find_meter(std::string_view meter_id) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = l->conn->find_meter.s;
  sqlite3_bind_text(s, 1, meter_id.data(), static_cast<int>(meter_id.size()), SQLITE_TRANSIENT);
  std::optional<MeterInfo> out;
  auto r = each_row(l->conn->conn.db, s, [&](sqlite3_stmt* st) { out = meter_row(st); });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<Reading>> SqliteStore::read_range(const RangeQuery& q) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = q.descending ? l->conn->range_desc.s : l->conn->range_asc.s;
  sqlite3_bind_text(s, 1, q.meter_id.data(), static_cast<int>(q.meter_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, q.from);
  sqlite3_bind_int64(s, 3, q.to);
  sqlite3_bind_int64(s, 4, static_cast<std::int64_t>(q.limit));
  std::vector<Reading> out;
  auto r = each_row(l->conn->conn.db, s, [&](sqlite3_stmt* st) {
    Reading rd;
    rd.meter_id = q.meter_id;
    read_values(st, 0, rd);
    out.push_back(std::move(rd));
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<Reading>> SqliteStore::latest_per_meter() {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  std::vector<Reading> out;
  auto r = each_row(l->conn->conn.db, l->conn->latest_all.s, [&](sqlite3_stmt* st) {
    Reading rd;
    rd.meter_id = text(st, 0);
    read_values(st, 1, rd);
    out.push_back(std::move(rd));
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<core::Aggregate>> SqliteStore::read_rollup(std::string_view meter_id,
                                                              Rollup table, TimeMs from,
                                                              TimeMs to) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = table == Rollup::minute ? l->conn->rollup_1m.s : l->conn->rollup_1h.s;
  sqlite3_bind_text(s, 1, meter_id.data(), static_cast<int>(meter_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, from);
  sqlite3_bind_int64(s, 3, to);
  std::vector<core::Aggregate> out;
  auto r = each_row(l->conn->conn.db, s,
                    [&](sqlite3_stmt* st) { out.push_back(read_aggregate(st, 0)); });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<std::pair<TimeMs, double>>> SqliteStore::read_kwh(std::string_view meter_id,
                                                                     Rollup table, TimeMs from,
                                                                     TimeMs to) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = table == Rollup::minute ? l->conn->kwh_1m.s : l->conn->kwh_1h.s;
  sqlite3_bind_text(s, 1, meter_id.data(), static_cast<int>(meter_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, from);
  sqlite3_bind_int64(s, 3, to);
  std::vector<std::pair<TimeMs, double>> out;
  auto r = each_row(l->conn->conn.db, s, [&](sqlite3_stmt* st) {
    out.emplace_back(sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1));
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<std::pair<std::string, double>>> SqliteStore::kwh_totals(Rollup table,
                                                                            TimeMs from,
                                                                            TimeMs to) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = table == Rollup::minute ? l->conn->totals_1m.s : l->conn->totals_1h.s;
  sqlite3_bind_int64(s, 1, from);
  sqlite3_bind_int64(s, 2, to);
  std::vector<std::pair<std::string, double>> out;
  auto r = each_row(l->conn->conn.db, s, [&](sqlite3_stmt* st) {
    out.emplace_back(text(st, 0), sqlite3_column_double(st, 1));
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::optional<std::string>> SqliteStore::tariff(std::string_view meter_id) {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  sqlite3_stmt* s = l->conn->tariff.s;
  sqlite3_bind_text(s, 1, meter_id.data(), static_cast<int>(meter_id.size()), SQLITE_TRANSIENT);
  std::optional<std::string> out;
  auto r = each_row(l->conn->conn.db, s, [&](sqlite3_stmt* st) { out = text(st, 0); });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<bool> SqliteStore::set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                     TimeMs now) {
  return impl_->set_tariff(meter_id, std::move(doc), now);
}

Result<bool> SqliteStore::create_meter(const NewMeter& m, const std::optional<Credential>& key,
                                      TimeMs now) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::create_meter(db, m, key, now); });
}

Result<bool> SqliteStore::update_meter(std::string_view meter_id, const MeterPatch& p) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::update_meter(db, meter_id, p); });
}

Result<std::optional<std::size_t>> SqliteStore::delete_meter(std::string_view meter_id) {
  return impl_->delete_meter(meter_id);
}

Result<std::vector<std::string>> SqliteStore::writer_missing_meters(
    std::span<const std::string> meter_ids) {
  return impl_->writer_missing_meters(meter_ids);
}

Result<bool> SqliteStore::add_credential(const Credential& c, TimeMs now) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::add_credential(db, c, now); });
}

Result<Store::Revoke> SqliteStore::revoke_credential(std::string_view id, TimeMs now) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::revoke_credential(db, id, now); });
}

Result<std::vector<Credential>> SqliteStore::list_credentials() {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  return sqlite::list_credentials(l->conn->conn.db);
}

Result<std::int64_t> SqliteStore::registry_generation() {
  auto l = impl_->lease();
  if (!l) return std::unexpected(l.error());
  return sqlite::registry_generation(l->conn->conn.db);
}

Result<RetentionOutcome> SqliteStore::apply_retention(const RetentionPolicy& policy, TimeMs now) {
  return impl_->apply_retention(policy, now);
}

// Alerts: rare, small, from the alert engine's thread and the API, so they
// share the admin connection (store/sqlite/alerts.cpp has the SQL).
Result<bool> SqliteStore::set_alert_rules(std::string_view meter_id, const std::string& doc,
                                          TimeMs now) {
  return impl_->with_admin(
      [&](sqlite3* db) { return sqlite::set_alert_rules(db, meter_id, doc, now); });
}
Result<std::optional<std::string>> SqliteStore::alert_rules(std::string_view meter_id) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::alert_rules(db, meter_id); });
}
Result<std::vector<std::pair<std::string, std::string>>> SqliteStore::all_alert_rules() {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::all_alert_rules(db); });
}
Result<std::int64_t> SqliteStore::raise_alert(const AlertRecord& a) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::raise_alert(db, a); });
}
Result<void> SqliteStore::clear_alert(std::int64_t id, TimeMs at, double value,
                                      const std::string& message) {
  return impl_->with_admin(
      [&](sqlite3* db) { return sqlite::clear_alert(db, id, at, value, message); });
}
Result<std::vector<AlertRecord>> SqliteStore::list_alerts(const AlertQuery& q) {
  return impl_->with_admin([&](sqlite3* db) { return sqlite::list_alerts(db, q); });
}

}  // namespace meterhub::store
