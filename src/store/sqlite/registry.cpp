#include "store/sqlite/registry.hpp"

#include "store/sqlite/sqlite_util.hpp"

namespace meterhub::store::sqlite {
namespace {

using core::Result;
using core::TimeMs;

void bind_text(sqlite3_stmt* s, int col, std::string_view v) {
  sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void bind_blob(sqlite3_stmt* s, int col, std::string_view v) {
  sqlite3_bind_blob(s, col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string blob(sqlite3_stmt* s, int col) {
  const void* p = sqlite3_column_blob(s, col);
  return p ? std::string(static_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

// Runs `sql` with binds applied by `bind`; the number of rows changed.
template <class Bind>
Result<std::size_t> run(sqlite3* db, const char* sql, Bind&& bind) {
  Stmt st;
  if (auto r = prepare(db, sql, st); !r) return std::unexpected(r.error());
  bind(st.s);
  int rc = sqlite3_step(st.s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return unavailable(db, "registry update failed");
  return static_cast<std::size_t>(sqlite3_changes(db));
}

Result<std::optional<std::int64_t>> meter_row_id(sqlite3* db, std::string_view meter_id) {
  Stmt q;
  if (auto r = prepare(db, "SELECT id FROM smart_meter WHERE access_id = ?1", q); !r)
    return std::unexpected(r.error());
  bind_text(q.s, 1, meter_id);
  int rc = sqlite3_step(q.s);
  if (rc == SQLITE_ROW) return std::optional<std::int64_t>(sqlite3_column_int64(q.s, 0));
  if (rc != SQLITE_DONE) return unavailable(db, "looking up meter failed");
  return std::optional<std::int64_t>();
}

Result<void> bump(sqlite3* db) {
  auto r = run(db, "UPDATE registry_state SET generation = generation + 1 WHERE id = 1",
               [](sqlite3_stmt*) {});
  if (!r) return std::unexpected(r.error());
  return {};
}

const char* kind_text(CredentialKind k) { return k == CredentialKind::device ? "device" : "token"; }
const char* scope_text(Scope s) {
  return s == Scope::admin ? "admin" : s == Scope::read ? "read" : "";
}

// Inserts a credential; for a device key, revokes the meter's other keys.
Result<bool> insert_credential(sqlite3* db, const Credential& c, TimeMs now) {
  std::optional<std::int64_t> meter;
  if (c.kind == CredentialKind::device) {
    auto id = meter_row_id(db, c.meter_id);
    if (!id) return std::unexpected(id.error());
    if (!*id) return false;
    meter = *id;
    auto rev = run(db,
                   "UPDATE credential SET revoked_at = ?2 WHERE kind = 'device' AND meter_id = ?1 "
                   "AND revoked_at IS NULL",
                   [&](sqlite3_stmt* s) {
                     sqlite3_bind_int64(s, 1, *meter);
                     sqlite3_bind_int64(s, 2, now);
                   });
    if (!rev) return std::unexpected(rev.error());
  }
  auto ins = run(db,
                 "INSERT INTO credential(id, kind, meter_id, name, scope, salt, hash, created_at) "
                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                 [&](sqlite3_stmt* s) {
                   bind_text(s, 1, c.id);
                   sqlite3_bind_text(s, 2, kind_text(c.kind), -1, SQLITE_STATIC);
                   if (meter)
                     sqlite3_bind_int64(s, 3, *meter);
                   else
                     sqlite3_bind_null(s, 3);
                   bind_text(s, 4, c.name);
                   sqlite3_bind_text(s, 5, scope_text(c.scope), -1, SQLITE_STATIC);
                   bind_blob(s, 6, c.salt);
                   bind_blob(s, 7, c.hash);
                   sqlite3_bind_int64(s, 8, c.created_at);
                 });
  if (!ins) return std::unexpected(ins.error());
  if (auto b = bump(db); !b) return std::unexpected(b.error());
  return true;
}

}  // namespace

const char* const kRegistrySchema = R"sql(
ALTER TABLE smart_meter ADD COLUMN location TEXT NOT NULL DEFAULT '';
ALTER TABLE smart_meter ADD COLUMN interval_s INTEGER;
-- Device keys and API tokens: a public id and a salted SHA-256 of the secret.
CREATE TABLE credential (
  id          TEXT    PRIMARY KEY,
  kind        TEXT    NOT NULL CHECK (kind IN ('device', 'token')),
  meter_id    INTEGER REFERENCES smart_meter(id),
  name        TEXT    NOT NULL DEFAULT '',
  scope       TEXT    NOT NULL DEFAULT '',
  salt        BLOB    NOT NULL,
  hash        BLOB    NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX credential_by_meter ON credential(meter_id) WHERE meter_id IS NOT NULL;
-- Bumped by every registry change, so that every process caching
-- credentials (the server, other nodes) notices CLI and peer changes.
CREATE TABLE registry_state (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  generation  INTEGER NOT NULL
);
INSERT INTO registry_state(id, generation) VALUES(1, 0);
)sql";

Result<bool> create_meter(sqlite3* db, const NewMeter& m, const std::optional<Credential>& key,
                          TimeMs now) {
  return transaction<bool>(db, [&]() -> Result<bool> {
    auto ins = run(db,
                   "INSERT INTO smart_meter(access_id, name, location, interval_s, created_at) "
                   "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(access_id) DO NOTHING",
                   [&](sqlite3_stmt* s) {
                     bind_text(s, 1, m.meter_id);
                     bind_text(s, 2, m.name);
                     bind_text(s, 3, m.location);
                     if (m.interval_s)
                       sqlite3_bind_int64(s, 4, *m.interval_s);
                     else
                       sqlite3_bind_null(s, 4);
                     sqlite3_bind_int64(s, 5, now);
                   });
    if (!ins) return std::unexpected(ins.error());
    if (*ins == 0) return false;
    if (key) {
      auto k = insert_credential(db, *key, now);
      if (!k) return std::unexpected(k.error());
    } else if (auto b = bump(db); !b) {
      return std::unexpected(b.error());
    }
    return true;
  });
}

Result<bool> update_meter(sqlite3* db, std::string_view meter_id, const MeterPatch& p) {
  return transaction<bool>(db, [&]() -> Result<bool> {
    auto id = meter_row_id(db, meter_id);
    if (!id) return std::unexpected(id.error());
    if (!*id) return false;
    auto set = [&](const char* sql, auto bind) -> Result<void> {
      auto r = run(db, sql, [&](sqlite3_stmt* s) {
        sqlite3_bind_int64(s, 1, **id);
        bind(s);
      });
      if (!r) return std::unexpected(r.error());
      return {};
    };
    if (p.name)
      if (auto r = set("UPDATE smart_meter SET name = ?2 WHERE id = ?1",
                       [&](sqlite3_stmt* s) { bind_text(s, 2, *p.name); });
          !r)
        return std::unexpected(r.error());
    if (p.location)
      if (auto r = set("UPDATE smart_meter SET location = ?2 WHERE id = ?1",
                       [&](sqlite3_stmt* s) { bind_text(s, 2, *p.location); });
          !r)
        return std::unexpected(r.error());
    if (p.interval_s)
      if (auto r = set("UPDATE smart_meter SET interval_s = ?2 WHERE id = ?1",
                       [&](sqlite3_stmt* s) {
                         if (*p.interval_s)
                           sqlite3_bind_int64(s, 2, **p.interval_s);
                         else
                           sqlite3_bind_null(s, 2);
                       });
          !r)
        return std::unexpected(r.error());
    if (auto b = bump(db); !b) return std::unexpected(b.error());
    return true;
  });
}

Result<std::optional<Deleted>> delete_meter(sqlite3* db, std::string_view meter_id) {
  return transaction<std::optional<Deleted>>(db, [&]() -> Result<std::optional<Deleted>> {
    auto id = meter_row_id(db, meter_id);
    if (!id) return std::unexpected(id.error());
    if (!*id) return std::optional<Deleted>();
    Deleted d;
    d.id = **id;
    auto by_id = [&](sqlite3_stmt* s) { sqlite3_bind_int64(s, 1, d.id); };
    auto n = run(db, "DELETE FROM meter_readings WHERE meter_id = ?1", by_id);
    if (!n) return std::unexpected(n.error());
    d.readings = *n;
    for (const char* sql : {"DELETE FROM rollup_1m WHERE meter_id = ?1",
                            "DELETE FROM rollup_1h WHERE meter_id = ?1",
                            "DELETE FROM tariff WHERE meter_id = ?1",
                            "DELETE FROM credential WHERE meter_id = ?1",
                            "DELETE FROM alert_rule WHERE meter_id = ?1",
                            "DELETE FROM alert_event WHERE meter_id = ?1",
                            "DELETE FROM smart_meter WHERE id = ?1"})
      if (auto r = run(db, sql, by_id); !r) return std::unexpected(r.error());
    if (auto b = bump(db); !b) return std::unexpected(b.error());
    return std::optional<Deleted>(d);
  });
}

Result<bool> add_credential(sqlite3* db, const Credential& c, TimeMs now) {
  return transaction<bool>(db, [&] { return insert_credential(db, c, now); });
}

Result<Store::Revoke> revoke_credential(sqlite3* db, std::string_view id, TimeMs now) {
  using Revoke = Store::Revoke;
  return transaction<Revoke>(db, [&]() -> Result<Revoke> {
    Stmt q;
    if (auto r = prepare(db,
                         "SELECT kind = 'token' AND scope = 'admin', "
                         "(SELECT count(*) FROM credential WHERE kind = 'token' AND scope = 'admin' "
                         "AND revoked_at IS NULL) FROM credential WHERE id = ?1 AND "
                         "revoked_at IS NULL",
                         q);
        !r)
      return std::unexpected(r.error());
    bind_text(q.s, 1, id);
    int rc = sqlite3_step(q.s);
    if (rc == SQLITE_DONE) return Revoke::unknown;
    if (rc != SQLITE_ROW) return unavailable(db, "looking up credential failed");
    if (sqlite3_column_int(q.s, 0) != 0 && sqlite3_column_int64(q.s, 1) <= 1)
      return Revoke::last_admin;
    auto n = run(db, "UPDATE credential SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                 [&](sqlite3_stmt* s) {
                   bind_text(s, 1, id);
                   sqlite3_bind_int64(s, 2, now);
                 });
    if (!n) return std::unexpected(n.error());
    if (auto b = bump(db); !b) return std::unexpected(b.error());
    return Revoke::revoked;
  });
}

Result<std::vector<Credential>> list_credentials(sqlite3* db) {
  Stmt q;
  if (auto r = prepare(db,
                       "SELECT c.id, c.kind, coalesce(m.access_id, ''), c.name, c.scope, c.salt, "
                       "c.hash, c.created_at, c.revoked_at FROM credential c "
                       "LEFT JOIN smart_meter m ON m.id = c.meter_id ORDER BY c.created_at, c.id",
                       q);
      !r)
    return std::unexpected(r.error());
  std::vector<Credential> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    Credential c;
    c.id = text(q.s, 0);
    c.kind = text(q.s, 1) == "device" ? CredentialKind::device : CredentialKind::token;
    c.meter_id = text(q.s, 2);
    c.name = text(q.s, 3);
    const std::string scope = text(q.s, 4);
    c.scope = scope == "admin" ? Scope::admin : scope == "read" ? Scope::read : Scope::none;
    c.salt = blob(q.s, 5);
    c.hash = blob(q.s, 6);
    c.created_at = sqlite3_column_int64(q.s, 7);
    if (sqlite3_column_type(q.s, 8) != SQLITE_NULL) c.revoked_at = sqlite3_column_int64(q.s, 8);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return unavailable(db, "reading credentials failed");
  return out;
}

Result<std::int64_t> registry_generation(sqlite3* db) {
  Stmt q;
  if (auto r = prepare(db, "SELECT generation FROM registry_state WHERE id = 1", q); !r)
    return std::unexpected(r.error());
  if (sqlite3_step(q.s) != SQLITE_ROW) return unavailable(db, "reading registry state failed");
  return sqlite3_column_int64(q.s, 0);
}

}  // namespace meterhub::store::sqlite
