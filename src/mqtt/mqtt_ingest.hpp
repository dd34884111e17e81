// MqttIngest: subscribes to an MQTT broker (libmosquitto) and feeds what
// arrives into the same path as POST /api/v1/readings: MessageRouter decodes
// and validates, Ingest::submit commits (group commit, idempotent, publish to
// the Hub after commit).
//
// Contract (docs/mqtt.md § Delivery guarantee):
//  - Persistent session: fixed client id, clean_session=false, QoS 1
//    subscriptions, so the broker queues messages while meterhub is away.
//  - libmosquitto 2.0.11 sends the PUBACK of a QoS 1 message BEFORE it calls
//    the message callback (measured, see docs/mqtt.md), and has no manual
//    acknowledgement. The callback therefore blocks until the message's
//    commit finished: at most ONE acknowledged message is uncommitted at any
//    time, and a crash can lose at most that one.
//  - A message that cannot be decoded, names another meter than its topic,
//    or is for an unregistered meter (without create_meters) is counted,
//    logged (at most a few lines per second) and dropped; it never stops the
//    client.
//  - Runs its own network thread around mosquitto_loop(): every failure
//    (broker down, connection lost, and also TLS, authentication or DNS
//    errors, on which libmosquitto's own loop thread would stop for good) is
//    logged (rate-limited) and retried with exponential backoff.
//    stop() must run before Ingest::stop().
#pragma once

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "mqtt/message_router.hpp"
#include "mqtt/mqtt_options.hpp"
#include "query/calendar.hpp"

struct mosquitto;
struct mosquitto_message;

namespace meterhub::mqtt {

struct MqttStats {
  std::uint64_t messages = 0;      // every message received
  std::uint64_t readings = 0;      // readings newly stored
  std::uint64_t duplicates = 0;    // readings already stored (redeliveries)
  std::uint64_t garbled = 0;       // payload could not be decoded / validated
  std::uint64_t mismatched = 0;    // meterhub/{id}/readings naming another meter
  std::uint64_t unregistered = 0;  // meter not registered (no --auto-register)
  std::uint64_t unknown_topic = 0;
  std::uint64_t no_base = 0;  // Shelly NotifyStatus deltas before any full status
  std::uint64_t dropped = 0;  // ingest refused (backlog, stopping) or commit failed
  std::uint64_t connects = 0;
  bool connected = false;  // CONNACK accepted since the last failure
};

class MqttIngest {
 public:
  // Fails (start-up error) when the options are unusable (time zone, TLS files).
  // `hub` gets the Tasmota LWT presence (Hub::set_online).
  static core::Result<std::unique_ptr<MqttIngest>> create(MqttOptions opts, ingest::Ingest& ingest,
                                                          hub::Hub& hub);
  ~MqttIngest();
  MqttIngest(const MqttIngest&) = delete;
  MqttIngest& operator=(const MqttIngest&) = delete;

  // Starts the network thread and the first (asynchronous) connect; a broker
  // that is down is retried, not an error.
  core::Result<void> start();
  // Disconnects and joins the network thread. The message being handled is
  // committed first.
  void stop();

  MqttStats stats() const;

 private:
  MqttIngest(MqttOptions opts, ingest::Ingest& ingest, hub::Hub& hub, query::TimeZone zone);

  static void on_connect(struct mosquitto*, void* self, int rc);
  static void on_subscribe(struct mosquitto*, void* self, int mid, int count, const int* granted);
  static void on_disconnect(struct mosquitto*, void* self, int rc);
  static void on_message(struct mosquitto*, void* self, const struct mosquitto_message* msg);
  void handle(std::string_view topic, std::string_view payload);
  // Rate-limited warning: at most kLogBurst lines, refilled kLogPerSecond.
  template <class... Args>
  void warn_limited(const char* fmt, Args&&... args);

  // The network thread: mosquitto_loop() until stop(), reconnecting with backoff.
  void run();

  MqttOptions opts_;
  ingest::Ingest& ingest_;
  hub::Hub& hub_;
  query::TimeZone zone_;
  MessageRouter router_;
  struct mosquitto* mosq_ = nullptr;
  bool started_ = false;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};  // CONNACK accepted since the last failure
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes a backoff wait at stop()

  std::mutex log_mu_;
  double log_tokens_ = 5;
  std::chrono::steady_clock::time_point log_refill_ = std::chrono::steady_clock::now();
  std::uint64_t log_suppressed_ = 0;

  std::atomic<std::uint64_t> messages_{0}, readings_{0}, duplicates_{0}, garbled_{0},
      mismatched_{0}, unregistered_{0}, unknown_topic_{0}, no_base_{0}, dropped_{0}, connects_{0};
};

}  // namespace meterhub::mqtt
