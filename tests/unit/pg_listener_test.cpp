// PgListener (store/postgres/pg_listener.hpp) against a real server, with
// notifications sent by hand (pg_notify) and by PgStore::write: decoding,
// the seen-set (no batch twice), registry events, a killed connection
// (reconnect + resync of what committed meanwhile) and a prompt stop().
//
// Needs a server: METERHUB_TEST_PG is a URL to an existing server's
// `postgres` database (e.g. postgresql://postgres@/postgres?host=/tmp&port=55432);
// each test creates and drops a database named fan_*. Skipped when unset.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_util.hpp"
#include "store/postgres/fanout.hpp"
#include "store/postgres/pg_listener.hpp"
#include "store/postgres/pg_store.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using namespace std::chrono_literals;
using meterhub::testing::kT0;

bool run(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto st = PQresultStatus(r);
  const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  EXPECT_TRUE(ok) << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  return ok;
}

std::string quote(PGconn* c, const std::string& s) {
  char* q = PQescapeLiteral(c, s.c_str(), s.size());
  std::string out = q;
  PQfreemem(q);
  return out;
}

core::Reading reading(const std::string& meter, core::TimeMs ts, double energy) {
  core::Reading r;
  r.meter_id = meter;
  r.ts = ts;
  r.voltage = 230;
  r.current = 1;
  r.power = 230;
  r.energy = energy;
  return r;
}

// What the callbacks received, waitable.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<core::Reading>> batches;
  std::vector<std::pair<RegistryChange, std::string>> registry;

  template <class Pred>
  bool wait(Pred p, std::chrono::milliseconds d = 5s) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, d, [&] { return p(); });
  }
};

class PgListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("METERHUB_TEST_PG");
    if (!base || !*base) GTEST_SKIP() << "METERHUB_TEST_PG not set";
    admin_.reset(PQconnectdb(base));
    ASSERT_EQ(PQstatus(admin_.get()), CONNECTION_OK) << PQerrorMessage(admin_.get());
    std::mt19937_64 rng(std::random_device{}());
    db_ = "fan_listener_" + std::to_string(rng() % 1'000'000'000);
    ASSERT_TRUE(run(admin_.get(), "CREATE DATABASE " + db_));
    url_ = meterhub::testing::pg_url_for(base, db_);
    PgOptions o;
    o.conninfo = url_;
    o.node_id = "self";
    o.readers = 2;
    auto s = PgStore::open(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    sql_.reset(PQconnectdb(url_.c_str()));
    ASSERT_EQ(PQstatus(sql_.get()), CONNECTION_OK);
  }

  void TearDown() override {
    if (listener_) listener_->stop();
    listener_.reset();
    store_.reset();
    sql_.reset();
    if (admin_ && !db_.empty())
      run(admin_.get(), "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
  }

  void start_listener() {
    PgListenerOptions o;
    o.conninfo = url_;
    o.backoff_min = 50ms;
    listener_ = std::make_unique<PgListener>(
        *store_, o,
        [this](std::vector<core::Reading>&& rs, const PgListener::Claim& claim) {
          std::lock_guard lk(sink_.mu);
          if (!claim()) return false;
          sink_.batches.push_back(std::move(rs));
          sink_.cv.notify_all();
          return true;
        },
        [this](RegistryChange c, const std::string& m) {
          std::lock_guard lk(sink_.mu);
          sink_.registry.emplace_back(c, m);
          sink_.cv.notify_all();
        });
    auto r = listener_->prepare();
    ASSERT_TRUE(r) << r.error().message;
    listener_->start();
  }

  void notify(const std::string& channel, const std::string& payload) {
    run(sql_.get(),
        "SELECT pg_notify(" + quote(sql_.get(), channel) + ", " + quote(sql_.get(), payload) + ")");
  }

  struct PQfinisher {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  std::unique_ptr<PGconn, PQfinisher> admin_, sql_;
  std::string db_, url_;
  std::unique_ptr<PgStore> store_;
  std::unique_ptr<PgListener> listener_;
  Sink sink_;
};

TEST_F(PgListenerTest, HandsOverANotifiedBatchOnceInOrder) {
  start_listener();
  std::vector<core::Reading> rs = {reading("m1", kT0, 1), reading("m1", kT0 + 1000, 2),
                                   reading("m2", kT0, 3)};
  std::vector<const core::Reading*> ptrs;
  for (const auto& r : rs) ptrs.push_back(&r);
  const std::string payload = pg::encode_batch("other", 1'000'000, ptrs);
  notify(pg::kReadingsChannel, payload);
  notify(pg::kReadingsChannel, payload);  // the same batch again: skipped
  notify(pg::kReadingsChannel, "garbage");
  ASSERT_TRUE(sink_.wait([&] { return !sink_.batches.empty(); }));
  ASSERT_TRUE(sink_.wait([&] { return listener_->stats().errors == 1; }));
  std::lock_guard lk(sink_.mu);
  ASSERT_EQ(sink_.batches.size(), 1u);
  ASSERT_EQ(sink_.batches[0].size(), 3u);
  EXPECT_EQ(sink_.batches[0][0].energy, 1);
  EXPECT_EQ(sink_.batches[0][1].ts, kT0 + 1000);
  EXPECT_EQ(sink_.batches[0][2].meter_id, "m2");
  EXPECT_EQ(listener_->stats().skipped, 1u);
  EXPECT_TRUE(listener_->stats().connected);
}

TEST_F(PgListenerTest, OwnWritesAreNotHandedOverButOtherNodesAre) {
  start_listener();
  // This store's own write: its batch is in seen() before commit.
  std::vector<core::Reading> own = {reading("own", kT0, 1)};
  ASSERT_TRUE(store_->write(own, kT0));
  // Another node's write, big enough for the pointer form.
  PgOptions o;
  o.conninfo = url_;
  o.node_id = "other";
  o.readers = 1;
  auto other = PgStore::open(o);
  ASSERT_TRUE(other) << other.error().message;
  std::vector<core::Reading> big;
  for (int k = 0; k < 300; ++k) big.push_back(reading("big", kT0 + k * 1000, k));
  ASSERT_TRUE((*other)->write(big, kT0));
  ASSERT_TRUE(sink_.wait([&] { return !sink_.batches.empty(); }));
  std::this_thread::sleep_for(300ms);
  std::lock_guard lk(sink_.mu);
  ASSERT_EQ(sink_.batches.size(), 1u);
  ASSERT_EQ(sink_.batches[0].size(), 300u);
  for (int k = 0; k < 300; ++k) EXPECT_EQ(sink_.batches[0][k].energy, k);
  EXPECT_EQ(listener_->stats().pointer_fetches, 1u);
  EXPECT_GE(listener_->stats().skipped, 1u);  // the own batch
}

TEST_F(PgListenerTest, RegistryEvents) {
  start_listener();
  notify(pg::kRegistryChannel, "created m1 node-b");
  notify(pg::kRegistryChannel, "created m2 " + store_->node_id());  // its own: already known
  notify(pg::kRegistryChannel, "updated m1 node-b");
  notify(pg::kRegistryChannel, "deleted m1");  // no node: from an older meterhub
  notify(pg::kRegistryChannel, "exploded m1 node-b");
  ASSERT_TRUE(sink_.wait([&] { return sink_.registry.size() == 3; }));
  ASSERT_TRUE(sink_.wait([&] { return listener_->stats().errors == 1; }));
  std::lock_guard lk(sink_.mu);
  ASSERT_EQ(sink_.registry.size(), 3u);
  EXPECT_EQ(sink_.registry[0].second, "m1");
  EXPECT_EQ(sink_.registry[0].first, RegistryChange::created);
  EXPECT_EQ(sink_.registry[1].first, RegistryChange::updated);
  EXPECT_EQ(sink_.registry[2].first, RegistryChange::deleted);
  EXPECT_EQ(sink_.registry[2].second, "m1");
}

TEST_F(PgListenerTest, ReconnectsAndResyncsWhatCommittedMeanwhile) {
  start_listener();
  PgOptions o;
  o.conninfo = url_;
  o.node_id = "other";
  o.readers = 1;
  auto other = PgStore::open(o);
  ASSERT_TRUE(other) << other.error().message;
  std::vector<core::Reading> first = {reading("r", kT0, 0)};
  ASSERT_TRUE((*other)->write(first, kT0));
  ASSERT_TRUE(sink_.wait([&] { return sink_.batches.size() == 1; }));
  // Kill the listener's session and write while it is away: a resync must
  // bring the missed batches, each once.
  ASSERT_TRUE(run(sql_.get(),
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                  "application_name = 'meterhub-listener' AND datname = current_database()"));
  for (int k = 1; k <= 5; ++k) {
    std::vector<core::Reading> rs = {reading("r", kT0 + k * 1000, k)};
    ASSERT_TRUE((*other)->write(rs, kT0));
  }
  ASSERT_TRUE(sink_.wait([&] { return sink_.batches.size() >= 6; }, 10s));
  std::this_thread::sleep_for(300ms);
  std::lock_guard lk(sink_.mu);
  ASSERT_EQ(sink_.batches.size(), 6u);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(sink_.batches[k][0].energy, k);
  EXPECT_GE(listener_->stats().reconnects, 1u);
  EXPECT_GE(listener_->stats().resyncs, 2u);
}

TEST_F(PgListenerTest, BatchesCommittedBeforePrepareAreNotHandedOver) {
  PgOptions o;
  o.conninfo = url_;
  o.node_id = "other";
  o.readers = 1;
  auto other = PgStore::open(o);
  ASSERT_TRUE(other) << other.error().message;
  std::vector<core::Reading> before = {reading("p", kT0, 0)};
  ASSERT_TRUE((*other)->write(before, kT0));
  start_listener();  // prepare() marks it seen; the start-up resync skips it
  std::vector<core::Reading> after = {reading("p", kT0 + 1000, 1)};
  ASSERT_TRUE((*other)->write(after, kT0));
  ASSERT_TRUE(sink_.wait([&] { return !sink_.batches.empty(); }));
  std::this_thread::sleep_for(300ms);
  std::lock_guard lk(sink_.mu);
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0][0].energy, 1);
}

TEST_F(PgListenerTest, StopIsPrompt) {
  start_listener();
  const auto t0 = std::chrono::steady_clock::now();
  listener_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_FALSE(listener_->stats().connected);
}

}  // namespace
}  // namespace meterhub::store
