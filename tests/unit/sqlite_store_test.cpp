#include "store/sqlite/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <thread>

#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;
using meterhub::testing::open_store;
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

TEST(SqliteStore, WritesAreIdempotentPerMeterAndTs) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  std::vector<core::Reading> batch = {reading("m1", kT0), reading("m1", kT0 + 1),
                                      reading("m1", kT0),  // duplicate inside the batch
                                      reading("m2", kT0)};
  auto w = s->write(batch, kT0 + 100);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->inserted, (std::vector<unsigned char>{1, 1, 0, 1}));
  EXPECT_EQ(w->new_meters, (std::vector<std::string>{"m1", "m2"}));
  auto again = s->write(batch, kT0 + 200);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->inserted, (std::vector<unsigned char>{0, 0, 0, 0}));
  EXPECT_TRUE(again->new_meters.empty());
  EXPECT_EQ(s->read_range(all_of("m1"))->size(), 2u);
}

TEST(SqliteStore, DuplicateDoesNotOverwriteTheStoredValue) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s->write(std::vector{reading("m", kT0, 100)}, kT0));
  ASSERT_TRUE(s->write(std::vector{reading("m", kT0, 999)}, kT0));
  EXPECT_EQ(s->read_range(all_of("m"))->at(0).power, 100);
}

TEST(SqliteStore, ValuesRoundTripExactly) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  core::Reading r = reading("m", kT0 + 7, 0.1 + 0.2);
  r.voltage = 229.99999999999997;
  r.frequency = 49.98;
  r.power_factor = 0.5;
  ASSERT_TRUE(s->write(std::vector{r}, kT0));
  auto back = s->read_range(all_of("m"));
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(back->at(0), r);
}

TEST(SqliteStore, RangesArePagedInTsOrder) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  std::vector<core::Reading> batch;
  for (int i = 9; i >= 0; --i) batch.push_back(reading("m", kT0 + i * 1000));  // arrive reversed
  ASSERT_TRUE(s->write(batch, kT0));
  RangeQuery q = all_of("m");
  q.from = kT0 + 2000;
  q.to = kT0 + 6000;
  q.limit = 3;
  auto page = s->read_range(q);
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ(page->at(0).ts, kT0 + 2000);
  EXPECT_EQ(page->at(2).ts, kT0 + 4000);
  q.descending = true;
  auto desc = s->read_range(q);
  EXPECT_EQ(desc->at(0).ts, kT0 + 5000);  // `to` is exclusive
  EXPECT_TRUE(s->read_range(all_of("nope"))->empty());
}

TEST(SqliteStore, LatestIsTheNewestTsNotTheLastWritten) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  ASSERT_TRUE(s->write(std::vector{reading("m", kT0 + 50)}, kT0 + 1));
  ASSERT_TRUE(s->write(std::vector{reading("m", kT0 + 10)}, kT0 + 2));  // late
  auto m = s->find_meter("m");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->latest->ts, kT0 + 50);
  EXPECT_EQ(*(*m)->last_seen, kT0 + 2);
  EXPECT_EQ((*m)->created_at, kT0 + 1);
  auto all = s->latest_per_meter();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->at(0).ts, kT0 + 50);
  EXPECT_FALSE(*s->find_meter("unknown"));
}

TEST(SqliteStore, SurvivesReopen) {
  TempDir dir;
  {
    auto s = open_store(dir.file("m.db"));
    ASSERT_TRUE(s->write(std::vector{reading("m", kT0), reading("n", kT0)}, kT0));
  }
  auto s = open_store(dir.file("m.db"));
  EXPECT_EQ(s->list_meters()->size(), 2u);
  // The meter-id cache is rebuilt: writing to a known meter does not recreate it.
  auto w = s->write(std::vector{reading("m", kT0 + 1)}, kT0);
  EXPECT_TRUE(w->new_meters.empty());
  EXPECT_EQ(s->read_range(all_of("m"))->size(), 2u);
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

TEST(SqliteStore, ProbeWriteSucceedsOnAHealthyFile) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  EXPECT_TRUE(s->probe_write(kT0));
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

// WAL: readers run beside the writer and only ever see whole commits.
TEST(SqliteStore, ReadersSeeOnlyWholeCommits) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  constexpr int kBatches = 100, kPer = 50;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!done) {
      auto r = s->read_range(all_of("m"));
      if (!r || r->size() % kPer != 0) ++bad;
      ++reads;
    }
  });
  for (int b = 0; b < kBatches; ++b) {
    std::vector<core::Reading> batch;
    for (int i = 0; i < kPer; ++i) batch.push_back(reading("m", kT0 + b * kPer + i));
    ASSERT_TRUE(s->write(batch, kT0));
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(s->read_range(all_of("m"))->size(), std::size_t{kBatches * kPer});
}

}  // namespace
}  // namespace meterhub::store
