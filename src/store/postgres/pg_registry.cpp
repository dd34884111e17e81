// PgStore's device registry, credentials, tariffs and alerts: the same
// answers as the SQLite store (store/sqlite/registry.cpp, alerts.cpp and the
// tariff functions of sqlite_store.cpp), on a database shared by nodes.
//
// Serialisation: every transaction that changes the registry first locks the
// one row of registry_state (SELECT … FOR UPDATE). That makes registry
// changes of all nodes happen one at a time, so "refuse to revoke the last
// active admin token" is a check-then-act that two concurrent revocations
// cannot both pass, and the generation bump (in the same transaction) orders
// the changes. The lock is always taken first, so registry transactions never
// deadlock with each other; write() does not take it (it does not change the
// registry and does not bump the generation).
//
// Rows that hang off a meter (tariff, alert rule, alert event) are written
// after a FOR KEY SHARE lock on the meter's row, so a concurrent
// delete_meter either waits for them or makes them see "no such meter",
// never leaves an orphan (tariff.meter_id has no foreign key).
//
// Notifications: create_meter, update_meter and delete_meter send, in their
// transaction (so only when it commits),
//   NOTIFY meterhub_registry, '<event> <meter_id> <node>'
// with <event> one of `created`, `updated`, `deleted`, <meter_id> the
// meter's public id (access_id) and <node> the node that made the change
// (which has already told its own Hub, so its listener skips it), e.g.
// 'deleted kitchen node-a' (meter ids have no spaces and at most 64
// characters, core/validate.hpp, so the payload splits at its first two
// spaces and stays far below NOTIFY's 8000 bytes). Other nodes
// LISTEN on the channel to update their Hub; the payload is only a hint (a
// node that missed it still sees the change through registry_generation()).
#include <algorithm>
#include <limits>

#include "store/postgres/pg_store_impl.hpp"

namespace meterhub::store {

namespace {

using core::Result;
using core::TimeMs;

constexpr const char* kRegistryChannel = "meterhub_registry";
constexpr int kAttempts = 3;  // a transaction that hit a deadlock or serialization failure

// Runs fn(tx) in one transaction: committed when fn returns a value (also a
// "not found" answer: nothing was changed then), rolled back when it fails;
// retried from the start after a deadlock or serialization failure.
template <class T, class F>
Result<T> transaction(PGconn* c, F&& fn) {
  for (int attempt = 1;; ++attempt) {
    if (auto b = pg::exec(c, "BEGIN"); !b.ok()) return pg::unavailable(c, b, "BEGIN failed");
    Tx tx(c);
    Result<T> out = fn(tx);
    bool retry = false;
    if (out) {
      auto cm = pg::exec(c, "COMMIT");
      if (cm.ok()) return out;
      retry = pg::retryable(cm);
      out = pg::unavailable(c, cm, "COMMIT failed");
    } else {
      pg::exec(c, "ROLLBACK");
      retry = tx.retry();
    }
    if (!retry || attempt >= kAttempts) return out;
  }
}

// The lock that serialises registry changes (see the top of the file).
Result<void> lock_registry(Tx& tx) {
  auto r = tx.run("locking the registry",
                  "SELECT generation FROM registry_state WHERE id = 1 FOR UPDATE");
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> bump(Tx& tx) {
  auto r = tx.run("bumping the registry generation",
                  "UPDATE registry_state SET generation = generation + 1 WHERE id = 1");
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> notify(Tx& tx, std::string_view event, std::string_view meter_id,
                    std::string_view node) {
  std::string payload(event);
  payload += ' ';
  payload += meter_id;
  payload += ' ';
  payload += node;
  auto r = tx.run("notifying other nodes", "SELECT pg_notify($1, $2)",
                  pg::Params().add(kRegistryChannel).add(payload));
  if (!r) return std::unexpected(r.error());
  return {};
}

// The meter's row id, nullopt when it does not exist. `lock` is appended to
// the query (e.g. " FOR KEY SHARE").
Result<std::optional<std::int64_t>> meter_row_id(Tx& tx, std::string_view meter_id,
                                                 const char* lock = "") {
  auto r = tx.run("looking up meter",
                  std::string("SELECT id FROM smart_meter WHERE access_id = $1") + lock,
                  pg::Params().add(meter_id));
  if (!r) return std::unexpected(r.error());
  if (r->rows() == 0) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(r->i64(0, 0));
}

std::size_t affected(const pg::Res& r) {
  const char* n = PQcmdTuples(r.get());
  std::size_t v = 0;
  if (n) std::from_chars(n, n + std::char_traits<char>::length(n), v);
  return v;
}

const char* kind_text(CredentialKind k) { return k == CredentialKind::device ? "device" : "token"; }
const char* scope_text(Scope s) {
  return s == Scope::admin ? "admin" : s == Scope::read ? "read" : "";
}

// Inserts a credential; for a device key, revokes the meter's other keys.
// The caller holds the registry lock.
Result<bool> insert_credential(Tx& tx, const Credential& c, TimeMs now) {
  std::optional<std::int64_t> meter;
  if (c.kind == CredentialKind::device) {
    auto id = meter_row_id(tx, c.meter_id, " FOR KEY SHARE");
    if (!id) return std::unexpected(id.error());
    if (!*id) return false;
    meter = *id;
    auto rev = tx.run("revoking the meter's previous device keys",
                      "UPDATE credential SET revoked_at = $2 WHERE kind = 'device' AND "
                      "meter_id = $1 AND revoked_at IS NULL",
                      pg::Params().add(*meter).add(now));
    if (!rev) return std::unexpected(rev.error());
  }
  pg::Params p;
  p.add(c.id).add(kind_text(c.kind)).add(meter).add(c.name).add(scope_text(c.scope));
  p.bytes(c.salt).bytes(c.hash).add(c.created_at);
  auto ins = tx.run("storing credential",
                    "INSERT INTO credential(id, kind, meter_id, name, scope, salt, hash, "
                    "created_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                    p);
  if (!ins) return std::unexpected(ins.error());
  if (auto b = bump(tx); !b) return std::unexpected(b.error());
  return true;
}

// A text[] literal of `items` ({"a","b"}), quoted so any text survives.
std::string text_array(std::span<const std::string> items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s.push_back(',');
    s.push_back('"');
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') s.push_back('\\');
      s.push_back(ch);
    }
    s.push_back('"');
  }
  s.push_back('}');
  return s;
}

}  // namespace

// --- tariffs ---------------------------------------------------------------

Result<std::optional<std::string>> PgStore::tariff(std::string_view meter_id) {
  return impl_->with_conn([&](PGconn* c) -> Result<std::optional<std::string>> {
    auto r = pg::exec(c,
                      "SELECT doc FROM tariff WHERE meter_id = CASE WHEN $1 = '' THEN 0 ELSE "
                      "(SELECT id FROM smart_meter WHERE access_id = $1) END",
                      pg::Params().add(meter_id));
    if (!r.ok()) return pg::unavailable(c, r, "reading tariff failed");
    if (r.rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r.text(0, 0)));
  });
}

Result<bool> PgStore::set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                 TimeMs now) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<bool>(c, [&](Tx& tx) -> Result<bool> {
      std::int64_t id = 0;  // the server-wide default
      if (!meter_id.empty()) {
        auto row = meter_row_id(tx, meter_id, " FOR KEY SHARE");
        if (!row) return std::unexpected(row.error());
        if (!*row) return false;
        id = **row;
      }
      auto r = doc ? tx.run("writing tariff",
                            "INSERT INTO tariff(meter_id, doc, updated_at) VALUES($1, $2, $3) "
                            "ON CONFLICT(meter_id) DO UPDATE SET doc = excluded.doc, "
                            "updated_at = excluded.updated_at",
                            pg::Params().add(id).add(*doc).add(now))
                   : tx.run("removing tariff", "DELETE FROM tariff WHERE meter_id = $1",
                            pg::Params().add(id));
      if (!r) return std::unexpected(r.error());
      return true;
    });
  });
}

// --- meters ----------------------------------------------------------------

Result<bool> PgStore::create_meter(const NewMeter& m, const std::optional<Credential>& key,
                                   TimeMs now) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<bool>(c, [&](Tx& tx) -> Result<bool> {
      if (auto l = lock_registry(tx); !l) return std::unexpected(l.error());
      auto ins = tx.run(
          "creating meter",
          "INSERT INTO smart_meter(access_id, name, location, interval_s, "
          "created_at) VALUES($1, $2, $3, $4, $5) "
          "ON CONFLICT(access_id) DO NOTHING",
          pg::Params().add(m.meter_id).add(m.name).add(m.location).add(m.interval_s).add(now));
      if (!ins) return std::unexpected(ins.error());
      if (affected(*ins) == 0) return false;
      if (key) {
        // The key names its own meter (normally this one). When that meter
        // does not exist the key is not stored, the meter still is (as the
        // SQLite store does); the generation moves either way.
        auto k = insert_credential(tx, *key, now);
        if (!k) return std::unexpected(k.error());
        if (!*k)
          if (auto b = bump(tx); !b) return std::unexpected(b.error());
      } else if (auto b = bump(tx); !b) {
        return std::unexpected(b.error());
      }
      if (auto n = notify(tx, "created", m.meter_id, impl_->opts.node_id); !n)
        return std::unexpected(n.error());
      return true;
    });
  });
}

Result<bool> PgStore::update_meter(std::string_view meter_id, const MeterPatch& p) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<bool>(c, [&](Tx& tx) -> Result<bool> {
      if (auto l = lock_registry(tx); !l) return std::unexpected(l.error());
      pg::Params params;
      params.add(meter_id).add(p.name).add(p.location).add(p.interval_s.has_value());
      if (p.interval_s)
        params.add(*p.interval_s);
      else
        params.null();
      auto r = tx.run("updating meter",
                      "UPDATE smart_meter SET name = coalesce($2::text, name), "
                      "location = coalesce($3::text, location), "
                      "interval_s = CASE WHEN $4::boolean THEN $5::bigint ELSE interval_s END "
                      "WHERE access_id = $1",
                      params);
      if (!r) return std::unexpected(r.error());
      if (affected(*r) == 0) return false;
      if (auto b = bump(tx); !b) return std::unexpected(b.error());
      if (auto n = notify(tx, "updated", meter_id, impl_->opts.node_id); !n)
        return std::unexpected(n.error());
      return true;
    });
  });
}

Result<std::optional<std::size_t>> PgStore::delete_meter(std::string_view meter_id) {
  auto c = impl_->ensure(impl_->writer);
  if (!c) return std::unexpected(c.error());
  using Out = std::optional<std::size_t>;
  return transaction<Out>(*c, [&](Tx& tx) -> Result<Out> {
    if (auto l = lock_registry(tx); !l) return std::unexpected(l.error());
    // FOR UPDATE: waits for a write() of another node that holds the meter.
    auto id = meter_row_id(tx, meter_id, " FOR UPDATE");
    if (!id) return std::unexpected(id.error());
    if (!*id) return Out();
    const auto by_id = pg::Params().add(**id);
    auto n = tx.run("deleting readings", "DELETE FROM meter_readings WHERE meter_id = $1", by_id);
    if (!n) return std::unexpected(n.error());
    const std::size_t readings = affected(*n);
    // tariff has no foreign key (meter 0 is the default); the rest goes by
    // ON DELETE CASCADE: rollups, credentials, alert rules and events.
    if (auto t = tx.run("deleting tariff", "DELETE FROM tariff WHERE meter_id = $1", by_id); !t)
      return std::unexpected(t.error());
    if (auto d = tx.run("deleting meter", "DELETE FROM smart_meter WHERE id = $1", by_id); !d)
      return std::unexpected(d.error());
    if (auto b = bump(tx); !b) return std::unexpected(b.error());
    if (auto e = notify(tx, "deleted", meter_id, impl_->opts.node_id); !e)
      return std::unexpected(e.error());
    return Out(readings);
  });
}

Result<std::vector<std::string>> PgStore::writer_missing_meters(
    std::span<const std::string> meter_ids) {
  if (meter_ids.empty()) return std::vector<std::string>();
  auto c = impl_->ensure(impl_->writer);
  if (!c) return std::unexpected(c.error());
  // In the order asked, duplicates included (as the SQLite store answers).
  auto r = pg::exec(*c,
                    "SELECT w.id FROM unnest($1::text[]) WITH ORDINALITY AS w(id, n) "
                    "WHERE NOT EXISTS (SELECT 1 FROM smart_meter m WHERE m.access_id = w.id) "
                    "ORDER BY w.n",
                    pg::Params().add(text_array(meter_ids)));
  if (!r.ok()) return pg::unavailable(*c, r, "looking up meters failed");
  std::vector<std::string> missing;
  missing.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) missing.emplace_back(r.text(i, 0));
  return missing;
}

// --- credentials -----------------------------------------------------------

Result<bool> PgStore::add_credential(const Credential& cred, TimeMs now) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<bool>(c, [&](Tx& tx) -> Result<bool> {
      if (auto l = lock_registry(tx); !l) return std::unexpected(l.error());
      return insert_credential(tx, cred, now);
    });
  });
}

Result<Store::Revoke> PgStore::revoke_credential(std::string_view id, TimeMs now) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<Revoke>(c, [&](Tx& tx) -> Result<Revoke> {
      // Under the registry lock, the count below cannot change before COMMIT.
      if (auto l = lock_registry(tx); !l) return std::unexpected(l.error());
      auto q = tx.run("looking up credential",
                      "SELECT kind = 'token' AND scope = 'admin', "
                      "(SELECT count(*) FROM credential WHERE kind = 'token' AND scope = 'admin' "
                      "AND revoked_at IS NULL) FROM credential WHERE id = $1 AND "
                      "revoked_at IS NULL",
                      pg::Params().add(id));
      if (!q) return std::unexpected(q.error());
      if (q->rows() == 0) return Revoke::unknown;
      if (q->text(0, 0) == "t" && q->i64(0, 1) <= 1) return Revoke::last_admin;
      auto u = tx.run("revoking credential",
                      "UPDATE credential SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                      pg::Params().add(id).add(now));
      if (!u) return std::unexpected(u.error());
      if (auto b = bump(tx); !b) return std::unexpected(b.error());
      return Revoke::revoked;
    });
  });
}

Result<std::vector<Credential>> PgStore::list_credentials() {
  return impl_->with_conn([&](PGconn* c) -> Result<std::vector<Credential>> {
    // encode(…, 'hex') rather than the bytea column: the same text whatever
    // the server's bytea_output.
    auto r = pg::exec(c,
                      "SELECT c.id, c.kind, coalesce(m.access_id, ''), c.name, c.scope, "
                      "encode(c.salt, 'hex'), encode(c.hash, 'hex'), c.created_at, c.revoked_at "
                      "FROM credential c LEFT JOIN smart_meter m ON m.id = c.meter_id "
                      "ORDER BY c.created_at, c.id COLLATE \"C\"");
    if (!r.ok()) return pg::unavailable(c, r, "reading credentials failed");
    std::vector<Credential> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
      Credential cr;
      cr.id = r.text(i, 0);
      cr.kind = r.text(i, 1) == "device" ? CredentialKind::device : CredentialKind::token;
      cr.meter_id = r.text(i, 2);
      cr.name = r.text(i, 3);
      const auto scope = r.text(i, 4);
      cr.scope = scope == "admin" ? Scope::admin : scope == "read" ? Scope::read : Scope::none;
      cr.salt = pg::unhex("\\x" + std::string(r.text(i, 5)));
      cr.hash = pg::unhex("\\x" + std::string(r.text(i, 6)));
      cr.created_at = r.i64(i, 7);
      cr.revoked_at = r.opt_i64(i, 8);
      out.push_back(std::move(cr));
    }
    return out;
  });
}

Result<std::int64_t> PgStore::registry_generation() {
  return impl_->with_conn([&](PGconn* c) -> Result<std::int64_t> {
    auto r = pg::exec(c, "SELECT generation FROM registry_state WHERE id = 1");
    if (!r.ok() || r.rows() != 1) return pg::unavailable(c, r, "reading registry state failed");
    return r.i64(0, 0);
  });
}

// --- alerts ----------------------------------------------------------------

Result<bool> PgStore::set_alert_rules(std::string_view meter_id, const std::string& doc,
                                      TimeMs now) {
  return impl_->with_conn([&](PGconn* c) {
    return transaction<bool>(c, [&](Tx& tx) -> Result<bool> {
      auto id = meter_row_id(tx, meter_id, " FOR KEY SHARE");
      if (!id) return std::unexpected(id.error());
      if (!*id) return false;
      auto r = tx.run("writing alert rules",
                      "INSERT INTO alert_rule(meter_id, doc, updated_at) VALUES($1, $2, $3) "
                      "ON CONFLICT(meter_id) DO UPDATE SET doc = excluded.doc, "
                      "updated_at = excluded.updated_at",
                      pg::Params().add(**id).add(doc).add(now));
      if (!r) return std::unexpected(r.error());
      return true;
    });
  });
}

Result<std::optional<std::string>> PgStore::alert_rules(std::string_view meter_id) {
  return impl_->with_conn([&](PGconn* c) -> Result<std::optional<std::string>> {
    auto r = pg::exec(c,
                      "SELECT r.doc FROM alert_rule r JOIN smart_meter m ON m.id = r.meter_id "
                      "WHERE m.access_id = $1",
                      pg::Params().add(meter_id));
    if (!r.ok()) return pg::unavailable(c, r, "reading alert rules failed");
    if (r.rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r.text(0, 0)));
  });
}

Result<std::vector<std::pair<std::string, std::string>>> PgStore::all_alert_rules() {
  using Out = std::vector<std::pair<std::string, std::string>>;
  return impl_->with_conn([&](PGconn* c) -> Result<Out> {
    // COLLATE "C": byte order, as SQLite sorts text.
    auto r = pg::exec(c,
                      "SELECT m.access_id, r.doc FROM alert_rule r JOIN smart_meter m "
                      "ON m.id = r.meter_id ORDER BY m.access_id COLLATE \"C\"");
    if (!r.ok()) return pg::unavailable(c, r, "reading alert rules failed");
    Out out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.text(i, 1));
    return out;
  });
}

Result<std::int64_t> PgStore::raise_alert(const AlertRecord& a) {
  return impl_->with_conn([&](PGconn* c) -> Result<std::int64_t> {
    // One statement: the meter's row is key-share locked, so a concurrent
    // delete either waits or leaves no row to insert for (answer 0).
    auto r = pg::exec(c,
                      "INSERT INTO alert_event(meter_id, kind, raised_at, raised_value, message) "
                      "SELECT id, $2, $3, $4, $5 FROM smart_meter WHERE access_id = $1 "
                      "FOR KEY SHARE RETURNING id",
                      pg::Params()
                          .add(a.meter_id)
                          .add(a.kind)
                          .add(a.raised_at)
                          .add(a.raised_value)
                          .add(a.message));
    if (!r.ok()) return pg::unavailable(c, r, "storing alert failed");
    if (r.rows() == 0) return std::int64_t{0};
    return r.i64(0, 0);
  });
}

Result<void> PgStore::clear_alert(std::int64_t id, TimeMs at, double value,
                                  const std::string& message) {
  return impl_->with_conn([&](PGconn* c) -> Result<void> {
    auto r = pg::exec(c,
                      "UPDATE alert_event SET cleared_at = $2, cleared_value = $3, "
                      "clear_message = $4 WHERE id = $1 AND cleared_at IS NULL",
                      pg::Params().add(id).add(at).add(value).add(message));
    if (!r.ok()) return pg::unavailable(c, r, "clearing alert failed");
    return {};
  });
}

Result<std::vector<AlertRecord>> PgStore::list_alerts(const AlertQuery& q) {
  return impl_->with_conn([&](PGconn* c) -> Result<std::vector<AlertRecord>> {
    pg::Params p;
    if (q.meter_id.empty())
      p.null();
    else
      p.add(q.meter_id);
    p.add(q.active).add(q.before);
    // SQLite reads a limit beyond int64 as "no limit"; PostgreSQL refuses one.
    p.add(static_cast<std::int64_t>(
        std::min<std::size_t>(q.limit, std::numeric_limits<std::int64_t>::max())));
    auto r = pg::exec(c,
                      "SELECT e.id, m.access_id, e.kind, e.raised_at, e.raised_value, e.message, "
                      "e.cleared_at, e.cleared_value, e.clear_message FROM alert_event e "
                      "JOIN smart_meter m ON m.id = e.meter_id "
                      "WHERE ($1::text IS NULL OR m.access_id = $1) "
                      "AND ($2::boolean IS NULL OR (e.cleared_at IS NULL) = $2) "
                      "AND ($3::bigint IS NULL OR e.id < $3) ORDER BY e.id DESC LIMIT $4",
                      p);
    if (!r.ok()) return pg::unavailable(c, r, "reading alerts failed");
    std::vector<AlertRecord> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
      AlertRecord a;
      a.id = r.i64(i, 0);
      a.meter_id = r.text(i, 1);
      a.kind = r.text(i, 2);
      a.raised_at = r.i64(i, 3);
      a.raised_value = r.f64(i, 4);
      a.message = r.text(i, 5);
      a.cleared_at = r.opt_i64(i, 6);
      a.cleared_value = r.opt_f64(i, 7);
      a.clear_message = r.text(i, 8);
      out.push_back(std::move(a));
    }
    return out;
  });
}

}  // namespace meterhub::store
