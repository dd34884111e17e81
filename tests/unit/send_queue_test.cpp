#include "hub/send_queue.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace meterhub::hub {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;

MessagePtr msg(const std::string& meter, core::TimeMs ts) {
  return make_message(reading(meter, ts));
}

std::vector<std::pair<std::string, core::TimeMs>> drain(SendQueue& q) {
  std::vector<std::pair<std::string, core::TimeMs>> out;
  if (q.empty()) return out;
  do {
    out.emplace_back(q.front()->meter_id, q.front()->ts);
  } while (q.pop());
  return out;
}

TEST(SendQueue, FirstPushStartsSendingOthersWait) {
  SendQueue q(4);
  EXPECT_TRUE(q.push(msg("m", kT0)));
  EXPECT_TRUE(q.in_flight());
  EXPECT_FALSE(q.push(msg("m", kT0 + 1)));
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_TRUE(q.pop());  // next one goes
  EXPECT_EQ(q.front()->ts, kT0 + 1);
  EXPECT_FALSE(q.pop());
  EXPECT_FALSE(q.in_flight());
  EXPECT_TRUE(q.push(msg("m", kT0 + 2)));  // idle again: send at once
}

TEST(SendQueue, FullQueueCollapsesToNewestPerMeter) {
  SendQueue q(3);
  q.push(msg("m", kT0));  // in flight, never touched
  q.push(msg("m", kT0 + 1));
  q.push(msg("m", kT0 + 3));
  q.push(msg("m", kT0 + 2));
  EXPECT_EQ(q.waiting(), 3u);
  q.push(msg("m", kT0 + 4));  // 4 waiting > 3: collapse
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_EQ(q.coalesced(), 3u);
  auto sent = drain(q);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].second, kT0);      // the in-flight one
  EXPECT_EQ(sent[1].second, kT0 + 4);  // newest by ts
}

TEST(SendQueue, CollapseKeepsNewestByTsNotLastArrived) {
  SendQueue q(1);
  q.push(msg("m", kT0));
  q.push(msg("m", kT0 + 10));
  q.push(msg("m", kT0 + 5));  // late reading arrives last
  auto sent = drain(q);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].second, kT0 + 10);
}

TEST(SendQueue, CollapseIsPerMeter) {
  SendQueue q(3);
  q.push(msg("a", kT0));
  q.push(msg("a", kT0 + 1));
  q.push(msg("b", kT0 + 1));
  q.push(msg("a", kT0 + 2));
  q.push(msg("c", kT0 + 1));  // overflow
  auto sent = drain(q);
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[1], (std::pair<std::string, core::TimeMs>{"b", kT0 + 1}));
  EXPECT_EQ(sent[2], (std::pair<std::string, core::TimeMs>{"a", kT0 + 2}));
  EXPECT_EQ(sent[3], (std::pair<std::string, core::TimeMs>{"c", kT0 + 1}));
}

TEST(SendQueue, MemoryStaysBoundedUnderAFlood) {
  SendQueue q(8);
  q.push(msg("m0", kT0));
  for (int i = 1; i < 100000; ++i) {
    q.push(msg("m" + std::to_string(i % 5), kT0 + i));
    ASSERT_LE(q.waiting(), 8u);
  }
  auto sent = drain(q);
  EXPECT_LE(sent.size(), 9u);
  // every meter's newest reading survived
  for (int m = 0; m < 5; ++m) {
    core::TimeMs newest = 0;
    for (auto& [id, ts] : sent)
      if (id == "m" + std::to_string(m)) newest = std::max(newest, ts);
    EXPECT_GE(newest, kT0 + 100000 - 5) << m;
  }
}

TEST(SendQueue, LongRunsStayInOrderAcrossCompaction) {
  SendQueue q(1024);
  core::TimeMs next_sent = kT0;
  core::TimeMs next_pushed = kT0;
  // Interleave pushes and pops so the head moves far and the buffer compacts.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 30; ++i) q.push(msg("m", next_pushed++));
    for (int i = 0; i < 20 && !q.empty(); ++i) {
      ASSERT_EQ(q.front()->ts, next_sent++);
      q.pop();
    }
  }
  while (!q.empty()) {
    ASSERT_EQ(q.front()->ts, next_sent++);
    q.pop();
  }
  EXPECT_EQ(next_sent, next_pushed);
  EXPECT_EQ(q.coalesced(), 0u);
  EXPECT_FALSE(q.in_flight());
}

TEST(SendQueue, ClearWaitingKeepsInFlight) {
  SendQueue q(4);
  q.push(msg("m", kT0));
  q.push(msg("m", kT0 + 1));
  q.clear_waiting();
  EXPECT_TRUE(q.in_flight());
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_FALSE(q.pop());
}

}  // namespace
}  // namespace meterhub::hub
