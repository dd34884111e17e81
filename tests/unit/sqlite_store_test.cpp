// What only the SQLite store does: its file and directory, background WAL
// checkpoints, refusing unusable or newer files. What every store promises
// is the store contract (store_contract_test.cpp).
#include "store/sqlite/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <thread>

#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::open_store;
using meterhub::testing::reading;
using meterhub::testing::TempDir;

RangeQuery all_of(std::string meter) {
  RangeQuery q;
  q.meter_id = std::move(meter);
  q.from = std::numeric_limits<core::TimeMs>::min();
  q.to = std::numeric_limits<core::TimeMs>::max();
  q.limit = 1000000;
  return q;
}

TEST(SqliteStore, CreatesDirectoryAndSchema) {
  TempDir dir;
  auto s = open_store(dir.file("a/b/m.db"));
  ASSERT_TRUE(s);
  auto meters = s->list_meters();
  ASSERT_TRUE(meters);
  EXPECT_TRUE(meters->empty());
}

TEST(SqliteStore, CheckpointsRunBesideTheWriterAndKeepTheWalBounded) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  // Back-to-back groups of 1000 readings over 200 meters write ~1 MiB of WAL
  // each: ~110 MiB in all, well past the 64 MiB inline-checkpoint bound.
  constexpr int kBatches = 120;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<core::Reading> batch;
    for (int i = 0; i < 1000; ++i)
      batch.push_back(reading("m" + std::to_string(i % 200), kT0 + b * 1000 + i));
    ASSERT_TRUE(s->write(batch, kT0));
  }
  for (int i = 0; i < 100 && s->checkpoint_pages() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GT(s->checkpoint_runs(), 0u);
  // Not just called: pages were copied back (a checkpoint on a connection
  // that never read the file silently does nothing).
  EXPECT_GT(s->checkpoint_pages(), 0u);
  std::size_t total = 0;
  for (int m = 0; m < 200; ++m) total += s->read_range(all_of("m" + std::to_string(m)))->size();
  EXPECT_EQ(total, std::size_t{kBatches} * 1000);
  // A writer that never pauses starves passive checkpoints; the inline
  // fallback at 64 MiB (and journal_size_limit) still bounds the file.
  auto wal = std::filesystem::file_size(dir.file("m.db-wal"));
  EXPECT_LT(wal, 80u << 20) << wal;
}

TEST(SqliteStore, OpenFailsClearlyWhenThePathIsUnusable) {
  TempDir dir;
  std::ofstream(dir.file("file")) << "x";
  auto s = SqliteStore::open({dir.file("file/sub/m.db")});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, "store_unavailable");
  EXPECT_NE(s.error().message.find("file/sub"), std::string::npos) << s.error().message;

  std::ofstream(dir.file("junk.db")) << std::string(8192, 'j');
  auto junk = SqliteStore::open({dir.file("junk.db")});
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().message.find("junk.db"), std::string::npos) << junk.error().message;
}

TEST(SqliteStore, RefusesANewerSchema) {
  TempDir dir;
  { open_store(dir.file("m.db")); }
  {
    auto s = open_store(dir.file("m.db"));  // still fine when reopened at the same version
    ASSERT_TRUE(s);
  }
  // Simulate a database written by a future meterhub.
  { auto s = open_store(dir.file("m.db")); }
  std::string cmd = "sqlite3 '" + dir.file("m.db") + "' 'INSERT INTO schema_version VALUES(99)'";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "sqlite3 CLI not available";
  auto s = SqliteStore::open({dir.file("m.db")});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("newer"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace meterhub::store
