// The SQLite migration that creates the rollup tables fills them from the
// readings already stored. How rollups are maintained write by write, and
// retention, are part of the store contract (store_contract_test.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <random>

#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::expect_rollups_match_raw;
using meterhub::testing::kT0;
using meterhub::testing::messy_series;
using meterhub::testing::open_store;
using meterhub::testing::TempDir;

TEST(Rollups, MigrationFillsRollupsFromExistingReadings) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  std::mt19937 rng(9);
  {
    auto s = open_store(path);
    auto rs = messy_series(rng, "m");
    ASSERT_TRUE(s->write(rs, kT0));
  }
  // Back to schema 1, as a database written by an older meterhub.
  const std::string cmd = "sqlite3 '" + path +
                          "' 'DROP TABLE rollup_1m; DROP TABLE rollup_1h; DROP TABLE tariff; "
                          "ALTER TABLE smart_meter DROP COLUMN raw_floor; "
                          "DROP TABLE credential; DROP TABLE registry_state; "
                          "ALTER TABLE smart_meter DROP COLUMN location; "
                          "ALTER TABLE smart_meter DROP COLUMN interval_s; "
                          "DROP TABLE alert_rule; DROP TABLE alert_event; "
                          "DELETE FROM schema_version WHERE version > 1;'";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "sqlite3 CLI not available";
  auto s = open_store(path);
  ASSERT_TRUE(s);
  EXPECT_FALSE(
      s->read_rollup("m", Rollup::hour, 0, std::numeric_limits<core::TimeMs>::max())->empty());
  expect_rollups_match_raw(*s, "m");
}

}  // namespace
}  // namespace meterhub::store
