#include "hub/hub.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "core/time.hpp"
#include "test_util.hpp"

namespace meterhub::hub {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;

class Recorder : public Subscriber {
 public:
  void deliver(MessagePtr m) override {
    std::lock_guard lk(mu);
    got.push_back(std::move(m));
  }
  std::vector<core::TimeMs> times() {
    std::lock_guard lk(mu);
    std::vector<core::TimeMs> t;
    for (auto& m : got)
      if (m->kind == MessageKind::reading) t.push_back(m->ts);  // as /ws/{meter_id} does
    return t;
  }
  // Every message in its multiplexed form, in order.
  std::vector<std::string> tagged() {
    std::lock_guard lk(mu);
    std::vector<std::string> t;
    for (auto& m : got) t.push_back(m->tagged);
    return t;
  }
  std::mutex mu;
  std::vector<MessagePtr> got;
};

TEST(Hub, NewSubscriberGetsLatestThenLive) {
  Hub hub;
  hub.publish(reading("m1", kT0 + 1));
  hub.publish(reading("m1", kT0 + 2));
  auto s = std::make_shared<Recorder>();
  hub.subscribe("m1", s);
  hub.publish(reading("m1", kT0 + 3));
  EXPECT_EQ(s->times(), (std::vector<core::TimeMs>{kT0 + 2, kT0 + 3}));
  EXPECT_NE(s->got[0]->json.find("\"meter_id\":\"m1\""), std::string::npos);
}

TEST(Hub, NothingOnConnectForAMeterWithoutReadings) {
  Hub hub;
  auto s = std::make_shared<Recorder>();
  hub.subscribe("m1", s);
  EXPECT_TRUE(s->times().empty());
  hub.publish(reading("m1", kT0));
  EXPECT_EQ(s->times().size(), 1u);
}

TEST(Hub, LatestIsNewestTsNotLastPublished) {
  Hub hub;
  hub.publish(reading("m1", kT0 + 10));
  auto early = std::make_shared<Recorder>();
  hub.subscribe("m1", early);
  hub.publish(reading("m1", kT0 + 5));  // late reading: still delivered live...
  EXPECT_EQ(early->times(), (std::vector<core::TimeMs>{kT0 + 10, kT0 + 5}));
  auto late = std::make_shared<Recorder>();  // ...but does not become "latest"
  hub.subscribe("m1", late);
  EXPECT_EQ(late->times(), (std::vector<core::TimeMs>{kT0 + 10}));
  EXPECT_EQ(hub.latest("m1")->ts, kT0 + 10);
}

TEST(Hub, MetersDoNotCross) {
  Hub hub;
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  hub.subscribe("a", a);
  hub.subscribe("b", b);
  hub.publish(reading("a", kT0));
  hub.publish(reading("b", kT0 + 1));
  hub.publish(reading("a", kT0 + 2));
  EXPECT_EQ(a->times(), (std::vector<core::TimeMs>{kT0, kT0 + 2}));
  EXPECT_EQ(b->times(), (std::vector<core::TimeMs>{kT0 + 1}));
}

TEST(Hub, OneEncodingSharedByAllSubscribers) {
  Hub hub;
  std::vector<std::shared_ptr<Recorder>> subs;
  for (int i = 0; i < 10; ++i) {
    subs.push_back(std::make_shared<Recorder>());
    hub.subscribe("m", subs.back());
  }
  hub.publish(reading("m", kT0));
  for (auto& s : subs) EXPECT_EQ(s->got.at(0).get(), subs[0]->got.at(0).get());
}

TEST(Hub, UnsubscribeAndDestroyedSubscribersAreDropped) {
  Hub hub;
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  hub.subscribe("m", a);
  hub.subscribe("m", b);
  EXPECT_EQ(hub.subscriber_count(), 2u);
  hub.unsubscribe("m", a.get());
  b.reset();  // gone without unsubscribing
  hub.publish(reading("m", kT0));
  EXPECT_TRUE(a->times().empty());
  EXPECT_EQ(hub.subscriber_count(), 0u);
}

TEST(Hub, StageThenDeliverGivesEachSubscriberTheReadingOnce) {
  Hub hub;
  hub.publish(reading("m", kT0));
  auto before = std::make_shared<Recorder>();
  hub.subscribe("m", before);
  Fanout f = hub.stage(reading("m", kT0 + 1));
  EXPECT_EQ(hub.latest("m")->ts, kT0 + 1);  // visible as latest at once
  auto between = std::make_shared<Recorder>();
  hub.subscribe("m", between);  // joins after stage, before deliver
  Hub::deliver(std::move(f));
  EXPECT_EQ(before->times(), (std::vector<core::TimeMs>{kT0, kT0 + 1}));
  EXPECT_EQ(between->times(), (std::vector<core::TimeMs>{kT0 + 1}));  // once, as latest
}

TEST(Hub, WatchAllGetsASnapshotThenEventsAndReadingsOfEveryMeter) {
  Hub hub;
  hub.publish(reading("b", kT0));
  hub.publish(reading("a", kT0 + 5));
  auto s = std::make_shared<Recorder>();
  auto snap = hub.watch_all(s);
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].meter_id, "a");  // sorted
  EXPECT_EQ(snap[0].latest->ts, kT0 + 5);
  EXPECT_TRUE(snap[0].online);
  EXPECT_TRUE(s->got.empty());  // the snapshot is returned, not delivered
  hub.publish(reading("c", kT0 + 1));  // a new meter
  hub.publish(reading("a", kT0 + 6));
  auto t = s->tagged();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0], R"({"type":"meter","event":"created","meter_id":"c"})");
  EXPECT_EQ(t[1], R"({"type":"status","meter_id":"c","online":true})");
  EXPECT_EQ(t[2].rfind(R"({"type":"reading","reading":{"meter_id":"c",)", 0), 0u) << t[2];
  EXPECT_EQ(t[3].rfind(R"({"type":"reading","reading":{"meter_id":"a",)", 0), 0u) << t[3];
  hub.unwatch_all(s.get());
  hub.publish(reading("a", kT0 + 7));
  EXPECT_EQ(s->tagged().size(), 4u);
  EXPECT_EQ(hub.subscriber_count(), 0u);
}

TEST(Hub, WatchReturnsStateOfNamedMetersKnownOrNot) {
  Hub hub;
  hub.publish(reading("a", kT0));
  auto s = std::make_shared<Recorder>();
  const std::string ids[] = {"a", "later"};
  auto snap = hub.watch(ids, s);
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_TRUE(snap[0].latest);
  EXPECT_FALSE(snap[1].latest);
  EXPECT_FALSE(snap[1].online);
  hub.publish(reading("later", kT0 + 1));  // created, online, reading
  hub.publish(reading("other", kT0 + 1));  // not watched
  EXPECT_EQ(s->tagged().size(), 3u);
  EXPECT_EQ(s->times(), (std::vector<core::TimeMs>{kT0 + 1}));
}

TEST(Hub, SweepMarksSilentMetersOfflineOnceAndReadingsBringThemBack) {
  HubOptions o;
  o.offline_after = std::chrono::milliseconds(1000);
  Hub hub(o);
  auto s = std::make_shared<Recorder>();
  hub.watch_all(s);
  hub.publish(reading("m", kT0));
  EXPECT_TRUE(hub.online("m"));
  const core::TimeMs now = core::now_ms();
  EXPECT_TRUE(hub.sweep(now).empty());  // just arrived
  auto events = hub.sweep(now + 2000);
  ASSERT_EQ(events.size(), 1u);
  for (auto& f : events) Hub::deliver(std::move(f));
  EXPECT_FALSE(hub.online("m"));
  EXPECT_TRUE(hub.sweep(now + 3000).empty());  // reported once
  hub.publish(reading("m", kT0 + 1));
  auto t = s->tagged();
  ASSERT_EQ(t.size(), 6u);  // created, online, reading, offline, online, reading
  EXPECT_EQ(t[3], R"({"type":"status","meter_id":"m","online":false})");
  EXPECT_EQ(t[4], R"({"type":"status","meter_id":"m","online":true})");
}

TEST(Hub, OfflineAfterThreeUsualIntervalsOr60sUntilKnown) {
  Hub hub;
  hub.publish(reading("m", kT0));
  const core::TimeMs now = core::now_ms();
  EXPECT_TRUE(hub.sweep(now + 59'000).empty());  // interval unknown: 60 s
  EXPECT_EQ(hub.sweep(now + 61'000).size(), 0u);  // offline, but nobody to tell
  EXPECT_FALSE(hub.online("m"));
}

TEST(Hub, SetOnlineFollowsPresenceForTheMeterAndItsChannelsOnly) {
  HubOptions o;
  o.offline_after = std::chrono::milliseconds(1000);
  Hub hub(o);
  auto s = std::make_shared<Recorder>();
  auto one = std::make_shared<Recorder>();
  hub.watch_all(s);
  const std::string ids[] = {"pow:2"};
  hub.watch(ids, one);
  hub.publish(reading("pow", kT0));
  hub.publish(reading("pow:1", kT0));
  hub.publish(reading("pow:2", kT0));
  hub.publish(reading("power", kT0));  // another device: "pow" is not its prefix
  const std::size_t before = s->tagged().size();
  const core::TimeMs now = core::now_ms();
  auto off = hub.set_online("pow", false, now);
  ASSERT_EQ(off.size(), 3u);  // one per meter whose state changed
  for (auto& f : off) Hub::deliver(std::move(f));
  EXPECT_FALSE(hub.online("pow"));
  EXPECT_FALSE(hub.online("pow:1"));
  EXPECT_FALSE(hub.online("pow:2"));
  EXPECT_TRUE(hub.online("power"));
  auto t = s->tagged();
  ASSERT_EQ(t.size(), before + 3);
  EXPECT_NE(std::find(t.begin(), t.end(), R"({"type":"status","meter_id":"pow","online":false})"),
            t.end());
  // A watcher of one channel hears about that channel only.
  auto t1 = one->tagged();
  EXPECT_EQ(t1.back(), R"({"type":"status","meter_id":"pow:2","online":false})");
  const std::size_t one_before = t1.size();
  EXPECT_TRUE(hub.set_online("pow", false, now).empty());  // no change, no event
  // "power" only: the pow meters are offline already.
  EXPECT_EQ(hub.sweep(now + 5000).size(), 1u);

  // Online: back online, and not swept offline again right away although the
  // last reading is old.
  auto on = hub.set_online("pow", true, now + 10'000);
  ASSERT_EQ(on.size(), 3u);
  for (auto& f : on) Hub::deliver(std::move(f));
  EXPECT_TRUE(hub.online("pow"));
  EXPECT_EQ(one->tagged().size(), one_before + 1);
  EXPECT_EQ(one->tagged().back(), R"({"type":"status","meter_id":"pow:2","online":true})");
  EXPECT_TRUE(hub.sweep(now + 10'500).empty());
  EXPECT_EQ(hub.sweep(now + 12'000).size(), 3u);  // no readings since: offline again
}

TEST(Hub, SetOnlineIgnoresMetersWithoutAnEntry) {
  Hub hub;
  auto s = std::make_shared<Recorder>();
  hub.watch_all(s);
  EXPECT_TRUE(hub.set_online("ghost", true, core::now_ms()).empty());
  EXPECT_FALSE(hub.online("ghost"));
  EXPECT_TRUE(hub.states_all().empty());
  EXPECT_TRUE(s->got.empty());
}

TEST(Hub, PrimeFillsLatestWithoutDelivering) {
  Hub hub;
  auto s = std::make_shared<Recorder>();
  hub.subscribe("m", s);
  hub.prime(reading("m", kT0));
  EXPECT_TRUE(s->times().empty());
  auto t = std::make_shared<Recorder>();
  hub.subscribe("m", t);
  EXPECT_EQ(t->times(), (std::vector<core::TimeMs>{kT0}));
}

// Subscribing concurrently with publishing never loses or doubles a reading:
// each subscriber sees a gap-free suffix of the sequence.
TEST(Hub, SubscribeRacingPublishSeesGapFreeSuffix) {
  Hub hub;
  constexpr int kN = 20000;
  std::vector<std::shared_ptr<Recorder>> subs(50);
  std::thread pub([&] {
    for (int i = 0; i < kN; ++i) hub.publish(reading("m", kT0 + i));
  });
  for (auto& s : subs) {
    s = std::make_shared<Recorder>();
    hub.subscribe("m", s);
    std::this_thread::yield();
  }
  pub.join();
  for (auto& s : subs) {
    auto t = s->times();
    if (t.empty()) continue;
    EXPECT_EQ(t.back(), kT0 + kN - 1);
    for (std::size_t i = 1; i < t.size(); ++i) ASSERT_EQ(t[i], t[i - 1] + 1);
  }
}

}  // namespace
}  // namespace meterhub::hub
