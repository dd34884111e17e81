#include "ingest/ingest.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

namespace meterhub::ingest {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;
using meterhub::testing::TempDir;

// A Store whose writes can be made to fail or to block: the fault-injection
// seam (LevelDB's Env idea) for the writer's promises.
class FaultyStore : public store::Store {
 public:
  core::Result<store::WriteOutcome> write(std::span<const core::Reading> rs,
                                          core::TimeMs) override {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return !blocked; });
    ++writes;
    sizes.push_back(rs.size());
    if (fail) return core::fail("store_unavailable", "disk full (injected)");
    store::WriteOutcome o;
    for (const auto& r : rs) o.inserted.push_back(seen.insert({r.meter_id, r.ts}).second ? 1 : 0);
    return o;
  }
  core::Result<void> probe_write(core::TimeMs) override {
    if (fail) return core::fail("store_unavailable", "disk full (injected)");
    return {};
  }
  core::Result<std::vector<store::MeterInfo>> list_meters() override { return {}; }
  core::Result<std::optional<store::MeterInfo>> find_meter(std::string_view) override {
    return std::optional<store::MeterInfo>{};
  }
  core::Result<std::vector<core::Reading>> read_range(const store::RangeQuery&) override {
    return {};
  }
  core::Result<std::vector<core::Reading>> latest_per_meter() override { return {}; }
  core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view, store::Rollup,
                                                         core::TimeMs, core::TimeMs) override {
    return {};
  }
  core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(std::string_view,
                                                                      store::Rollup, core::TimeMs,
                                                                      core::TimeMs) override {
    return {};
  }
  core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(store::Rollup,
                                                                       core::TimeMs,
                                                                       core::TimeMs) override {
    return {};
  }
  core::Result<std::optional<std::string>> tariff(std::string_view) override {
    return std::optional<std::string>{};
  }
  core::Result<bool> set_tariff(std::string_view, std::optional<std::string>,
                                core::TimeMs) override {
    return false;
  }
  // The registry: only what Ingest uses (writer_missing_meters) does anything.
  core::Result<bool> create_meter(const store::NewMeter&, const std::optional<store::Credential>&,
                                  core::TimeMs) override {
    return false;
  }
  core::Result<bool> update_meter(std::string_view, const store::MeterPatch&) override {
    return false;
  }
  core::Result<std::optional<std::size_t>> delete_meter(std::string_view) override {
    return std::optional<std::size_t>{};
  }
  core::Result<std::vector<std::string>> writer_missing_meters(
      std::span<const std::string> ids) override {
    std::lock_guard lk(mu);
    std::vector<std::string> missing;
    for (const auto& id : ids)
      if (std::none_of(seen.begin(), seen.end(), [&](const auto& k) { return k.first == id; }))
        missing.push_back(id);
    return missing;
  }
  core::Result<bool> add_credential(const store::Credential&, core::TimeMs) override {
    return false;
  }
  core::Result<Revoke> revoke_credential(std::string_view, core::TimeMs) override {
    return Revoke::unknown;
  }
  core::Result<std::vector<store::Credential>> list_credentials() override { return {}; }
  core::Result<std::int64_t> registry_generation() override { return 0; }
  core::Result<store::RetentionOutcome> apply_retention(const store::RetentionPolicy&,
                                                        core::TimeMs) override {
    std::lock_guard lk(mu);
    ++retention_calls;
    store::RetentionOutcome o;
    o.more = retention_calls < 3;  // three batches of work, then nothing
    o.raw_deleted = o.more ? 10 : 2;
    return o;
  }

  void set_blocked(bool b) {
    {
      std::lock_guard lk(mu);
      blocked = b;
    }
    cv.notify_all();
  }

  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;
  bool fail = false;
  int writes = 0;
  int retention_calls = 0;
  std::vector<std::size_t> sizes;
  std::set<std::pair<std::string, core::TimeMs>> seen;
};

class Recorder : public hub::Subscriber {
 public:
  void deliver(hub::MessagePtr m) override {
    if (m->kind != hub::MessageKind::reading) return;  // events: not what these tests count
    std::lock_guard lk(mu);
    ts.push_back(m->ts);
  }
  std::mutex mu;
  std::vector<core::TimeMs> ts;
};

using Outcome = core::Result<IngestCounts>;

std::future<Outcome> submit(Ingest& in, std::vector<core::Reading> rs) {
  auto p = std::make_shared<std::promise<Outcome>>();
  auto f = p->get_future();
  bool ok = in.submit(std::move(rs), [p](Outcome o) { p->set_value(std::move(o)); });
  if (!ok) p->set_value(core::fail("refused", "refused"));
  return f;
}

TEST(Ingest, CountsNewAndDuplicateReadingsAfterCommit) {
  TempDir dir;
  auto store = store::SqliteStore::open({dir.file("m.db")});
  ASSERT_TRUE(store);
  hub::Hub hub;
  Ingest in(**store, hub, {});
  in.start();
  auto a = submit(in, {reading("m", kT0), reading("m", kT0 + 1)}).get();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->accepted, 2u);
  EXPECT_EQ(a->duplicates, 0u);
  auto b = submit(in, {reading("m", kT0 + 1), reading("m", kT0 + 2)}).get();
  EXPECT_EQ(b->accepted, 1u);
  EXPECT_EQ(b->duplicates, 1u);
  in.stop();
}

TEST(Ingest, PublishesOnlyNewReadingsAndOnlyAfterCommit) {
  FaultyStore store;
  hub::Hub hub;
  auto sub = std::make_shared<Recorder>();
  hub.subscribe("m", sub);
  Ingest in(store, hub, {});
  in.start();
  store.set_blocked(true);  // the commit is "in progress"
  auto f = submit(in, {reading("m", kT0)});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  {
    std::lock_guard lk(sub->mu);
    EXPECT_TRUE(sub->ts.empty()) << "published before commit";
  }
  store.set_blocked(false);
  EXPECT_TRUE(f.get());
  submit(in, {reading("m", kT0)}).get();  // duplicate: not published again
  in.stop();
  std::lock_guard lk(sub->mu);
  EXPECT_EQ(sub->ts, (std::vector<core::TimeMs>{kT0}));
}

TEST(Ingest, FailedCommitAcknowledgesNothingAndPublishesNothing) {
  FaultyStore store;
  store.fail = true;
  hub::Hub hub;
  auto sub = std::make_shared<Recorder>();
  hub.subscribe("m", sub);
  Ingest in(store, hub, {});
  in.start();
  auto r = submit(in, {reading("m", kT0)}).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "store_unavailable");
  EXPECT_TRUE(sub->ts.empty());
  EXPECT_FALSE(hub.latest("m"));
  // recovers when the fault clears
  store.fail = false;
  EXPECT_TRUE(submit(in, {reading("m", kT0)}).get());
  in.stop();
}

TEST(Ingest, GroupsConcurrentRequestsIntoOneCommit) {
  FaultyStore store;
  hub::Hub hub;
  Ingest in(store, hub, {});
  in.start();
  store.set_blocked(true);
  auto first = submit(in, {reading("m", kT0)});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // writer now blocked in commit 1
  std::vector<std::future<Outcome>> rest;
  for (int i = 1; i <= 20; ++i) rest.push_back(submit(in, {reading("m", kT0 + i)}));
  store.set_blocked(false);
  EXPECT_TRUE(first.get());
  for (auto& f : rest) EXPECT_TRUE(f.get());
  in.stop();
  ASSERT_EQ(store.writes, 2);
  EXPECT_EQ(store.sizes[1], 20u);  // everything that queued meanwhile: one transaction
}

TEST(Ingest, RetentionRunsBetweenCommitsUntilNothingIsLeft) {
  FaultyStore store;
  hub::Hub hub;
  IngestOptions o;
  o.retention_interval = std::chrono::milliseconds(200);
  o.retention_pause = std::chrono::milliseconds(1);
  Ingest in(store, hub, o);
  in.start();
  // Commits go on while retention works.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(submit(in, {reading("m", kT0 + i)}).get());
  for (int i = 0; i < 200 && in.stats().retention_runs < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(in.stats().retention_deleted, 22u);  // 10 + 10 + 2
  // After the batch that was not full, the next run waits a whole interval.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(in.stats().retention_runs, 3u);
  in.stop();
}

TEST(Ingest, RefusesWhenTheBacklogIsFull) {
  FaultyStore store;
  hub::Hub hub;
  IngestOptions o;
  o.max_queue_readings = 10;
  Ingest in(store, hub, o);
  in.start();
  store.set_blocked(true);
  auto first = submit(in, {reading("m", kT0)});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<core::Reading> eight;
  for (int i = 0; i < 8; ++i) eight.push_back(reading("m", kT0 + 100 + i));
  auto queued = submit(in, eight);
  std::vector<core::Reading> three;
  for (int i = 0; i < 3; ++i) three.push_back(reading("m", kT0 + 200 + i));
  auto refused = submit(in, three).get();  // 8 + 3 > 10
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "refused");
  store.set_blocked(false);
  EXPECT_TRUE(first.get());
  EXPECT_TRUE(queued.get());
  in.stop();
}

TEST(Ingest, StopCommitsEverythingAccepted) {
  TempDir dir;
  auto store = store::SqliteStore::open({dir.file("m.db")});
  hub::Hub hub;
  std::vector<std::future<Outcome>> fs;
  {
    Ingest in(**store, hub, {});
    in.start();
    for (int i = 0; i < 200; ++i) fs.push_back(submit(in, {reading("m", kT0 + i)}));
    in.stop();
    EXPECT_FALSE(in.submit({reading("m", kT0 - 1)}, [](Outcome) {}));
  }
  for (auto& f : fs) EXPECT_TRUE(f.get());
  store::RangeQuery q;
  q.meter_id = "m";
  q.from = 0;
  q.to = kT0 * 2;
  q.limit = 1000;
  EXPECT_EQ((*store)->read_range(q)->size(), 200u);
}

TEST(Ingest, ProbeGoesThroughTheWriter) {
  FaultyStore store;
  hub::Hub hub;
  Ingest in(store, hub, {});
  in.start();
  std::promise<bool> ok;
  in.probe([&](core::Result<void> r) { ok.set_value(r.has_value()); });
  EXPECT_TRUE(ok.get_future().get());
  store.fail = true;
  std::promise<bool> bad;
  in.probe([&](core::Result<void> r) { bad.set_value(r.has_value()); });
  EXPECT_FALSE(bad.get_future().get());
  in.stop();
}

}  // namespace
}  // namespace meterhub::ingest
