// What the PostgreSQL store's registry (store/postgres/pg_registry.cpp)
// promises beyond the contract suite that both stores pass: the last-admin
// check holds against concurrent revocations on several connections, the
// registry generation is shared by every node on the database, the
// 'meterhub_registry' notifications arrive (only for committed changes),
// bytea keeps arbitrary bytes, and delete_meter leaves no row of the meter.
//
// Needs a server: METERHUB_TEST_PG is a URL to an existing server's
// `postgres` database (e.g. postgresql://postgres@/postgres?host=/tmp&port=55432);
// each test creates and drops a database of its own. Skipped when unset.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_util.hpp"
#include "store/postgres/pg_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::device_key;

using meterhub::testing::kT0;

// A plain libpq connection for checks behind the store's back.
class Sql {
 public:
  explicit Sql(const std::string& url) : c_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(c_), CONNECTION_OK) << PQerrorMessage(c_);
  }
  ~Sql() { PQfinish(c_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;
  PGconn* conn() const { return c_; }

  void exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  }
  // The first column of the first row, as text ("" when none).
  std::string value(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::string out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
      out = PQgetvalue(r, 0, 0);
    else
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
    return out;
  }
  std::int64_t integer(const std::string& sql) { return std::stoll(value(sql)); }

 private:
  PGconn* c_;
};

Credential token(std::string id, Scope scope, core::TimeMs at) {
  Credential c;
  c.id = std::move(id);
  c.kind = CredentialKind::token;
  c.name = "test";
  c.scope = scope;
  c.salt = std::string(16, 't');
  c.hash = std::string(32, 'u');
  c.created_at = at;
  return c;
}

// The payload of the next notification on `c` (which LISTENs), nullopt when
// none arrives within `wait`.
std::optional<std::string> next_notification(PGconn* c, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (PQconsumeInput(c) != 1) {
      ADD_FAILURE() << PQerrorMessage(c);
      return std::nullopt;
    }
    if (PGnotify* n = PQnotifies(c)) {
      EXPECT_STREQ(n->relname, "meterhub_registry");
      std::string payload = n->extra;
      PQfreemem(n);
      return payload;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd fd{PQsocket(c), POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(left.count()));
  }
}

// A fresh database per test, dropped afterwards.
class PgRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* server = std::getenv("METERHUB_TEST_PG");
    if (!server || !*server)
      GTEST_SKIP() << "METERHUB_TEST_PG is not set: set it to a PostgreSQL URL of an existing "
                      "server's postgres database to run the PostgreSQL registry tests";
    server_ = server;
    std::random_device rd;
    db_ = "reg_test_" + std::to_string(rd()) + std::to_string(rd() % 10000);
    Sql admin(server_);
    admin.exec("CREATE DATABASE " + db_);
    url_ = meterhub::testing::pg_url_for(server_, db_);
  }
  void TearDown() override {
    if (db_.empty()) return;
    Sql admin(server_);
    admin.exec("DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
  }

  // Another node on the same database.
  std::unique_ptr<PgStore> open_node(std::size_t readers = 4) {
    PgOptions o;
    o.conninfo = url_;
    o.readers = readers;
    auto s = PgStore::open(std::move(o));
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? std::move(*s) : nullptr;
  }

  std::string server_, db_, url_;
};

// ---------------------------------------------------------------------------

TEST(PgRegistryUrl, WithDatabaseReplacesOnlyTheName) {
  EXPECT_EQ(
      meterhub::testing::pg_url_for("postgresql://postgres@/postgres?host=/tmp&port=55432", "x"),
      "postgresql://postgres@/x?host=/tmp&port=55432");
  EXPECT_EQ(meterhub::testing::pg_url_for("postgresql://u:p@h:5432/postgres", "x"),
            "postgresql://u:p@h:5432/x");
  EXPECT_EQ(meterhub::testing::pg_url_for("postgresql://h", "x"), "postgresql://h/x");
  EXPECT_EQ(meterhub::testing::pg_url_for("postgresql://h?port=1", "x"), "postgresql://h/x?port=1");
}

// Two nodes revoke the last two admin tokens at the same moment: exactly one
// revocation wins, so one admin remains. Repeated, since a race that is
// lost only sometimes is the bug this guards against.
TEST_F(PgRegistry, ConcurrentRevocationsNeverRemoveTheLastAdmin) {
  auto a = open_node();
  auto b = open_node();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->add_credential(token("admin-0", Scope::admin, kT0), kT0).value());
  ASSERT_TRUE(a->add_credential(token("reader", Scope::read, kT0), kT0).value());
  std::string survivor = "admin-0";
  for (int round = 1; round <= 25; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string fresh = "admin-" + std::to_string(round);
    ASSERT_TRUE(b->add_credential(token(fresh, Scope::admin, kT0 + round), kT0).value());

    std::atomic<int> ready{0};
    Store::Revoke ra{}, rb{};
    bool ok_a = false, ok_b = false;
    auto revoke = [&](PgStore& s, const std::string& id, Store::Revoke& out, bool& ok) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      auto r = s.revoke_credential(id, kT0 + 1'000 + round);
      ok = r.has_value();
      if (r) out = *r;
    };
    const std::string previous = survivor;
    std::thread ta(revoke, std::ref(*a), previous, std::ref(ra), std::ref(ok_a));
    std::thread tb(revoke, std::ref(*b), fresh, std::ref(rb), std::ref(ok_b));
    ta.join();
    tb.join();
    ASSERT_TRUE(ok_a && ok_b);
    const int revoked = (ra == Store::Revoke::revoked) + (rb == Store::Revoke::revoked);
    const int refused = (ra == Store::Revoke::last_admin) + (rb == Store::Revoke::last_admin);
    ASSERT_EQ(revoked, 1);
    ASSERT_EQ(refused, 1);

    int active_admins = 0;
    const auto creds = a->list_credentials().value();
    for (const auto& c : creds)
      if (c.kind == CredentialKind::token && c.scope == Scope::admin && !c.revoked_at) {
        ++active_admins;
        survivor = c.id;
      }
    ASSERT_EQ(active_admins, 1);
    EXPECT_EQ(survivor, ra == Store::Revoke::revoked ? fresh : previous);
  }
  // A read token is never "the last admin".
  EXPECT_EQ(b->revoke_credential("reader", kT0 + 5'000).value(), Store::Revoke::revoked);
}

// Every registry change made by one node moves the generation that another
// node reads; changes that are not registry changes, or that change
// nothing, do not.
TEST_F(PgRegistry, GenerationMovesOnEveryChangeMadeByAnotherNode) {
  auto a = open_node();
  auto b = open_node();
  ASSERT_TRUE(a && b);
  std::int64_t last = a->registry_generation().value();
  auto moved = [&](const char* what) {
    const std::int64_t g = a->registry_generation().value();
    EXPECT_GT(g, last) << what;
    EXPECT_EQ(g, b->registry_generation().value()) << what;
    last = g;
  };
  auto still = [&](const char* what) { EXPECT_EQ(a->registry_generation().value(), last) << what; };

  ASSERT_TRUE(b->create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  moved("create_meter");
  ASSERT_TRUE(b->create_meter({"k", "K", "x", 10}, device_key("dk", "k", kT0), kT0).value());
  moved("create_meter with a key");
  MeterPatch p;
  p.location = "cellar";
  ASSERT_TRUE(b->update_meter("m", p).value());
  moved("update_meter");
  ASSERT_TRUE(b->add_credential(device_key("e1", "m", kT0), kT0).value());
  moved("add_credential (device)");
  ASSERT_TRUE(b->add_credential(device_key("e2", "m", kT0), kT0).value());
  moved("add_credential (rotation)");
  ASSERT_TRUE(b->add_credential(token("t", Scope::read, kT0), kT0).value());
  moved("add_credential (token)");
  ASSERT_EQ(b->revoke_credential("t", kT0).value(), Store::Revoke::revoked);
  moved("revoke_credential");
  ASSERT_EQ(b->delete_meter("k").value(), std::optional<std::size_t>(0));
  moved("delete_meter");

  EXPECT_FALSE(b->create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  still("create_meter of an existing id");
  EXPECT_FALSE(b->update_meter("nope", p).value());
  still("update_meter of an unknown meter");
  EXPECT_FALSE(b->add_credential(device_key("g", "ghost", kT0), kT0).value());
  still("add_credential for an unknown meter");
  EXPECT_EQ(b->revoke_credential("t", kT0).value(), Store::Revoke::unknown);
  still("revoke_credential of a revoked credential");
  EXPECT_FALSE(b->delete_meter("k").value());
  still("delete_meter of an unknown meter");
  EXPECT_FALSE(b->add_credential(token("t", Scope::read, kT0), kT0));  // duplicate id: an error
  still("a failed add_credential");
  ASSERT_TRUE(
      b->set_tariff("m", R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0).value());
  ASSERT_TRUE(b->set_alert_rules("m", R"({"rules":[]})", kT0).value());
  ASSERT_GT(b->raise_alert({0, "m", "power_above", kT0, 1.0, "x", {}, {}, {}}).value(), 0);
  still("tariffs and alerts");
  // A meter created by a plain insert (as write() does) is no registry change.
  Sql sql(url_);
  sql.exec("INSERT INTO smart_meter(access_id, created_at) VALUES ('auto', 1)");
  still("a meter created outside the registry");
}

// create/update/delete_meter notify 'meterhub_registry' with "<event>
// <meter_id> <node>", delivered on commit; calls that change nothing send nothing.
TEST_F(PgRegistry, RegistryChangesAreNotifiedToListeners) {
  auto s = open_node();
  ASSERT_TRUE(s);
  Sql listener(url_);
  listener.exec("LISTEN meterhub_registry");

  ASSERT_TRUE(s->create_meter({"m1", "", "", std::nullopt}, std::nullopt, kT0).value());
  ASSERT_TRUE(
      s->create_meter({"odd id \"x\"", "", "", 5}, device_key("k", "odd id \"x\"", kT0), kT0)
          .value());
  EXPECT_FALSE(s->create_meter({"m1", "", "", std::nullopt}, std::nullopt, kT0).value());
  MeterPatch p;
  p.name = "Kitchen";
  ASSERT_TRUE(s->update_meter("m1", p).value());
  EXPECT_FALSE(s->update_meter("nope", p).value());
  ASSERT_TRUE(s->add_credential(token("t", Scope::admin, kT0), kT0).value());  // not a meter
  ASSERT_TRUE(s->delete_meter("m1").value());
  EXPECT_FALSE(s->delete_meter("m1").value());

  const std::string by = " " + s->node_id();  // the node that made the change
  const std::vector<std::string> want = {"created m1" + by, "created odd id \"x\"" + by,
                                         "updated m1" + by, "deleted m1" + by};
  std::vector<std::string> got;
  while (got.size() < want.size())
    if (auto n = next_notification(listener.conn(), std::chrono::seconds(5)))
      got.push_back(*n);
    else
      break;
  EXPECT_EQ(got, want);
  // Nothing more arrives (the refused calls sent nothing).
  EXPECT_EQ(next_notification(listener.conn(), std::chrono::milliseconds(200)), std::nullopt);
}

// Salt and hash are raw bytes: every byte value, NUL included, comes back
// unchanged through another node, and is stored as bytea of that length
// (not as hex text).
TEST_F(PgRegistry, CredentialBytesRoundTripThroughBytea) {
  auto a = open_node();
  auto b = open_node();
  ASSERT_TRUE(a && b);
  std::string every;
  for (int i = 0; i < 256; ++i) every.push_back(static_cast<char>(i));
  std::string reversed(every.rbegin(), every.rend());
  Credential t = token("bytes", Scope::admin, kT0);
  t.salt = every;
  t.hash = reversed;
  Credential z = token("zeros", Scope::read, kT0 + 1);
  z.salt = std::string(16, '\0');
  z.hash = std::string(31, '\0') + "\x01";
  Credential e = token("empty", Scope::read, kT0 + 2);
  e.salt.clear();
  e.hash.clear();
  for (const Credential* c : {&t, &z, &e}) ASSERT_TRUE(a->add_credential(*c, kT0).value());

  const auto cs = b->list_credentials().value();
  ASSERT_EQ(cs.size(), 3u);
  const Credential* want[] = {&t, &z, &e};
  for (std::size_t i = 0; i < cs.size(); ++i) {
    SCOPED_TRACE(cs[i].id);
    EXPECT_EQ(cs[i].id, want[i]->id);
    EXPECT_EQ(cs[i].salt, want[i]->salt);
    EXPECT_EQ(cs[i].hash, want[i]->hash);
  }
  Sql sql(url_);
  EXPECT_EQ(sql.integer("SELECT length(salt) FROM credential WHERE id = 'bytes'"), 256);
  EXPECT_EQ(sql.integer("SELECT get_byte(salt, 0) FROM credential WHERE id = 'bytes'"), 0);
  EXPECT_EQ(sql.integer("SELECT get_byte(salt, 255) FROM credential WHERE id = 'bytes'"), 255);
  EXPECT_EQ(sql.integer("SELECT get_byte(hash, 0) FROM credential WHERE id = 'bytes'"), 255);
  // Whatever the session's bytea_output.
  sql.exec("ALTER DATABASE " + db_ + " SET bytea_output = 'escape'");
  auto c = open_node();
  ASSERT_TRUE(c);
  const auto again = c->list_credentials().value();
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].salt, every);
  EXPECT_EQ(again[0].hash, reversed);
}

// delete_meter counts the readings it deleted and leaves no row of the
// meter in any table (readings, rollups, keys, tariff, alerts), while the
// other meter and the server-wide tariff stay.
TEST_F(PgRegistry, DeleteMeterRemovesEveryRowOfTheMeter) {
  auto s = open_node();
  ASSERT_TRUE(s);
  Sql sql(url_);
  for (const char* id : {"m", "n"}) {
    ASSERT_TRUE(s->create_meter({id, "", "", std::nullopt},
                                device_key(std::string("key-") + id, id, kT0), kT0)
                    .value());
    ASSERT_TRUE(s->set_tariff(id, R"({"price_per_kwh":0.3})", kT0).value());
    ASSERT_TRUE(s->set_alert_rules(id, R"({"rules":[]})", kT0).value());
    ASSERT_GT(s->raise_alert({0, id, "offline", kT0, 0, "gone", {}, {}, {}}).value(), 0);
    const std::string mid =
        "(SELECT id FROM smart_meter WHERE access_id = '" + std::string(id) + "')";
    sql.exec(
        "INSERT INTO meter_readings(meter_id, ts, voltage, current, power, energy, batch) "
        "SELECT " +
        mid +
        ", g, 230, 1, 230, g / 1000.0, nextval('reading_batch') "
        "FROM generate_series(1, 37) g");
    sql.exec("INSERT INTO rollup_1m SELECT " + mid +
             ", 0, 1, 1,1,1, 1,1,1, 1,1,1, 0,0,NULL,NULL, 0,0,NULL,NULL, 1, 1, 1, 1, 0");
    sql.exec("INSERT INTO rollup_1h SELECT " + mid +
             ", 0, 1, 1,1,1, 1,1,1, 1,1,1, 0,0,NULL,NULL, 0,0,NULL,NULL, 1, 1, 1, 1, 0");
  }
  ASSERT_TRUE(s->set_tariff("", R"({"price_per_kwh":0.2})", kT0).value());
  const std::string m_id = sql.value("SELECT id FROM smart_meter WHERE access_id = 'm'");

  EXPECT_EQ(s->delete_meter("m").value(), std::optional<std::size_t>(37));
  for (const char* table : {"meter_readings", "rollup_1m", "rollup_1h", "credential", "tariff",
                            "alert_rule", "alert_event"})
    EXPECT_EQ(
        sql.integer(std::string("SELECT count(*) FROM ") + table + " WHERE meter_id = " + m_id), 0)
        << table;
  EXPECT_EQ(sql.integer("SELECT count(*) FROM meter_readings"), 37);
  EXPECT_EQ(sql.integer("SELECT count(*) FROM rollup_1h"), 1);
  EXPECT_TRUE(s->tariff("n").value());
  EXPECT_TRUE(s->tariff("").value());
  EXPECT_FALSE(s->tariff("m").value());
  EXPECT_EQ(s->list_credentials().value().size(), 1u);
  EXPECT_EQ(s->all_alert_rules().value().size(), 1u);
  EXPECT_EQ(s->list_alerts({}).value().size(), 1u);
  // The same id again is a new meter with nothing of the old one.
  ASSERT_TRUE(s->create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  EXPECT_FALSE(s->tariff("m").value());
  EXPECT_FALSE(s->alert_rules("m").value());
}

// A statement that fails rolls its whole transaction back (the meter of a
// create_meter whose key cannot be stored is not kept, the generation does
// not move, nothing is notified) and leaves the pooled connection usable.
TEST_F(PgRegistry, AFailedTransactionIsRolledBackAndItsConnectionReused) {
  auto s = open_node(2);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->add_credential(token("dup", Scope::admin, kT0), kT0).value());
  const auto gen = s->registry_generation().value();
  Sql sql(url_);
  sql.exec("LISTEN meterhub_registry");
  for (int i = 0; i < 4; ++i) {  // more calls than pooled connections
    auto r = s->create_meter({"x", "", "", std::nullopt}, device_key("dup", "x", kT0), kT0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "store_unavailable");
    EXPECT_NE(r.error().message.find("credential"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(sql.integer("SELECT count(*) FROM smart_meter"), 0);
  EXPECT_EQ(s->registry_generation().value(), gen);
  EXPECT_EQ(s->list_credentials().value().size(), 1u);
  ASSERT_TRUE(s->create_meter({"x", "", "", std::nullopt}, device_key("k", "x", kT0), kT0).value());
  EXPECT_GT(s->registry_generation().value(), gen);
  // The first one: the refused calls sent none.
  EXPECT_EQ(next_notification(sql.conn(), std::chrono::seconds(5)),
            std::optional<std::string>("created x " + s->node_id()));
}

// A connection the server dropped fails the call with "store_unavailable";
// the next call opens a new one (the pool's and the writer's alike).
TEST_F(PgRegistry, ABrokenConnectionFailsOneCallAndIsReopened) {
  auto s = open_node(1);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  ASSERT_TRUE(s->create_meter({"n", "", "", std::nullopt}, std::nullopt, kT0).value());
  ASSERT_EQ(s->delete_meter("n").value(), std::optional<std::size_t>(0));  // opens the writer's
  Sql sql(url_);
  sql.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_ +
           "' AND pid <> pg_backend_pid()");
  auto gen = s->registry_generation();
  ASSERT_FALSE(gen);
  EXPECT_EQ(gen.error().code, "store_unavailable");
  auto del = s->delete_meter("m");
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().code, "store_unavailable");
  EXPECT_TRUE(s->registry_generation());
  EXPECT_EQ(s->delete_meter("m").value(), std::optional<std::size_t>(0));
  EXPECT_EQ(sql.integer("SELECT count(*) FROM smart_meter"), 0);
}

// The writer's registry check: ids that need quoting in an array literal,
// the order asked, duplicates kept.
TEST_F(PgRegistry, WriterMissingMetersTakesAnyIdText) {
  auto s = open_node();
  ASSERT_TRUE(s);
  const std::vector<std::string> present = {"a", "quote\"d", "back\\slash", "{brace,comma}"};
  for (const auto& id : present)
    ASSERT_TRUE(s->create_meter({id, "", "", std::nullopt}, std::nullopt, kT0).value()) << id;
  const std::vector<std::string> ask = {
      "z", "a", "quote\"d", "NULL", "back\\slash", "", "{brace,comma}", "z", "x y"};
  EXPECT_EQ(s->writer_missing_meters(ask).value(),
            (std::vector<std::string>{"z", "NULL", "", "z", "x y"}));
  EXPECT_TRUE(s->writer_missing_meters(present).value().empty());
  EXPECT_TRUE(s->writer_missing_meters({}).value().empty());
}

// list_alerts: filters, the `before` cursor and newest-first order as in
// SQLite; a limit beyond int64 means "all".
TEST_F(PgRegistry, ListAlertsFiltersAndPages) {
  auto s = open_node();
  ASSERT_TRUE(s);
  for (const char* id : {"m", "n"})
    ASSERT_TRUE(s->create_meter({id, "", "", std::nullopt}, std::nullopt, kT0).value());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) {
    AlertRecord a;
    a.meter_id = i % 2 ? "n" : "m";
    a.kind = "power_above";
    a.raised_at = kT0 + i;
    a.raised_value = 0.1 + i;  // not exact in binary: must round-trip
    a.message = "über \"limit\"";
    ids.push_back(s->raise_alert(a).value());
  }
  ASSERT_TRUE(s->clear_alert(ids[0], kT0 + 100, -1e-300, "ok").has_value());
  ASSERT_TRUE(s->clear_alert(ids[0], kT0 + 200, 5, "again").has_value());  // no longer active
  AlertRecord ghost;
  ghost.meter_id = "ghost";
  EXPECT_EQ(s->raise_alert(ghost).value(), 0);

  AlertQuery all;
  all.limit = std::numeric_limits<std::size_t>::max();
  auto got = s->list_alerts(all).value();
  ASSERT_EQ(got.size(), 6u);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].id, ids[5 - i]);
  EXPECT_EQ(got[5].cleared_at, kT0 + 100);
  EXPECT_EQ(got[5].cleared_value, -1e-300);
  EXPECT_EQ(got[5].clear_message, "ok");
  EXPECT_EQ(got[0].raised_value, 0.1 + 5);
  EXPECT_EQ(got[0].message, "über \"limit\"");
  EXPECT_FALSE(got[0].cleared_at);
  EXPECT_FALSE(got[0].cleared_value);

  AlertQuery q;
  q.meter_id = "m";
  q.active = true;
  got = s->list_alerts(q).value();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, ids[4]);
  EXPECT_EQ(got[1].id, ids[2]);
  q.active = false;
  got = s->list_alerts(q).value();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, ids[0]);

  AlertQuery page;
  page.limit = 2;
  got = s->list_alerts(page).value();
  ASSERT_EQ(got.size(), 2u);
  page.before = got.back().id;
  got = s->list_alerts(page).value();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, ids[3]);
  EXPECT_EQ(got[1].id, ids[2]);
}

}  // namespace
}  // namespace meterhub::store
