// PostgreSQL-specific behaviour of PgStore's readings side
// (store/postgres/pg_store.cpp): duplicates and new meters in one
// transaction, rollups equal to SQLite's for the same input (also with two
// nodes writing one meter in turn: the tail cache must notice), the fan-out
// NOTIFY (inline and pointer), a failed transaction storing and notifying
// nothing, reconnecting after the server dropped the writer's connection,
// and rough write throughput. The backend-neutral promises are checked by
// the contract suite, not here.
//
// Needs METERHUB_TEST_PG (see pg_test_util.hpp); skips without it.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <random>
#include <thread>

#include "pg_test_util.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;
using meterhub::testing::TempDir;
using meterhub::testing::TempPgDb;

constexpr core::TimeMs kHour = 3'600'000;
constexpr core::TimeMs kLo = std::numeric_limits<core::TimeMs>::min();
constexpr core::TimeMs kHi = std::numeric_limits<core::TimeMs>::max();

std::unique_ptr<PgStore> open_pg(const std::string& url, std::string node = "") {
  PgOptions o;
  o.conninfo = url;
  o.node_id = std::move(node);
  auto s = PgStore::open(std::move(o));
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

core::Reading at(const std::string& meter, core::TimeMs ts, double energy, double power = 500) {
  core::Reading r = reading(meter, ts, power);
  r.energy = energy;
  return r;
}

// A LISTENing connection on the readings channel.
class Listener {
 public:
  explicit Listener(const std::string& url) : c_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(c_), CONNECTION_OK) << PQerrorMessage(c_);
    PQclear(PQexec(c_, (std::string("LISTEN ") + pg::kReadingsChannel).c_str()));
  }
  ~Listener() { PQfinish(c_); }
  // The next notification's payload, nullopt after `wait_ms` without one.
  std::optional<std::string> next(int wait_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
      PQconsumeInput(c_);
      if (PGnotify* n = PQnotifies(c_)) {
        std::string payload = n->extra;
        PQfreemem(n);
        return payload;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      pollfd p{PQsocket(c_), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left));
    }
  }

 private:
  PGconn* c_;
};

void expect_same_readings(const std::vector<core::Reading>& got,
                          const std::vector<core::Reading>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("reading " + std::to_string(i));
    EXPECT_EQ(got[i].meter_id, want[i].meter_id);
    EXPECT_EQ(got[i].ts, want[i].ts);
    EXPECT_EQ(got[i].voltage, want[i].voltage);
    EXPECT_EQ(got[i].current, want[i].current);
    EXPECT_EQ(got[i].power, want[i].power);
    EXPECT_EQ(got[i].energy, want[i].energy);
    EXPECT_EQ(got[i].frequency, want[i].frequency);
    EXPECT_EQ(got[i].power_factor, want[i].power_factor);
  }
}

// Both stores hold the same readings and the same rollups for `meter`.
void expect_same_store(Store& pg, Store& lite, const std::string& meter) {
  SCOPED_TRACE("meter " + meter);
  expect_same_readings(testing::all_raw(pg, meter), testing::all_raw(lite, meter));
  for (Rollup t : {Rollup::minute, Rollup::hour}) {
    const auto got = pg.read_rollup(meter, t, kLo, kHi);
    const auto want = lite.read_rollup(meter, t, kLo, kHi);
    ASSERT_TRUE(got && want);
    testing::expect_same(*got, *want, t == Rollup::minute ? "1m" : "1h");
    const auto kwh = pg.read_kwh(meter, t, kLo, kHi);
    ASSERT_TRUE(kwh);
    ASSERT_EQ(kwh->size(), want->size());
    for (std::size_t i = 0; i < kwh->size(); ++i) {
      EXPECT_EQ((*kwh)[i].first, (*want)[i].start);
      EXPECT_NEAR((*kwh)[i].second, (*want)[i].kwh, 1e-9);
    }
  }
}

// A meter's day at 5-40 s intervals with resets, garbage and a gap: the
// readings that move consumption between buckets when they arrive late.
std::vector<core::Reading> messy(std::mt19937& rng, const std::string& meter, int n) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<core::Reading> rs;
  double e = 100;
  core::TimeMs t = kT0 + 7'000;
  for (int i = 0; i < n; ++i) {
    t += 5'000 + static_cast<core::TimeMs>(u(rng) * 35'000);
    if (i == n / 2) t += 2 * kHour;
    const double p = 50 + u(rng) * 3000;
    e += p / 1000.0 * 20.0 / 3600.0;
    if (i == n / 3) e = 0.2;  // counter reset
    core::Reading r = at(meter, t, e, p);
    if (i % 61 == 13) r.energy = 0;     // rebooting sensor
    if (i % 89 == 7) r.energy = 9.9e6;  // garbage
    if (u(rng) < 0.7) r.frequency = 49.9 + u(rng) * 0.2;
    if (u(rng) < 0.5) r.power_factor = u(rng);
    rs.push_back(r);
  }
  return rs;
}

// Mostly in order, some late, some re-sent.
std::vector<core::Reading> late_and_duplicated(std::mt19937& rng, std::vector<core::Reading> all) {
  for (std::size_t i = 0; i + 40 < all.size(); i += 40)
    std::shuffle(all.begin() + static_cast<std::ptrdiff_t>(i),
                 all.begin() + static_cast<std::ptrdiff_t>(i + 40), rng);
  std::shuffle(all.end() - 150, all.end(), rng);
  for (int i = 0; i < 60; ++i) all.push_back(all[rng() % all.size()]);
  return all;
}

TEST(PgStore, WriteReportsDuplicatesAndNewMeters) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto s = open_pg(db.url());
  ASSERT_TRUE(s);
  const std::vector<core::Reading> first = {at("b", kT0 + 1000, 1), at("a", kT0 + 1000, 1),
                                            at("b", kT0 + 1000, 2), at("b", kT0 + 2000, 3)};
  auto w = s->write(first, kT0 + 5000);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->inserted, (std::vector<unsigned char>{1, 1, 0, 1}));
  EXPECT_EQ(w->new_meters, (std::vector<std::string>{"b", "a"}));
  // The first of two equal readings in one call is the one stored.
  auto b = testing::all_raw(*s, "b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].energy, 1);

  const std::vector<core::Reading> second = {at("a", kT0 + 1000, 9), at("c", kT0, 1),
                                             at("a", kT0 + 500, 0.5)};
  w = s->write(second, kT0 + 9000);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->inserted, (std::vector<unsigned char>{0, 1, 1}));
  EXPECT_EQ(w->new_meters, (std::vector<std::string>{"c"}));

  auto a = s->find_meter("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->last_seen, kT0 + 9000);
  ASSERT_TRUE((*a)->latest);
  EXPECT_EQ((*a)->latest->ts, kT0 + 1000);
  EXPECT_EQ((*a)->latest->energy, 1);  // the stored row is untouched by the duplicate
  auto all = s->list_meters();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].meter_id, "a");
  EXPECT_EQ((*all)[2].meter_id, "c");
}

TEST(PgStore, RollupsEqualSqliteForLateOutOfOrderAndDuplicateInput) {
  METERHUB_REQUIRE_PG(server);
  for (unsigned seed : {11u, 12u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempPgDb db(server);
    TempDir dir;
    auto pg = open_pg(db.url());
    auto lite = testing::open_store(dir.file("m.db"));
    ASSERT_TRUE(pg && lite);
    std::mt19937 rng(seed);
    auto all = messy(rng, "a", 400);
    auto more = messy(rng, "b", 400);
    all.insert(all.end(), more.begin(), more.end());
    all = late_and_duplicated(rng, std::move(all));
    for (std::size_t i = 0; i < all.size();) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 120, all.size() - i);
      const auto batch = std::span(all).subspan(i, n);
      auto got = pg->write(batch, kT0);
      auto want = lite->write(batch, kT0);
      ASSERT_TRUE(got && want) << (got ? "" : got.error().message);
      EXPECT_EQ(got->inserted, want->inserted);
      EXPECT_EQ(got->new_meters, want->new_meters);
      i += n;
    }
    expect_same_store(*pg, *lite, "a");
    expect_same_store(*pg, *lite, "b");
    auto t1 = pg->kwh_totals(Rollup::hour, kLo, kHi);
    auto t2 = lite->kwh_totals(Rollup::hour, kLo, kHi);
    ASSERT_TRUE(t1 && t2);
    ASSERT_EQ(t1->size(), t2->size());
    for (std::size_t k = 0; k < t1->size(); ++k) {
      EXPECT_EQ((*t1)[k].first, (*t2)[k].first);
      EXPECT_NEAR((*t1)[k].second, (*t2)[k].second, 1e-9);
    }
  }
}

// Two nodes appending to one meter in turn: each node's cached tail is
// stale after the other wrote, which only write_seq reveals.
TEST(PgStore, TwoNodesWritingOneMeterInTurnKeepRollupsRight) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  TempDir dir;
  auto n1 = open_pg(db.url(), "n1");
  auto n2 = open_pg(db.url(), "n2");
  auto lite = testing::open_store(dir.file("m.db"));
  ASSERT_TRUE(n1 && n2 && lite);
  std::mt19937 rng(7);
  auto rs = messy(rng, "m", 300);
  // In order, so every write is an append that the tail cache would cover.
  for (std::size_t i = 0, k = 0; i < rs.size(); ++k) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 4, rs.size() - i);
    const auto batch = std::span(rs).subspan(i, n);
    PgStore& node = k % 2 ? *n2 : *n1;
    ASSERT_TRUE(node.write(batch, kT0));
    ASSERT_TRUE(lite->write(batch, kT0));
    i += n;
  }
  expect_same_store(*n1, *lite, "m");
  // And a late reading through the node that did not write last.
  auto late = at("m", rs[150].ts - 1, rs[150].energy - 0.001);
  ASSERT_TRUE(n1->write({&late, 1}, kT0));
  ASSERT_TRUE(lite->write({&late, 1}, kT0));
  auto tail = at("m", rs.back().ts + 10'000, rs.back().energy + 0.01);
  ASSERT_TRUE(n2->write({&tail, 1}, kT0));
  ASSERT_TRUE(lite->write({&tail, 1}, kT0));
  expect_same_store(*n2, *lite, "m");
}

// Retention on one node deletes readings another node has cached.
// A device may send consecutive readings of one meter to different nodes
// faster than a node's listener thread hears the first: right after its
// COMMIT the writer hands over the other nodes' batches that committed
// before it and this node has not published (WriteOutcome::committed_before),
// each once, for the caller to publish first.
TEST(PgStore, WriteHandsOverOtherNodesBatchesThatCommittedBefore) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto n1 = open_pg(db.url(), "n1");
  auto n2 = open_pg(db.url(), "n2");
  ASSERT_TRUE(n1 && n2);
  const auto r1 = at("m", kT0, 1.0), r2 = at("m", kT0 + 1000, 1.1);
  const auto r3 = at("m", kT0 + 2000, 1.2), r4 = at("m", kT0 + 3000, 1.3);
  auto w1 = n1->write({&r1, 1}, kT0);
  ASSERT_TRUE(w1);
  EXPECT_TRUE(w1->committed_before.empty());  // its own batch is not handed back
  auto w2 = n2->write({&r2, 1}, kT0);
  ASSERT_TRUE(w2);
  EXPECT_EQ(w2->committed_before, std::vector<core::Reading>{r1});
  // Two batches of n2 later, n1 gets both, in commit order.
  auto w3 = n2->write({&r3, 1}, kT0);
  ASSERT_TRUE(w3);
  EXPECT_TRUE(w3->committed_before.empty());
  auto w4 = n1->write({&r4, 1}, kT0);
  ASSERT_TRUE(w4);
  EXPECT_EQ(w4->committed_before, (std::vector<core::Reading>{r2, r3}));
  // A batch already published (claimed in SeenBatches, e.g. by the
  // listener) is not handed over again.
  const auto r5 = at("m", kT0 + 4000, 1.4), r6 = at("m", kT0 + 5000, 1.5);
  ASSERT_TRUE(n2->write({&r5, 1}, kT0));
  ASSERT_TRUE(n1->seen()->insert(*n2->seen()->max()));
  auto w6 = n1->write({&r6, 1}, kT0);
  ASSERT_TRUE(w6);
  EXPECT_TRUE(w6->committed_before.empty());
}

// An idle writer hands over what other nodes committed (the ingest writer
// polls it), so its connection never holds a backlog; each batch once.
TEST(PgStore, IdleWriterHandsOverOtherNodesCommits) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto n1 = open_pg(db.url(), "n1");
  auto n2 = open_pg(db.url(), "n2");
  ASSERT_TRUE(n1 && n2);
  EXPECT_TRUE(n2->receives_remote_commits());
  const auto r1 = at("m", kT0, 1.0), r2 = at("m", kT0 + 1000, 1.1);
  ASSERT_TRUE(n1->write({&r1, 1}, kT0));
  ASSERT_TRUE(n1->write({&r2, 1}, kT0));
  std::vector<core::Reading> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto rs = n2->take_remote_commits();
    ASSERT_TRUE(rs);
    got.insert(got.end(), rs->begin(), rs->end());
    if (got.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(got, (std::vector<core::Reading>{r1, r2}));
  EXPECT_TRUE(n2->take_remote_commits()->empty());
  const auto r3 = at("m", kT0 + 2000, 1.2);
  auto w = n2->write({&r3, 1}, kT0);
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->committed_before.empty());  // already handed over
}

TEST(PgStore, RetentionInvalidatesOtherNodesTails) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  TempDir dir;
  auto n1 = open_pg(db.url(), "n1");
  auto n2 = open_pg(db.url(), "n2");
  auto lite = testing::open_store(dir.file("m.db"));
  ASSERT_TRUE(n1 && n2 && lite);
  std::vector<core::Reading> rs;
  for (int i = 0; i < 30; ++i) rs.push_back(at("m", kT0 + i * 10'000, 1 + i * 0.01));
  rs.back().energy = 0;  // a rebooting sensor: what it means depends on what follows
  ASSERT_TRUE(n1->write(rs, kT0));
  ASSERT_TRUE(lite->write(rs, kT0));
  RetentionPolicy p;
  p.raw_ms = 1;  // everything but the newest
  p.minute_ms = 0;
  const core::TimeMs now = kT0 + 10 * kHour;
  auto r1 = n2->apply_retention(p, now);
  auto r2 = lite->apply_retention(p, now);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->raw_deleted, r2->raw_deleted);
  EXPECT_EQ(r1->raw_deleted, 29u);
  EXPECT_FALSE(r1->more);
  auto next = at("m", kT0 + 300'000, 1.3);
  ASSERT_TRUE(n1->write({&next, 1}, kT0));
  ASSERT_TRUE(lite->write({&next, 1}, kT0));
  expect_same_store(*n1, *lite, "m");
}

// Two nodes writing the same meters at the same time, creating them in
// opposite orders: every write succeeds (a deadlock is retried), and the
// meter locks keep the rollups equal to those of the final set of readings.
TEST(PgStore, ConcurrentNodesWritingTheSameMetersKeepRollupsRight) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  TempDir dir;
  auto n1 = open_pg(db.url(), "n1");
  auto n2 = open_pg(db.url(), "n2");
  auto lite = testing::open_store(dir.file("m.db"));
  ASSERT_TRUE(n1 && n2 && lite);
  constexpr int kMeters = 6, kWrites = 60, kPerMeter = 3;
  // Node k writes the readings with ts % 2 == k: interleaved in time, so
  // each node's readings land before, between and after the other's.
  auto batch_of = [&](int node, int w) {
    std::vector<core::Reading> rs;
    for (int m = 0; m < kMeters; ++m) {
      const int meter = node == 0 ? m : kMeters - 1 - m;
      for (int j = 0; j < kPerMeter; ++j) {
        const core::TimeMs t = kT0 + (w * kPerMeter + j) * 20'000 + node * 10'000;
        rs.push_back(at("c" + std::to_string(meter), t, 1 + static_cast<double>(t - kT0) * 1e-7));
      }
    }
    return rs;
  };
  std::vector<core::Reading> everything;
  for (int node = 0; node < 2; ++node)
    for (int w = 0; w < kWrites; ++w) {
      auto rs = batch_of(node, w);
      everything.insert(everything.end(), rs.begin(), rs.end());
    }
  std::atomic<int> failures{0};
  auto run = [&](PgStore& s, int node) {
    for (int w = 0; w < kWrites; ++w) {
      auto rs = batch_of(node, w);
      if (!s.write(rs, kT0)) ++failures;
    }
  };
  std::thread t1(run, std::ref(*n1), 0), t2(run, std::ref(*n2), 1);
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(lite->write(everything, kT0));
  for (int m = 0; m < kMeters; ++m) expect_same_store(*n1, *lite, "c" + std::to_string(m));
}

TEST(PgStore, NotifiesNewReadingsInlineOrAsAPointer) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto s = open_pg(db.url(), "node-a");
  ASSERT_TRUE(s);
  Listener l(db.url());
  const auto stored = at("m", kT0, 1);
  ASSERT_TRUE(s->write({&stored, 1}, kT0));
  ASSERT_TRUE(l.next(2000));

  std::vector<core::Reading> rs = {at("m", kT0, 1), at("m", kT0 + 1000, 2), at("n", kT0 + 500, 3)};
  rs[1].frequency = 50.01;
  rs[2].power_factor = 0.5;
  ASSERT_TRUE(s->write(rs, kT0));
  auto payload = l.next(2000);
  ASSERT_TRUE(payload);
  auto b = pg::decode_batch(*payload);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->node, "node-a");
  EXPECT_FALSE(b->pointer);
  EXPECT_TRUE(s->seen()->contains(b->id));
  expect_same_readings(b->readings, {rs[1], rs[2]});  // the duplicate is not sent
  expect_same_readings(*s->read_batch(b->id), {rs[1], rs[2]});

  // Too big for a payload: a pointer to the batch.
  std::vector<core::Reading> big;
  for (int i = 0; i < 400; ++i) big.push_back(at(i % 2 ? "m" : "n", kT0 + 10'000 + i, 5));
  ASSERT_TRUE(s->write(big, kT0));
  payload = l.next(2000);
  ASSERT_TRUE(payload);
  b = pg::decode_batch(*payload);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->pointer);
  auto back = s->read_batch(b->id);
  ASSERT_TRUE(back);
  std::vector<core::Reading> want = big;
  std::stable_sort(want.begin(), want.end(), [](const auto& x, const auto& y) {
    return x.meter_id != y.meter_id ? x.meter_id == "m" : x.ts < y.ts;  // "m" was created first
  });
  expect_same_readings(*back, want);
  // Resync: every reading of the batches after the first.
  auto after = s->read_batches_after(b->id - 1, 1000);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), big.size());
  for (const auto& [id, r] : *after) EXPECT_EQ(id, b->id);
  EXPECT_EQ(s->read_batches_after(b->id - 1, 10)->size(), 10u);
  EXPECT_TRUE(s->read_batches_after(b->id, 10)->empty());
  // Nothing new: no notification.
  ASSERT_TRUE(s->write(big, kT0));
  EXPECT_FALSE(l.next(300));
}

TEST(PgStore, FailedTransactionStoresAndNotifiesNothing) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  TempDir dir;
  auto s = open_pg(db.url());
  auto lite = testing::open_store(dir.file("m.db"));
  ASSERT_TRUE(s && lite);
  // Fault injection: the hourly rollup refuses a voltage above 1000 V, i.e.
  // the transaction fails after the readings and minute rollups are written.
  ASSERT_EQ(testing::pg_admin(db.url(),
                              "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                              "BEGIN IF NEW.v_max > 1000 THEN RAISE EXCEPTION 'injected'; END IF; "
                              "RETURN NEW; END $$; CREATE TRIGGER refuse BEFORE INSERT OR UPDATE "
                              "ON rollup_1h FOR EACH ROW EXECUTE FUNCTION refuse()"),
            "");
  std::vector<core::Reading> ok;
  for (int i = 0; i < 5; ++i) ok.push_back(at("m", kT0 + i * 20'000, 1 + i * 0.01));
  ASSERT_TRUE(s->write(ok, kT0));
  ASSERT_TRUE(lite->write(ok, kT0));
  Listener l(db.url());

  std::vector<core::Reading> bad = {at("m", kT0 + 200'000, 1.2), at("new", kT0, 1)};
  bad[0].voltage = 2000;
  auto w = s->write(bad, kT0 + 1);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, "store_unavailable");
  EXPECT_NE(w.error().message.find("injected"), std::string::npos) << w.error().message;
  EXPECT_FALSE(l.next(300));
  EXPECT_FALSE(*s->find_meter("new"));
  EXPECT_EQ(testing::all_raw(*s, "m").size(), ok.size());
  EXPECT_EQ((*s->find_meter("m"))->last_seen, kT0);
  expect_same_store(*s, *lite, "m");

  // The writer goes on (its rollup tail cache was dropped with the rollback).
  bad[0].voltage = 230;
  ASSERT_TRUE(s->write(bad, kT0 + 2));
  ASSERT_TRUE(lite->write(bad, kT0 + 2));
  EXPECT_TRUE(l.next(2000));
  expect_same_store(*s, *lite, "m");
}

TEST(PgStore, ReconnectsAfterTheServerDroppedTheWriter) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto s = open_pg(db.url());
  ASSERT_TRUE(s);
  auto r0 = at("m", kT0, 1);
  ASSERT_TRUE(s->write({&r0, 1}, kT0));
  ASSERT_TRUE(s->probe_write(kT0));
  ASSERT_EQ(testing::pg_admin(server,
                              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "datname = '" +
                                  db.name() + "' AND pid <> pg_backend_pid()"),
            "");
  auto r1 = at("m", kT0 + 1000, 2);
  auto w = s->write({&r1, 1}, kT0);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, "store_unavailable");
  w = s->write({&r1, 1}, kT0);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->inserted, std::vector<unsigned char>{1});
  EXPECT_TRUE(s->probe_write(kT0 + 1));
  EXPECT_EQ(testing::all_raw(*s, "m").size(), 2u);
}

// Rough numbers, not a pass/fail criterion: readings/s of write() for
// batches of 1, 100 and 5000 readings (each call one transaction). A
// benchmark, so not part of `make test` (bench/README.md):
//   METERHUB_TEST_PG=postgresql://… build/pg_unit_tests
//     --gtest_also_run_disabled_tests --gtest_filter='*WriteThroughput'
TEST(PgStore, DISABLED_WriteThroughput) {
  METERHUB_REQUIRE_PG(server);
  TempPgDb db(server);
  auto s = open_pg(db.url());
  ASSERT_TRUE(s);
  core::TimeMs t = kT0;
  for (auto [batch, calls] : {std::pair{1, 500}, std::pair{100, 100}, std::pair{5000, 20}}) {
    std::vector<core::Reading> rs(static_cast<std::size_t>(batch));
    const auto start = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) {
      for (int i = 0; i < batch; ++i) {
        // 10 meters, each appending in time order.
        ++t;
        rs[static_cast<std::size_t>(i)] = at("bench" + std::to_string(i % 10), t, 1 + t * 1e-9);
      }
      ASSERT_TRUE(s->write(rs, t));
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ bench    ] batch %5d: %8.0f readings/s (%.2f ms per write)\n", batch,
                batch * calls / secs, 1000 * secs / calls);
  }
}

}  // namespace
}  // namespace meterhub::store
