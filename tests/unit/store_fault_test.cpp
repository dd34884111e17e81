// The SQLite store under I/O faults (LevelDB's fault_injection_test idea): a
// VFS shim over the default one makes every write, sync and truncate fail
// from the N-th on, for N = 1, 2, 3, ... until a write gets through whole.
// So the fault hits every step of a commit in turn (WAL frames, WAL header,
// the commit frame, fsync). After each failure the fault is lifted and:
//  - the failed write reported an error and stored nothing of its readings
//    (writing them again inserts every one of them);
//  - the writer connection is not stuck in the failed transaction: the next
//    write and a probe write succeed;
//  - the rollups equal the raw readings (nothing half-applied, no stale
//    cache in the writer).
// A third test fails only the database file, so every checkpoint fails while
// writes go on. The e2e suite breaks real filesystems (a full tmpfs, a
// read-only ext4): tests/e2e/test_faults.py.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <set>
#include <thread>

#include "query/series.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::all_raw;
using meterhub::testing::expect_same;
using meterhub::testing::kT0;
using meterhub::testing::TempDir;

// ---------------------------------------------------------------------------
// The fault VFS. One per process, registered as the default while a test
// runs (the store opens its connections with the default VFS).

struct Faults {
  // I/O calls left before failing; -1 = never fail, 0 = every call fails.
  std::atomic<int> countdown{-1};
  std::atomic<int> code{SQLITE_FULL};
  std::atomic<int> failed{0};          // calls failed so far
  std::atomic<bool> main_only{false};  // fail only the database file (not the WAL)
  void reset() {
    countdown = -1;
    code = SQLITE_FULL;
    failed = 0;
    main_only = false;
  }
  bool hit(bool main_db) {
    if (main_only && !main_db) return false;
    int c = countdown.load();
    if (c < 0) return false;
    if (c > 0 && countdown.fetch_sub(1) > 1) return false;
    ++failed;
    return true;  // countdown stays 0: every later call fails too (a full disk)
  }
};
Faults g_faults;
sqlite3_vfs* g_base = nullptr;

struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
  bool main_db;
};

sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f)->real; }
bool hit(sqlite3_file* f) { return g_faults.hit(reinterpret_cast<FaultFile*>(f)->main_db); }

int f_close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
int f_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  return real(f)->pMethods->xRead(real(f), buf, n, off);
}
int f_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (hit(f)) return g_faults.code == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  return real(f)->pMethods->xWrite(real(f), buf, n, off);
}
int f_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (hit(f)) return g_faults.code == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
  return real(f)->pMethods->xTruncate(real(f), size);
}
int f_sync(sqlite3_file* f, int flags) {
  if (hit(f)) return SQLITE_IOERR_FSYNC;
  return real(f)->pMethods->xSync(real(f), flags);
}
int f_size(sqlite3_file* f, sqlite3_int64* size) {
  return real(f)->pMethods->xFileSize(real(f), size);
}
int f_lock(sqlite3_file* f, int l) { return real(f)->pMethods->xLock(real(f), l); }
int f_unlock(sqlite3_file* f, int l) { return real(f)->pMethods->xUnlock(real(f), l); }
int f_check(sqlite3_file* f, int* out) {
  return real(f)->pMethods->xCheckReservedLock(real(f), out);
}
int f_control(sqlite3_file* f, int op, void* arg) {
  return real(f)->pMethods->xFileControl(real(f), op, arg);
}
int f_sector(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int f_caps(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int f_shm_map(sqlite3_file* f, int pg, int sz, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), pg, sz, extend, out);
}
int f_shm_lock(sqlite3_file* f, int off, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), off, n, flags);
}
void f_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int f_shm_unmap(sqlite3_file* f, int del) { return real(f)->pMethods->xShmUnmap(real(f), del); }
int f_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return real(f)->pMethods->xFetch(real(f), off, n, out);
}
int f_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return real(f)->pMethods->xUnfetch(real(f), off, p);
}

const sqlite3_io_methods kMethods = {
    3,          f_close,       f_read,      f_write,   f_truncate, f_sync, f_size,
    f_lock,     f_unlock,      f_check,     f_control, f_sector,   f_caps, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch,   f_unfetch};

int f_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* f = reinterpret_cast<FaultFile*>(file);
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  const int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  f->base.pMethods = f->real->pMethods ? &kMethods : nullptr;
  return rc;
}

sqlite3_vfs g_vfs;

// Registers the fault VFS as the default for the lifetime of the object.
struct FaultVfsScope {
  FaultVfsScope() {
    g_base = sqlite3_vfs_find(nullptr);
    g_vfs = *g_base;
    g_vfs.zName = "meterhub-faults";
    g_vfs.pNext = nullptr;
    g_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + g_base->szOsFile;
    g_vfs.xOpen = f_open;
    g_faults.reset();
    EXPECT_EQ(sqlite3_vfs_register(&g_vfs, 1), SQLITE_OK);
  }
  ~FaultVfsScope() {
    sqlite3_vfs_unregister(&g_vfs);
    sqlite3_vfs_register(g_base, 1);
  }
};

// ---------------------------------------------------------------------------

constexpr core::TimeMs kMin = 60'000, kHour = 3'600'000;

// Readings number `from` .. `from + n - 1` of meter m: 10 s apart, energy
// rising 0.001 kWh each.
std::vector<core::Reading> readings(const std::string& m, int from, int n) {
  std::vector<core::Reading> out;
  for (int i = from; i < from + n; ++i) {
    core::Reading r = meterhub::testing::reading(m, kT0 + i * 10'000LL, 100 + i % 13);
    r.energy = 100 + i * 0.001;
    if (i % 3 == 0) r.frequency = 50.0 + (i % 5) / 100.0;
    out.push_back(r);
  }
  return out;
}

void expect_rollups_match_raw(Store& s, const std::string& meter) {
  const auto lo = std::numeric_limits<core::TimeMs>::min();
  const auto hi = std::numeric_limits<core::TimeMs>::max();
  const auto raw = all_raw(s, meter);
  expect_same(s.read_rollup(meter, Rollup::minute, lo, hi).value(),
              query::bucketize(raw, {}, std::nullopt, kMin, {}), "1m");
  expect_same(s.read_rollup(meter, Rollup::hour, lo, hi).value(),
              query::bucketize(raw, {}, std::nullopt, kHour, {}), "1h");
}

std::size_t count_inserted(const WriteOutcome& w) {
  std::size_t n = 0;
  for (unsigned char c : w.inserted) n += c;
  return n;
}

void run_fault_sweep(int code) {
  FaultVfsScope vfs;
  TempDir dir;
  auto opened = SqliteStore::open({dir.file("m.db")});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& s = **opened;
  int next = 0;
  std::set<core::TimeMs> stored;
  auto write_ok = [&](const std::vector<core::Reading>& rs, const char* what) {
    auto w = s.write(rs, kT0);
    ASSERT_TRUE(w) << what << ": " << w.error().message;
    EXPECT_EQ(count_inserted(*w), rs.size()) << what << ": some readings were already stored";
    for (const auto& r : rs) stored.insert(r.ts);
  };
  write_ok(readings("m", next, 200), "first batch");
  next += 200;

  int failures = 0;
  for (int n = 1; n < 400; ++n) {
    SCOPED_TRACE("fault at I/O call " + std::to_string(n));
    // A batch crossing minute and hour buckets, late readings of an existing
    // bucket included (so rollup rows are both inserted and updated).
    auto batch = readings("m", next, 150);
    core::Reading late = readings("m", next - 1000, 1)[0];  // between two stored ones
    late.ts += 5'000;
    late.energy += 0.0005;
    batch.push_back(late);
    g_faults.countdown = n;
    g_faults.code = code;
    auto w = s.write(batch, kT0);
    const bool failed = g_faults.failed > 0;
    g_faults.reset();
    if (w) {
      // The commit needed fewer than n I/O calls: every step was covered.
      ASSERT_FALSE(failed) << "write reported success although an I/O call failed";
      for (const auto& r : batch) stored.insert(r.ts);
      next += 150;
      break;
    }
    ++failures;
    EXPECT_EQ(w.error().code, "store_unavailable");
    // Nothing of the failed write is visible, and the writer is usable.
    std::set<core::TimeMs> now;
    for (const auto& r : all_raw(s, "m")) now.insert(r.ts);
    ASSERT_EQ(now, stored) << "the failed write left readings behind";
    ASSERT_TRUE(s.probe_write(kT0)) << "the writer is stuck after the failure";
    // First readings after the failed ones (a writer that still believed in
    // the failed batch would attribute their consumption wrongly), then the
    // failed batch again, now late.
    write_ok(readings("m", next + 150, 10), "the next batch");
    expect_rollups_match_raw(s, "m");
    write_ok(batch, "the failed batch, again");
    next += 160;
    expect_rollups_match_raw(s, "m");
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(failures, 3) << "the sweep never hit a commit's I/O";
  write_ok(readings("m", next, 10), "after the sweep");
  expect_rollups_match_raw(s, "m");
  std::set<core::TimeMs> now;
  for (const auto& r : all_raw(s, "m")) now.insert(r.ts);
  EXPECT_EQ(now, stored);
}

TEST(StoreFaults, DiskFullAtEveryStepOfACommitLeavesNothingAndRecovers) {
  run_fault_sweep(SQLITE_FULL);
}

TEST(StoreFaults, IoErrorAtEveryStepOfACommitLeavesNothingAndRecovers) {
  run_fault_sweep(SQLITE_IOERR);
}

// The database file cannot grow (its disk is full) while the WAL still has
// room: every checkpoint fails, the background one and the writer's inline
// one at the WAL bound alike. Writes must go on (they only append to the
// WAL), and once the disk has room the checkpoints copy everything back.
TEST(StoreFaults, FailingCheckpointsDoNotStopWritesAndCatchUpLater) {
  FaultVfsScope vfs;
  TempDir dir;
  auto opened = SqliteStore::open({dir.file("m.db")});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& s = **opened;
  g_faults.main_only = true;
  g_faults.countdown = 0;
  // ~1 MiB of WAL per group: past both the background (~32 MiB) and the
  // inline (~64 MiB) checkpoint thresholds.
  constexpr int kBatches = 80;
  auto batch_of = [](int b) {
    std::vector<core::Reading> batch;
    for (int i = 0; i < 1000; ++i) {
      auto r = meterhub::testing::reading("m" + std::to_string(i % 200), kT0 + b * 1000 + i);
      r.energy = 1 + b * 0.001;
      batch.push_back(r);
    }
    return batch;
  };
  for (int b = 0; b < kBatches; ++b) {
    auto w = s.write(batch_of(b), kT0);
    ASSERT_TRUE(w) << "batch " << b << ": " << w.error().message;
  }
  for (int i = 0; i < 100 && s.checkpoint_runs() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GT(s.checkpoint_runs(), 0u);
  EXPECT_GT(g_faults.failed.load(), 0) << "no checkpoint tried to write the database file";
  EXPECT_EQ(s.checkpoint_pages(), 0u) << "a checkpoint claims success on a full disk";

  g_faults.reset();  // room again
  for (int b = kBatches; b < kBatches + 40; ++b) ASSERT_TRUE(s.write(batch_of(b), kT0));
  for (int i = 0; i < 200 && s.checkpoint_pages() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GT(s.checkpoint_pages(), 0u);
  std::size_t total = 0;
  for (int m = 0; m < 200; ++m) total += all_raw(s, "m" + std::to_string(m)).size();
  EXPECT_EQ(total, std::size_t{kBatches + 40} * 1000);
  expect_rollups_match_raw(s, "m7");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(dir.file("m.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
}  // namespace meterhub::store
