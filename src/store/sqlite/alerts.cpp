#include "store/sqlite/alerts.hpp"

#include "store/sqlite/sqlite_util.hpp"

namespace meterhub::store {

// The Store interface's defaults for backends without alerts (test doubles).
namespace {
std::unexpected<core::Error> no_alerts() {
  return core::fail("store_unavailable", "this store does not keep alerts");
}
}  // namespace

core::Result<bool> Store::set_alert_rules(std::string_view, const std::string&, core::TimeMs) {
  return no_alerts();
}
core::Result<std::optional<std::string>> Store::alert_rules(std::string_view) {
  return no_alerts();
}
core::Result<std::vector<std::pair<std::string, std::string>>> Store::all_alert_rules() {
  return no_alerts();
}
core::Result<std::int64_t> Store::raise_alert(const AlertRecord&) { return no_alerts(); }
core::Result<void> Store::clear_alert(std::int64_t, core::TimeMs, double, const std::string&) {
  return no_alerts();
}
core::Result<std::vector<AlertRecord>> Store::list_alerts(const AlertQuery&) { return no_alerts(); }

}  // namespace meterhub::store

namespace meterhub::store::sqlite {

using core::Result;

// meter_id is smart_meter.id (deleting a meter deletes its rules and events,
// store/sqlite/registry.cpp). AUTOINCREMENT: an id is never reused, so the
// `before` cursor of GET /alerts stays stable.
const char* const kAlertSchema = R"sql(
CREATE TABLE alert_rule (
  meter_id   INTEGER PRIMARY KEY,
  doc        TEXT    NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE alert_event (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  meter_id      INTEGER NOT NULL,
  kind          TEXT    NOT NULL,
  raised_at     INTEGER NOT NULL,
  raised_value  REAL    NOT NULL,
  message       TEXT    NOT NULL,
  cleared_at    INTEGER,
  cleared_value REAL,
  clear_message TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX alert_event_by_meter ON alert_event(meter_id, id);
CREATE INDEX alert_event_active ON alert_event(id) WHERE cleared_at IS NULL;
)sql";

namespace {

void bind_sv(sqlite3_stmt* s, int col, std::string_view v) {
  sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

Result<std::optional<std::int64_t>> row_id(sqlite3* db, std::string_view meter_id) {
  Stmt q;
  if (auto r = prepare(db, "SELECT id FROM smart_meter WHERE access_id = ?1", q); !r)
    return std::unexpected(r.error());
  bind_sv(q.s, 1, meter_id);
  int rc = sqlite3_step(q.s);
  if (rc == SQLITE_ROW) return std::optional<std::int64_t>(sqlite3_column_int64(q.s, 0));
  if (rc != SQLITE_DONE) return unavailable(db, "looking up meter failed");
  return std::optional<std::int64_t>();
}

}  // namespace

Result<bool> set_alert_rules(sqlite3* db, std::string_view meter_id, const std::string& doc,
                             core::TimeMs now) {
  return transaction<bool>(db, [&]() -> Result<bool> {
    auto id = row_id(db, meter_id);
    if (!id) return std::unexpected(id.error());
    if (!*id) return false;
    Stmt st;
    if (auto r = prepare(db,
                         "INSERT INTO alert_rule(meter_id, doc, updated_at) VALUES(?1, ?2, ?3) "
                         "ON CONFLICT(meter_id) DO UPDATE SET doc = excluded.doc, "
                         "updated_at = excluded.updated_at",
                         st);
        !r)
      return std::unexpected(r.error());
    sqlite3_bind_int64(st.s, 1, **id);
    bind_sv(st.s, 2, doc);
    sqlite3_bind_int64(st.s, 3, now);
    if (!step_reset(st.s)) return unavailable(db, "writing alert rules failed");
    return true;
  });
}

Result<std::optional<std::string>> alert_rules(sqlite3* db, std::string_view meter_id) {
  Stmt q;
  if (auto r = prepare(db,
                       "SELECT r.doc FROM alert_rule r JOIN smart_meter m ON m.id = r.meter_id "
                       "WHERE m.access_id = ?1",
                       q);
      !r)
    return std::unexpected(r.error());
  bind_sv(q.s, 1, meter_id);
  std::optional<std::string> out;
  if (auto r = each_row(db, q.s, [&](sqlite3_stmt* s) { out = text(s, 0); }); !r)
    return std::unexpected(r.error());
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules(sqlite3* db) {
  Stmt q;
  if (auto r = prepare(db,
                       "SELECT m.access_id, r.doc FROM alert_rule r JOIN smart_meter m "
                       "ON m.id = r.meter_id ORDER BY m.access_id",
                       q);
      !r)
    return std::unexpected(r.error());
  std::vector<std::pair<std::string, std::string>> out;
  if (auto r =
          each_row(db, q.s, [&](sqlite3_stmt* s) { out.emplace_back(text(s, 0), text(s, 1)); });
      !r)
    return std::unexpected(r.error());
  return out;
}

Result<std::int64_t> raise_alert(sqlite3* db, const AlertRecord& a) {
  return transaction<std::int64_t>(db, [&]() -> Result<std::int64_t> {
    auto id = row_id(db, a.meter_id);
    if (!id) return std::unexpected(id.error());
    if (!*id) return std::int64_t{0};
    Stmt st;
    if (auto r =
            prepare(db,
                    "INSERT INTO alert_event(meter_id, kind, raised_at, raised_value, message) "
                    "VALUES(?1, ?2, ?3, ?4, ?5)",
                    st);
        !r)
      return std::unexpected(r.error());
    sqlite3_bind_int64(st.s, 1, **id);
    bind_sv(st.s, 2, a.kind);
    sqlite3_bind_int64(st.s, 3, a.raised_at);
    sqlite3_bind_double(st.s, 4, a.raised_value);
    bind_sv(st.s, 5, a.message);
    if (!step_reset(st.s)) return unavailable(db, "storing alert failed");
    return std::int64_t{sqlite3_last_insert_rowid(db)};
  });
}

Result<void> clear_alert(sqlite3* db, std::int64_t id, core::TimeMs at, double value,
                         const std::string& message) {
  return transaction<void>(db, [&]() -> Result<void> {
    Stmt st;
    if (auto r = prepare(db,
                         "UPDATE alert_event SET cleared_at = ?2, cleared_value = ?3, "
                         "clear_message = ?4 WHERE id = ?1 AND cleared_at IS NULL",
                         st);
        !r)
      return std::unexpected(r.error());
    sqlite3_bind_int64(st.s, 1, id);
    sqlite3_bind_int64(st.s, 2, at);
    sqlite3_bind_double(st.s, 3, value);
    bind_sv(st.s, 4, message);
    if (!step_reset(st.s)) return unavailable(db, "clearing alert failed");
    return {};
  });
}

Result<std::vector<AlertRecord>> list_alerts(sqlite3* db, const AlertQuery& q) {
  Stmt st;
  if (auto r = prepare(db,
                       "SELECT e.id, m.access_id, e.kind, e.raised_at, e.raised_value, e.message, "
                       "e.cleared_at, e.cleared_value, e.clear_message FROM alert_event e "
                       "JOIN smart_meter m ON m.id = e.meter_id "
                       "WHERE (?1 IS NULL OR m.access_id = ?1) "
                       "AND (?2 IS NULL OR (e.cleared_at IS NULL) = ?2) "
                       "AND (?3 IS NULL OR e.id < ?3) ORDER BY e.id DESC LIMIT ?4",
                       st);
      !r)
    return std::unexpected(r.error());
  if (!q.meter_id.empty()) bind_sv(st.s, 1, q.meter_id);
  if (q.active) sqlite3_bind_int(st.s, 2, *q.active ? 1 : 0);
  if (q.before) sqlite3_bind_int64(st.s, 3, *q.before);
  sqlite3_bind_int64(st.s, 4, static_cast<std::int64_t>(q.limit));
  std::vector<AlertRecord> out;
  auto r = each_row(db, st.s, [&](sqlite3_stmt* s) {
    AlertRecord a;
    a.id = sqlite3_column_int64(s, 0);
    a.meter_id = text(s, 1);
    a.kind = text(s, 2);
    a.raised_at = sqlite3_column_int64(s, 3);
    a.raised_value = sqlite3_column_double(s, 4);
    a.message = text(s, 5);
    if (sqlite3_column_type(s, 6) != SQLITE_NULL) a.cleared_at = sqlite3_column_int64(s, 6);
    a.cleared_value = opt_double(s, 7);
    a.clear_message = text(s, 8);
    out.push_back(std::move(a));
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace meterhub::store::sqlite
