// The alert engine (src/alerts/engine.hpp) on a real SQLite store and Hub:
// readings published after commit raise and clear stored alerts that are
// pushed to the meter's watchers; rules and active alerts survive a restart;
// offline rules run on the engine's tick; removing a rule clears its alert.
// How the store keeps rules and alerts is part of the store contract
// (store_contract_test.cpp).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "alerts/engine.hpp"
#include "codec/alert_codec.hpp"
#include "core/time.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::alerts {
namespace {

using meterhub::testing::TempDir;

class Recorder : public hub::Subscriber {
 public:
  void deliver(hub::MessagePtr m) override {
    std::lock_guard lk(mu);
    if (m->kind == hub::MessageKind::alert) alerts.push_back(m->tagged);
  }
  std::vector<std::string> got() {
    std::lock_guard lk(mu);
    return alerts;
  }
  std::mutex mu;
  std::vector<std::string> alerts;
};

// Polls `cond` for up to 20 s (a failure, not a timing claim, if it never holds).
bool eventually(const std::function<bool()>& cond) {
  for (int i = 0; i < 2000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

core::Reading volts(core::TimeMs ts, double v) {
  core::Reading r = meterhub::testing::reading("m1", ts);
  r.voltage = v;
  return r;
}

std::vector<Rule> rules(const char* json) { return codec::decode_alert_rules(json).value(); }

std::vector<store::AlertRecord> listed(store::Store& s, std::optional<bool> active) {
  store::AlertQuery q;
  q.active = active;
  return s.list_alerts(q).value();
}

class AlertEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = meterhub::testing::open_store(dir_.file("a.db"));
    ASSERT_TRUE(store_);
    ASSERT_TRUE(store_->create_meter({"m1", "", "", std::nullopt}, std::nullopt, t0_).value());
  }
  std::unique_ptr<Engine> engine(hub::Hub& hub) {
    EngineOptions o;
    o.tick = std::chrono::milliseconds(20);
    auto e = std::make_unique<Engine>(*store_, hub, nullptr, o);
    EXPECT_TRUE(e->load());
    e->start();
    return e;
  }

  TempDir dir_;
  std::unique_ptr<store::SqliteStore> store_;
  const core::TimeMs t0_ = core::now_ms();
};

TEST_F(AlertEngineTest, RaisesStoresPushesAndClears) {
  hub::Hub hub;
  auto eng = engine(hub);
  auto watcher = std::make_shared<Recorder>();
  const std::string ids[] = {"m1"};
  hub.watch(ids, watcher);
  ASSERT_TRUE(
      eng->put_rules("m1",
                     rules(R"({"rules":[{"kind":"over_voltage","threshold":253,"hysteresis":3}]})"))
          .value());
  EXPECT_FALSE(eng->put_rules("nope", {}).value()) << "unknown meter";

  hub.publish(volts(t0_, 240));
  hub.publish(volts(t0_ + 1000, 260));
  ASSERT_TRUE(eventually([&] { return listed(*store_, true).size() == 1; }));
  auto active = listed(*store_, true);
  EXPECT_EQ(active[0].kind, "over_voltage");
  EXPECT_EQ(active[0].raised_at, t0_ + 1000);
  EXPECT_EQ(active[0].raised_value, 260);
  ASSERT_TRUE(eventually([&] { return watcher->got().size() == 1; }));
  EXPECT_NE(watcher->got()[0].find(R"("event":"raised")"), std::string::npos);

  hub.publish(volts(t0_ + 2000, 251));  // within the hysteresis: nothing
  hub.publish(volts(t0_ + 500, 200));   // late: not evaluated
  hub.publish(volts(t0_ + 3000, 249));
  ASSERT_TRUE(eventually([&] { return listed(*store_, false).size() == 1; }));
  EXPECT_TRUE(listed(*store_, true).empty());
  auto cleared = listed(*store_, false)[0];
  EXPECT_EQ(cleared.id, active[0].id);
  EXPECT_EQ(cleared.cleared_at, t0_ + 3000);
  EXPECT_EQ(cleared.cleared_value, 249);
  ASSERT_TRUE(eventually([&] { return watcher->got().size() == 2; }));
  EXPECT_NE(watcher->got()[1].find(R"("event":"cleared")"), std::string::npos);
  eng->stop();
  EXPECT_EQ(eng->stats().raised, 1u);
  EXPECT_EQ(eng->stats().cleared, 1u);
  EXPECT_EQ(eng->stats().late, 1u);
}

TEST_F(AlertEngineTest, ActiveAlertsAndRulesSurviveARestart) {
  std::int64_t id = 0;
  {
    hub::Hub hub;
    auto eng = engine(hub);
    ASSERT_TRUE(eng->put_rules("m1", rules(R"({"rules":[{"kind":"over_current","threshold":10}]})"))
                    .value());
    core::Reading r = volts(t0_, 230);
    r.current = 20;
    hub.publish(r);
    ASSERT_TRUE(eventually([&] { return listed(*store_, true).size() == 1; }));
    id = listed(*store_, true)[0].id;
  }
  hub::Hub hub;
  auto eng = engine(hub);  // loads the rule and the active alert
  core::Reading r = volts(t0_ + 1000, 230);
  r.current = 25;
  hub.publish(r);  // still over: no second alert
  r.ts += 1000;
  r.current = 5;
  hub.publish(r);
  ASSERT_TRUE(eventually([&] { return listed(*store_, false).size() == 1; }));
  EXPECT_EQ(listed(*store_, false)[0].id, id);
  EXPECT_EQ(listed(*store_, std::nullopt).size(), 1u);
}

TEST_F(AlertEngineTest, OfflineRaisedByTickClearedByReading) {
  hub::Hub hub;
  auto eng = engine(hub);
  ASSERT_TRUE(eng->put_rules("m1", rules(R"({"rules":[{"kind":"offline","after_s":1}]})")).value());
  ASSERT_TRUE(eventually([&] { return listed(*store_, true).size() == 1; }));
  EXPECT_EQ(listed(*store_, true)[0].kind, "offline");
  hub.publish(volts(t0_, 230));
  ASSERT_TRUE(eventually([&] { return listed(*store_, false).size() == 1; }));
}

TEST_F(AlertEngineTest, RemovingARuleClearsItsAlert) {
  hub::Hub hub;
  auto eng = engine(hub);
  ASSERT_TRUE(eng->put_rules("m1", rules(R"({"rules":[{"kind":"under_voltage","threshold":207}]})"))
                  .value());
  hub.publish(volts(t0_, 190));
  ASSERT_TRUE(eventually([&] { return listed(*store_, true).size() == 1; }));
  ASSERT_TRUE(eng->put_rules("m1", {}).value());
  ASSERT_TRUE(eventually([&] { return listed(*store_, false).size() == 1; }));
  EXPECT_EQ(listed(*store_, false)[0].clear_message, "rule removed");
  EXPECT_EQ(store_->alert_rules("m1").value(), std::optional<std::string>(R"({"rules":[]})"));
}

// Cluster mode (several nodes on one database): a passive engine evaluates
// nothing and stores rules only; once active it reloads rules (also those
// another node stored) and active alerts from the store and evaluates; it
// picks up rule changes made behind its back on its rules poll.
TEST(AlertEngineCluster, PassiveEvaluatesNothingActiveReloadsAndEvaluates) {
  meterhub::testing::TempDir dir;
  auto store = meterhub::testing::open_store(dir.file("c.db"));
  ASSERT_TRUE(store);
  const core::TimeMs t0 = core::now_ms();
  ASSERT_TRUE(store->create_meter({"m1", "", "", std::nullopt}, std::nullopt, t0).value());
  hub::Hub hub;
  EngineOptions o;
  o.tick = std::chrono::milliseconds(20);
  o.rules_poll = std::chrono::milliseconds(50);
  Engine eng(*store, hub, nullptr, o);
  eng.set_cluster();
  ASSERT_TRUE(eng.load());
  eng.start();
  EXPECT_FALSE(eng.active());
  const auto under =
      rules(R"({"rules":[{"kind":"under_voltage","threshold":207,"hysteresis":3}]})");
  ASSERT_TRUE(eng.put_rules("m1", under).value());
  hub.publish(volts(t0, 190));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(listed(*store, std::nullopt).empty()) << "a passive engine raised an alert";
  EXPECT_EQ(eng.stats().readings, 0u);

  eng.set_active(true);
  ASSERT_TRUE(eventually([&] { return eng.active(); }));
  hub.publish(volts(t0 + 1000, 190));
  ASSERT_TRUE(eventually([&] { return listed(*store, true).size() == 1; }));

  // Another node removes the rule (straight in the store): the poll applies it.
  ASSERT_TRUE(store->set_alert_rules("m1", codec::encode_alert_rules({}), t0).value());
  ASSERT_TRUE(eventually([&] { return listed(*store, true).empty(); }));
  EXPECT_EQ(listed(*store, false).size(), 1u);

  eng.set_active(false);
  ASSERT_TRUE(eventually([&] { return !eng.active(); }));
  eng.stop();
}

}  // namespace
}  // namespace meterhub::alerts
