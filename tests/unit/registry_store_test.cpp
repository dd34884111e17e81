// The device registry in SQLite files written by older meterhubs: migration
// 3 (and 4, alerts) keeps their data, and reopening migrates nothing twice.
// What the registry promises on every backend (meters created, changed and
// deleted, device keys and tokens, the registry generation) is part of the
// store contract (store_contract_test.cpp).
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

using meterhub::testing::device_key;
using meterhub::testing::token;

using meterhub::testing::all_raw;
using meterhub::testing::expect_same;
using meterhub::testing::kT0;
using meterhub::testing::open_store;
using meterhub::testing::reading;
using meterhub::testing::TempDir;

constexpr core::TimeMs kLo = std::numeric_limits<core::TimeMs>::min();
constexpr core::TimeMs kHi = std::numeric_limits<core::TimeMs>::max();

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
    EXPECT_EQ(query_int(path, "SELECT count(*) FROM schema_version"), 4);      // each step once
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
