// Alert messages on a slow WebSocket (hub/send_queue): readings and status of
// a meter collapse to the newest, alert messages are never coalesced away,
// and they keep their order. And Hub::notify reaches the meter's watchers and
// "*" watchers only.
#include <gtest/gtest.h>

#include "hub/hub.hpp"
#include "hub/send_queue.hpp"
#include "test_util.hpp"

namespace meterhub::hub {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;

MessagePtr alert(const std::string& meter, int n) {
  return make_event(MessageKind::alert, meter,
                    "{\"type\":\"alert\",\"n\":" + std::to_string(n) + "}");
}

TEST(AlertSendQueue, AlertsSurviveCoalescing) {
  SendQueue q(2);
  ASSERT_TRUE(q.push(make_message(reading("m", kT0))));  // in flight
  for (int i = 0; i < 5; ++i) {
    q.push(alert("m", i));
    q.push(make_message(reading("m", kT0 + 1 + i)));
  }
  std::vector<std::string> alerts;
  std::vector<core::TimeMs> readings;
  while (q.pop()) {
    if (q.front()->kind == MessageKind::alert)
      alerts.push_back(q.front()->tagged);
    else
      readings.push_back(q.front()->ts);
  }
  ASSERT_EQ(alerts.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(alerts[i], "{\"type\":\"alert\",\"n\":" + std::to_string(i) + "}");
  EXPECT_EQ(readings, std::vector<core::TimeMs>{kT0 + 5}) << "readings collapsed to the newest";
  EXPECT_GT(q.coalesced(), 0u);
}

class Recorder : public Subscriber {
 public:
  void deliver(MessagePtr m) override { got.push_back(std::move(m)); }
  std::vector<MessagePtr> got;
};

TEST(AlertSendQueue, NotifyReachesTheMetersWatchersAndAllWatchers) {
  Hub hub;
  auto mine = std::make_shared<Recorder>();
  auto other = std::make_shared<Recorder>();
  auto all = std::make_shared<Recorder>();
  const std::string m1[] = {"m1"}, m2[] = {"m2"};
  hub.watch(m1, mine);
  hub.watch(m2, other);
  hub.watch_all(all);
  Hub::deliver(hub.notify("m1", alert("m1", 1)));
  Hub::deliver(hub.notify("never-seen", alert("never-seen", 2)));
  ASSERT_EQ(mine->got.size(), 1u);
  EXPECT_EQ(mine->got[0]->kind, MessageKind::alert);
  EXPECT_TRUE(other->got.empty());
  EXPECT_EQ(all->got.size(), 2u);
  EXPECT_FALSE(hub.latest("never-seen")) << "notify creates no meter";
}

}  // namespace
}  // namespace meterhub::hub
