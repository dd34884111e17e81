// The device registry of the SQLite store (store/store.hpp, "Device
// registry", "Credentials"): meters created, changed and deleted by an
// admin, device keys and API tokens as stored, the registry generation that
// tells every process sharing the file when to reload, and migration 3.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "query/series.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;
using meterhub::testing::all_raw;
using meterhub::testing::expect_same;
using meterhub::testing::open_store;
using meterhub::testing::TempDir;

constexpr core::TimeMs kMin = 60'000, kHour = 3'600'000;
constexpr core::TimeMs kLo = std::numeric_limits<core::TimeMs>::min();
constexpr core::TimeMs kHi = std::numeric_limits<core::TimeMs>::max();

// A credential with the given id (the store does not care how it was made).
Credential device_key(std::string id, std::string meter, core::TimeMs at) {
  Credential c;
  c.id = std::move(id);
  c.kind = CredentialKind::device;
  c.meter_id = std::move(meter);
  c.salt = std::string(16, 's');
  c.hash = std::string(32, 'h');
  c.created_at = at;
  return c;
}

Credential token(std::string id, std::string name, Scope scope, core::TimeMs at) {
  Credential c;
  c.id = std::move(id);
  c.kind = CredentialKind::token;
  c.name = std::move(name);
  c.scope = scope;
  c.salt = std::string(16, 't');
  c.hash = std::string(32, 'u');
  c.created_at = at;
  return c;
}

const Credential* find_credential(const std::vector<Credential>& cs, const std::string& id) {
  for (const auto& c : cs)
    if (c.id == id) return &c;
  return nullptr;
}

// One integer from a SQL query on the file, through a connection of its own.
std::int64_t query_int(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

void exec_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// `n` readings of `meter` every `every` ms from `from`, the counter rising
// from `energy` by `step` kWh per reading.
std::vector<core::Reading> series(const std::string& meter, core::TimeMs from, core::TimeMs every,
                                  int n, double energy, double step, double power) {
  std::vector<core::Reading> rs;
  for (int i = 0; i < n; ++i) {
    core::Reading r = reading(meter, from + i * every, power + i % 7);
    r.energy = energy + i * step;
    if (i % 3 == 0) r.frequency = 50.0 + (i % 5) * 0.01;
    rs.push_back(r);
  }
  return rs;
}

// ---------------------------------------------------------------------------

TEST(Registry, CreateMeterStoresItsDetailsAndKey) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  const Credential key = device_key("0123456789ab", "kitchen", kT0);
  ASSERT_TRUE(s->create_meter({"kitchen", "Kitchen", "ground floor", 10}, key, kT0).value());
  auto m = s->find_meter("kitchen").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->meter_id, "kitchen");
  EXPECT_EQ(m->name, "Kitchen");
  EXPECT_EQ(m->location, "ground floor");
  EXPECT_EQ(m->interval_s, 10);
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_FALSE(m->last_seen);
  EXPECT_FALSE(m->latest);
  auto creds = s->list_credentials().value();
  ASSERT_EQ(creds.size(), 1u);
  EXPECT_EQ(creds[0].id, "0123456789ab");
  EXPECT_EQ(creds[0].kind, CredentialKind::device);
  EXPECT_EQ(creds[0].meter_id, "kitchen");
  EXPECT_FALSE(creds[0].revoked_at);

  // Without a key, and with the optional fields absent.
  ASSERT_TRUE(s->create_meter({"bare", "", "", std::nullopt}, std::nullopt, kT0 + 1).value());
  auto bare = s->find_meter("bare").value();
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->name, "");
  EXPECT_EQ(bare->location, "");
  EXPECT_FALSE(bare->interval_s);
  EXPECT_EQ(s->list_credentials().value().size(), 1u);
  auto list = s->list_meters().value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].meter_id, "bare");
  EXPECT_EQ(list[1].meter_id, "kitchen");
  EXPECT_EQ(list[1].location, "ground floor");
  EXPECT_EQ(list[1].interval_s, 10);

  // A registered meter is not created again by its first reading.
  const core::Reading r = reading("kitchen", kT0 + 5'000);
  auto w = s->write({&r, 1}, kT0 + 6'000);
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->new_meters.empty());
  m = s->find_meter("kitchen").value();
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_EQ(m->last_seen, kT0 + 6'000);
  EXPECT_EQ(m->name, "Kitchen");
}

TEST(Registry, CreateMeterIsFalseForAnExistingIdAndStoresNothing) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->create_meter({"kitchen", "Kitchen", "", 10}, std::nullopt, kT0).value());
  const core::Reading r = reading("auto", kT0);
  ASSERT_TRUE(s->write({&r, 1}, kT0));  // created by its first reading
  const auto before = s->registry_generation().value();
  for (const char* id : {"kitchen", "auto"}) {
    auto again = s->create_meter({id, "Other", "elsewhere", 99},
                                 device_key(std::string("dup-") + id, id, kT0 + 1), kT0 + 1);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_FALSE(*again) << id;
  }
  EXPECT_TRUE(s->list_credentials().value().empty());  // the key went with the refusal
  auto m = s->find_meter("kitchen").value();
  EXPECT_EQ(m->name, "Kitchen");
  EXPECT_EQ(m->location, "");
  EXPECT_EQ(m->interval_s, 10);
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_EQ(s->find_meter("auto").value()->name, "");
  EXPECT_EQ(s->registry_generation().value(), before);
  EXPECT_EQ(all_raw(*s, "auto").size(), 1u);
}

TEST(Registry, UpdateMeterChangesOnlyTheGivenFields) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->create_meter({"m", "Name", "Place", 60}, std::nullopt, kT0).value());
  const core::Reading r = reading("m", kT0 + 1'000);
  ASSERT_TRUE(s->write({&r, 1}, kT0 + 2'000));
  auto get = [&] { return s->find_meter("m").value().value(); };

  MeterPatch name;
  name.name = "New name";
  ASSERT_TRUE(s->update_meter("m", name).value());
  EXPECT_EQ(get().name, "New name");
  EXPECT_EQ(get().location, "Place");
  EXPECT_EQ(get().interval_s, 60);

  MeterPatch location;
  location.location = "Cellar";
  ASSERT_TRUE(s->update_meter("m", location).value());
  EXPECT_EQ(get().name, "New name");
  EXPECT_EQ(get().location, "Cellar");
  EXPECT_EQ(get().interval_s, 60);

  MeterPatch interval;
  interval.interval_s = std::optional<std::int64_t>(86'400);
  ASSERT_TRUE(s->update_meter("m", interval).value());
  EXPECT_EQ(get().interval_s, 86'400);
  EXPECT_EQ(get().location, "Cellar");

  MeterPatch clear;
  clear.interval_s = std::optional<std::int64_t>();  // set to null
  ASSERT_TRUE(s->update_meter("m", clear).value());
  EXPECT_FALSE(get().interval_s);
  EXPECT_EQ(get().name, "New name");

  MeterPatch all;
  all.name = "";
  all.location = "";
  all.interval_s = std::optional<std::int64_t>(5);
  ASSERT_TRUE(s->update_meter("m", all).value());
  EXPECT_EQ(get().name, "");
  EXPECT_EQ(get().location, "");
  EXPECT_EQ(get().interval_s, 5);

  // Nothing else of the meter changes.
  const MeterInfo m = get();
  EXPECT_EQ(m.created_at, kT0);
  EXPECT_EQ(m.last_seen, kT0 + 2'000);
  ASSERT_TRUE(m.latest);
  EXPECT_EQ(m.latest->ts, kT0 + 1'000);

  // A meter created by its first reading can be named too; an unknown one not.
  const core::Reading a = reading("auto", kT0);
  ASSERT_TRUE(s->write({&a, 1}, kT0));
  ASSERT_TRUE(s->update_meter("auto", name).value());
  EXPECT_EQ(s->find_meter("auto").value()->name, "New name");
  auto unknown = s->update_meter("nope", name);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  EXPECT_FALSE(s->find_meter("nope").value());
}

TEST(Registry, DeleteMeterRemovesEverythingOfItAndNothingElse) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  for (const char* id : {"m", "n"}) {
    ASSERT_TRUE(
        s->create_meter({id, "x", "y", 10}, device_key(std::string("key-") + id, id, kT0), kT0)
            .value());
    const auto rs = series(id, kT0, 30'000, 240, 100, 0.01, 500);  // two hours
    ASSERT_TRUE(s->write(rs, kT0));
    ASSERT_TRUE(
        s->set_tariff(id, R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0).value());
  }
  ASSERT_TRUE(
      s->set_tariff("", R"({"currency":"EUR","price_per_kwh":0.2,"windows":[]})", kT0).value());
  ASSERT_TRUE(s->add_credential(token("tok", "grafana", Scope::read, kT0), kT0).value());
  const auto n_minutes = s->read_rollup("n", Rollup::minute, kLo, kHi).value();
  const auto n_hours = s->read_rollup("n", Rollup::hour, kLo, kHi).value();
  ASSERT_FALSE(n_minutes.empty());

  auto deleted = s->delete_meter("m");
  ASSERT_TRUE(deleted) << deleted.error().message;
  ASSERT_TRUE(*deleted);
  EXPECT_EQ(**deleted, 240u);

  EXPECT_FALSE(s->find_meter("m").value());
  EXPECT_TRUE(all_raw(*s, "m").empty());
  EXPECT_TRUE(s->read_rollup("m", Rollup::minute, kLo, kHi).value().empty());
  EXPECT_TRUE(s->read_rollup("m", Rollup::hour, kLo, kHi).value().empty());
  EXPECT_TRUE(s->read_kwh("m", Rollup::hour, kLo, kHi).value().empty());
  EXPECT_FALSE(s->tariff("m").value());
  const auto totals = s->kwh_totals(Rollup::hour, kLo, kHi).value();
  EXPECT_EQ(totals.size(), 1u);
  for (const auto& [meter, kwh] : totals) EXPECT_EQ(meter, "n");
  const auto latest = s->latest_per_meter().value();
  EXPECT_EQ(latest.size(), 1u);
  for (const auto& r : latest) EXPECT_EQ(r.meter_id, "n");
  auto creds = s->list_credentials().value();
  EXPECT_FALSE(find_credential(creds, "key-m"));
  ASSERT_TRUE(find_credential(creds, "key-n"));
  EXPECT_FALSE(find_credential(creds, "key-n")->revoked_at);
  EXPECT_TRUE(find_credential(creds, "tok"));
  // The database holds no row of it anywhere (no orphans under another name).
  const std::string path = dir.file("m.db");
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM meter_readings WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0);
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM rollup_1m WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0);
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM rollup_1h WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0);
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM credential WHERE meter_id IS NOT NULL AND "
                      "meter_id NOT IN (SELECT id FROM smart_meter)"),
            0);
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM tariff WHERE meter_id <> 0 AND "
                      "meter_id NOT IN (SELECT id FROM smart_meter)"),
            0);

  // The other meter and the server tariff are untouched.
  EXPECT_EQ(all_raw(*s, "n").size(), 240u);
  expect_same(s->read_rollup("n", Rollup::minute, kLo, kHi).value(), n_minutes, "n 1m");
  expect_same(s->read_rollup("n", Rollup::hour, kLo, kHi).value(), n_hours, "n 1h");
  EXPECT_TRUE(s->tariff("n").value());
  EXPECT_TRUE(s->tariff("").value());
  EXPECT_EQ(s->find_meter("n").value()->name, "x");

  // Gone: a second delete finds nothing.
  auto again = s->delete_meter("m");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto never = s->delete_meter("never");
  ASSERT_TRUE(never);
  EXPECT_FALSE(*never);
}

// After a delete, the same id written again is a new meter: its rollups hold
// only the new readings, even where they share minutes and hours with the
// deleted ones (and the writer's caches of the old meter are forgotten).
TEST(Registry, AMeterWrittenAfterItsDeletionStartsFresh) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  // Old data: two hours every 30 s, a counter near 100 kWh; and a later
  // reading, past the new ones.
  auto old = series("m", kT0, 30'000, 240, 100, 0.01, 800);
  old.push_back(reading("m", kT0 + 3 * kHour));
  old.back().energy = 103;
  ASSERT_TRUE(s->write(old, kT0));
  ASSERT_TRUE(
      s->set_tariff("m", R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0).value());
  ASSERT_EQ(s->delete_meter("m").value(), std::optional<std::size_t>(241));

  // New data, interleaved with the old times, a counter from 5 kWh, in
  // several batches (in order, one late one).
  const auto fresh = series("m", kT0 + 10'000, 45'000, 120, 5, 0.02, 300);
  const core::TimeMs again_at = kT0 + 10 * kHour;
  std::vector<core::Reading> first(fresh.begin(), fresh.begin() + 50);
  auto w = s->write(first, again_at);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->new_meters, std::vector<std::string>{"m"});
  EXPECT_EQ(std::count(w->inserted.begin(), w->inserted.end(), 1), 50);
  for (std::size_t i = 50; i < fresh.size(); i += 7) {
    std::vector<core::Reading> part(
        fresh.begin() + static_cast<std::ptrdiff_t>(i),
        fresh.begin() + static_cast<std::ptrdiff_t>(std::min(i + 7, fresh.size())));
    if (i == 64) std::reverse(part.begin(), part.end());
    auto wi = s->write(part, again_at);
    ASSERT_TRUE(wi);
    EXPECT_TRUE(wi->new_meters.empty());
  }

  auto m = s->find_meter("m").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->created_at, again_at);
  EXPECT_EQ(m->name, "");
  EXPECT_FALSE(m->interval_s);
  ASSERT_TRUE(m->latest);
  EXPECT_EQ(m->latest->ts, fresh.back().ts);
  EXPECT_FALSE(s->tariff("m").value());
  const auto raw = all_raw(*s, "m");
  ASSERT_EQ(raw.size(), fresh.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    EXPECT_EQ(raw[i].ts, fresh[i].ts);
    EXPECT_EQ(raw[i].energy, fresh[i].energy);
  }
  // The rollups against a computation from the new readings alone.
  expect_same(s->read_rollup("m", Rollup::minute, kLo, kHi).value(),
              query::bucketize(fresh, {}, std::nullopt, kMin, {}), "1m");
  expect_same(s->read_rollup("m", Rollup::hour, kLo, kHi).value(),
              query::bucketize(fresh, {}, std::nullopt, kHour, {}), "1h");
  double total = 0;
  const auto hourly = s->read_kwh("m", Rollup::hour, kLo, kHi).value();
  for (const auto& [start, kwh] : hourly) total += kwh;
  EXPECT_NEAR(total, fresh.back().energy - fresh.front().energy, 1e-9);
}

// Another process (a second node on the same file, docs/api.md: "Changes made
// with the CLI, or by another node on the same database, take effect within
// one second") deletes a meter that this process's writer has written to.
// This process's next readings of that id must not vanish: they go to the
// meter registered again under that id, or create it afresh.
TEST(Registry, AMeterDeletedAndRegisteredAgainByAnotherProcessGetsThisProcesssReadings) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  auto a = open_store(path);
  auto b = open_store(path);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->write(series("m", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_TRUE(a->write(series("n", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_EQ(b->delete_meter("m").value(), std::optional<std::size_t>(10));
  ASSERT_TRUE(
      b->create_meter({"m", "again", "", std::nullopt}, device_key("k", "m", kT0), kT0).value());
  const auto fresh = series("m", kT0 + kHour, 30'000, 5, 5, 0.01, 300);
  auto w = a->write(fresh, kT0 + kHour);
  ASSERT_TRUE(w);
  EXPECT_EQ(std::count(w->inserted.begin(), w->inserted.end(), 1), 5);
  EXPECT_EQ(all_raw(*a, "m").size(), fresh.size()) << "readings written but not in meter \"m\"";
  auto m = a->find_meter("m").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name, "again");
  EXPECT_TRUE(m->latest) << "meter \"m\" has no latest reading after 5 were written";
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM meter_readings WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0)
      << "readings stored under a deleted meter's row id";
}

TEST(Registry, AMeterDeletedByAnotherProcessIsCreatedAfreshByTheNextWrite) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  auto a = open_store(path);
  auto b = open_store(path);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->write(series("m", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_EQ(b->delete_meter("m").value(), std::optional<std::size_t>(10));
  const auto fresh = series("m", kT0 + kHour, 30'000, 5, 5, 0.01, 300);
  auto w = a->write(fresh, kT0 + kHour);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->new_meters, std::vector<std::string>{"m"});
  EXPECT_TRUE(a->find_meter("m").value()) << "the readings were written, but no meter \"m\" exists";
  EXPECT_EQ(all_raw(*a, "m").size(), fresh.size());
  EXPECT_EQ(query_int(path,
                      "SELECT count(*) FROM meter_readings WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0)
      << "readings stored under a deleted meter's row id";
}

TEST(Registry, AddingADeviceKeyRevokesTheMetersPreviousOne) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(
      s->create_meter({"m", "", "", std::nullopt}, device_key("k1", "m", kT0), kT0).value());
  ASSERT_TRUE(
      s->create_meter({"n", "", "", std::nullopt}, device_key("n1", "n", kT0), kT0).value());
  ASSERT_TRUE(s->add_credential(token("t1", "a", Scope::admin, kT0), kT0).value());

  ASSERT_TRUE(s->add_credential(device_key("k2", "m", kT0 + 10), kT0 + 10).value());
  auto cs = s->list_credentials().value();
  ASSERT_TRUE(find_credential(cs, "k1") && find_credential(cs, "k2"));
  EXPECT_EQ(find_credential(cs, "k1")->revoked_at, kT0 + 10);
  EXPECT_FALSE(find_credential(cs, "k2")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "n1")->revoked_at);  // another meter's key
  EXPECT_FALSE(find_credential(cs, "t1")->revoked_at);  // tokens

  ASSERT_TRUE(s->add_credential(device_key("k3", "m", kT0 + 20), kT0 + 20).value());
  cs = s->list_credentials().value();
  EXPECT_EQ(find_credential(cs, "k1")->revoked_at, kT0 + 10);  // not revoked again
  EXPECT_EQ(find_credential(cs, "k2")->revoked_at, kT0 + 20);
  EXPECT_FALSE(find_credential(cs, "k3")->revoked_at);
  int active = 0;
  for (const auto& c : cs)
    active += c.kind == CredentialKind::device && c.meter_id == "m" && !c.revoked_at;
  EXPECT_EQ(active, 1);

  // Tokens never revoke each other.
  ASSERT_TRUE(s->add_credential(token("t2", "b", Scope::admin, kT0 + 30), kT0 + 30).value());
  cs = s->list_credentials().value();
  EXPECT_FALSE(find_credential(cs, "t1")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "k3")->revoked_at);

  // A device key of a meter that does not exist is refused and not stored.
  const auto gen = s->registry_generation().value();
  auto ghost = s->add_credential(device_key("g1", "ghost", kT0 + 40), kT0 + 40);
  ASSERT_TRUE(ghost);
  EXPECT_FALSE(*ghost);
  EXPECT_FALSE(find_credential(s->list_credentials().value(), "g1"));
  EXPECT_FALSE(s->find_meter("ghost").value());
  EXPECT_EQ(s->registry_generation().value(), gen);
}

TEST(Registry, RevokeCredential) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->add_credential(token("t1", "a", Scope::read, kT0), kT0).value());
  ASSERT_TRUE(s->add_credential(token("t2", "b", Scope::read, kT0), kT0).value());
  EXPECT_EQ(s->revoke_credential("t1", kT0 + 5).value(), store::Store::Revoke::revoked);
  auto cs = s->list_credentials().value();
  EXPECT_EQ(find_credential(cs, "t1")->revoked_at, kT0 + 5);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  // Already revoked, or unknown: false, and nothing changes.
  const auto gen = s->registry_generation().value();
  EXPECT_EQ(s->revoke_credential("t1", kT0 + 9).value(), store::Store::Revoke::unknown);
  EXPECT_EQ(s->revoke_credential("nope", kT0 + 9).value(), store::Store::Revoke::unknown);
  EXPECT_EQ(s->revoke_credential("", kT0 + 9).value(), store::Store::Revoke::unknown);
  cs = s->list_credentials().value();
  EXPECT_EQ(find_credential(cs, "t1")->revoked_at, kT0 + 5);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  EXPECT_EQ(s->registry_generation().value(), gen);
}

TEST(Registry, ListCredentialsRoundTripsEveryByte) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  auto s = open_store(path);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  Credential tok = token("aaaaaaaaaaaa", "Grafana — Küche \"quoted\"", Scope::admin, kT0 + 1);
  tok.salt = std::string("\0\x01\xff\0salt\x80\x7f\0\0\xfe\x10\0", 16);
  std::string hash;
  for (int i = 0; i < 32; ++i) hash.push_back(static_cast<char>(i % 3 == 0 ? 0 : 255 - i * 7));
  tok.hash = hash;
  Credential dev = device_key("bbbbbbbbbbbb", "m", kT0 + 2);
  dev.salt = std::string(16, '\0');  // all zero bytes
  dev.hash = std::string(31, '\0') + "\x01";
  Credential rd = token("cccccccccccc", "", Scope::read, kT0 + 3);
  ASSERT_TRUE(s->add_credential(tok, kT0).value());
  ASSERT_TRUE(s->add_credential(dev, kT0).value());
  ASSERT_TRUE(s->add_credential(rd, kT0).value());

  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "same store" : "reopened");
    if (pass == 1) {
      s.reset();
      s = open_store(path);
      ASSERT_TRUE(s);
    }
    const auto cs = s->list_credentials().value();
    ASSERT_EQ(cs.size(), 3u);
    // Oldest first.
    EXPECT_EQ(cs[0].id, tok.id);
    EXPECT_EQ(cs[1].id, dev.id);
    EXPECT_EQ(cs[2].id, rd.id);
    for (const Credential* want : {&tok, &dev, &rd}) {
      const Credential* got = find_credential(cs, want->id);
      ASSERT_TRUE(got) << want->id;
      SCOPED_TRACE(want->id);
      EXPECT_EQ(got->kind, want->kind);
      EXPECT_EQ(got->meter_id, want->meter_id);
      EXPECT_EQ(got->name, want->name);
      EXPECT_EQ(got->scope, want->scope);
      EXPECT_EQ(got->salt.size(), want->salt.size());
      EXPECT_EQ(got->salt, want->salt);
      EXPECT_EQ(got->hash.size(), want->hash.size());
      EXPECT_EQ(got->hash, want->hash);
      EXPECT_EQ(got->created_at, want->created_at);
      EXPECT_FALSE(got->revoked_at);
    }
  }
}

TEST(Registry, GenerationMovesOnEveryChangeFromAnyProcess) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  auto a = open_store(path);
  auto b = open_store(path);  // another process on the same file
  ASSERT_TRUE(a && b);
  std::int64_t last = a->registry_generation().value();
  EXPECT_EQ(b->registry_generation().value(), last);
  // Every change, made by either store, is seen by both.
  auto moved = [&](const char* what) {
    const std::int64_t ga = a->registry_generation().value();
    const std::int64_t gb = b->registry_generation().value();
    EXPECT_GT(ga, last) << what;
    EXPECT_EQ(ga, gb) << what;
    last = ga;
  };
  MeterPatch p;
  p.name = "n";
  for (int round = 0; round < 2; ++round) {
    Store& s = round == 0 ? static_cast<Store&>(*a) : static_cast<Store&>(*b);
    const std::string r = std::to_string(round);
    SCOPED_TRACE(round == 0 ? "this process" : "another process");
    ASSERT_TRUE(s.create_meter({"m" + r, "", "", std::nullopt}, std::nullopt, kT0).value());
    moved("create_meter");
    ASSERT_TRUE(
        s.create_meter({"k" + r, "", "", std::nullopt}, device_key("d" + r, "k" + r, kT0), kT0)
            .value());
    moved("create_meter with a key");
    ASSERT_TRUE(s.update_meter("m" + r, p).value());
    moved("update_meter");
    ASSERT_TRUE(s.add_credential(device_key("e" + r, "m" + r, kT0), kT0).value());
    moved("add_credential (device)");
    ASSERT_TRUE(s.add_credential(device_key("f" + r, "m" + r, kT0), kT0).value());
    moved("add_credential (rotation)");
    ASSERT_TRUE(s.add_credential(token("t" + r, "x", Scope::read, kT0), kT0).value());
    moved("add_credential (token)");
    ASSERT_EQ(s.revoke_credential("t" + r, kT0).value(), store::Store::Revoke::revoked);
    moved("revoke_credential");
    ASSERT_TRUE(s.delete_meter("m" + r).value());
    moved("delete_meter");
  }
}

TEST(Registry, MigratesAVersion2Database) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  {
    auto s = open_store(path);
    ASSERT_TRUE(s);
    const auto rs = series("old", kT0, 60'000, 90, 10, 0.05, 400);
    ASSERT_TRUE(s->write(rs, kT0 + 1));
    ASSERT_TRUE(s->set_tariff("old", R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0)
                    .value());
  }
  // Back to schema 2, as a database written by the meterhub before the registry.
  exec_sql(path,
           "DROP TABLE alert_rule; DROP TABLE alert_event; "  // version 4 (alerts)
           "DROP TABLE credential; DROP TABLE registry_state; "
           "ALTER TABLE smart_meter DROP COLUMN location; "
           "ALTER TABLE smart_meter DROP COLUMN interval_s; "
           "DELETE FROM schema_version WHERE version > 2;");
  ASSERT_EQ(query_int(path, "SELECT max(version) FROM schema_version"), 2);

  auto s = open_store(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(query_int(path, "SELECT max(version) FROM schema_version"), 4);  // 3, then alerts
  // Old data kept; the new columns have their defaults.
  auto m = s->find_meter("old").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->created_at, kT0 + 1);
  EXPECT_EQ(m->location, "");
  EXPECT_FALSE(m->interval_s);
  EXPECT_EQ(all_raw(*s, "old").size(), 90u);
  EXPECT_FALSE(s->read_rollup("old", Rollup::hour, kLo, kHi).value().empty());
  EXPECT_TRUE(s->tariff("old").value());
  // The registry works.
  EXPECT_TRUE(s->list_credentials().value().empty());
  const auto gen = s->registry_generation().value();
  MeterPatch p;
  p.location = "garage";
  p.interval_s = std::optional<std::int64_t>(60);
  ASSERT_TRUE(s->update_meter("old", p).value());
  ASSERT_TRUE(s->add_credential(device_key("k", "old", kT0), kT0).value());
  EXPECT_GT(s->registry_generation().value(), gen);
  EXPECT_EQ(s->find_meter("old").value()->location, "garage");
  EXPECT_EQ(s->find_meter("old").value()->interval_s, 60);
  EXPECT_EQ(s->list_credentials().value().size(), 1u);
}

TEST(Registry, ReopeningKeepsTheRegistryAndSchemaVersion3) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  std::int64_t gen = 0;
  {
    auto s = open_store(path);
    ASSERT_TRUE(s);
    ASSERT_TRUE(
        s->create_meter({"m", "Name", "Place", 30}, device_key("k", "m", kT0), kT0).value());
    ASSERT_TRUE(s->add_credential(token("t", "admin", Scope::admin, kT0), kT0).value());
    const core::Reading r = reading("m", kT0 + 1'000);
    ASSERT_TRUE(s->write({&r, 1}, kT0 + 1'000));
    gen = s->registry_generation().value();
  }
  for (int i = 0; i < 2; ++i) {
    auto s = open_store(path);
    ASSERT_TRUE(s);
    EXPECT_EQ(query_int(path, "SELECT max(version) FROM schema_version"), 4);  // 4: alerts
    EXPECT_EQ(query_int(path, "SELECT count(*) FROM schema_version"), 4);  // each step once
    auto m = s->find_meter("m").value();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->name, "Name");
    EXPECT_EQ(m->location, "Place");
    EXPECT_EQ(m->interval_s, 30);
    EXPECT_EQ(all_raw(*s, "m").size(), 1u);
    EXPECT_EQ(s->list_credentials().value().size(), 2u);
    EXPECT_EQ(s->registry_generation().value(), gen);  // reopening is no change
  }
}

}  // namespace
}  // namespace meterhub::store
