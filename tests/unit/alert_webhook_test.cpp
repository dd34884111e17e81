// The alert webhook (src/alerts/webhook.hpp) against a loopback port that
// refuses connections: a transport error is retried with backoff up to
// max_attempts and then given up (counted); bodies beyond the bounded queue
// are dropped and counted; stop() gives up what still waits. (Delivery and
// the retry of 500s against a real HTTP server: tests/e2e/test_alerts.py.)
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "alerts/webhook.hpp"

namespace meterhub::alerts {
namespace {

// A loopback URL whose port was free a moment ago and is closed now.
std::string refused_url() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/hook";
}

bool eventually(const std::function<bool()>& cond) {
  for (int i = 0; i < 2000 && !cond(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return cond();
}

TEST(AlertWebhook, RetriesATransportErrorThenGivesUp) {
  WebhookOptions o;
  o.url = refused_url();
  o.max_attempts = 3;
  o.first_backoff = std::chrono::milliseconds(10);
  o.timeout = std::chrono::milliseconds(2000);
  Webhook w(o);
  w.start();
  ASSERT_TRUE(w.post(R"({"type":"alert"})"));
  ASSERT_TRUE(eventually([&] { return w.stats().failed == 1; }));
  const WebhookStats s = w.stats();
  EXPECT_EQ(s.retries, 2u) << "3 tries = 2 retries";
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(s.dropped, 0u);
  w.stop();
}

TEST(AlertWebhook, QueueIsBoundedAndOverflowIsCounted) {
  WebhookOptions o;
  o.url = refused_url();
  o.max_queue = 3;
  Webhook w(o);  // not started: nothing leaves the queue
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(w.post("{}"));
  EXPECT_FALSE(w.post("{}"));
  EXPECT_FALSE(w.post("{}"));
  EXPECT_EQ(w.stats().dropped, 2u);
  w.stop();
  EXPECT_EQ(w.stats().failed, 3u) << "stop() gives up what waits";
  EXPECT_FALSE(w.post("{}")) << "nothing is queued after stop()";
}

TEST(AlertWebhook, StopInterruptsABackoff) {
  WebhookOptions o;
  o.url = refused_url();
  o.first_backoff = std::chrono::hours(1);
  Webhook w(o);
  w.start();
  ASSERT_TRUE(w.post("{}"));
  ASSERT_TRUE(eventually([&] { return w.stats().retries == 1; }));
  w.stop();  // returns although the next try is an hour away
  EXPECT_EQ(w.stats().failed, 1u);
}

}  // namespace
}  // namespace meterhub::alerts
