// What the MQTT ingest needs to know: the broker (from an mqtt:// or mqtts://
// URL), the topic filters to subscribe to, the session settings, and the
// limits and trust rules for what arrives. Parsed by app/config.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::mqtt {

struct Broker {
  std::string host;
  std::uint16_t port = 1883;
  std::string username, password;  // empty username: no credentials
  bool tls = false;                // mqtts://
};

// "mqtt://[user[:pass]@]host[:port]" (port 1883) or "mqtts://…" (port 8883).
// user and pass may be percent-encoded. IPv6 hosts go in brackets.
core::Result<Broker> parse_broker_url(std::string_view url);

// The topic filters subscribed when none are given. docs/mqtt.md explains them.
std::vector<std::string> default_topics();

struct MqttOptions {
  Broker broker;
  std::vector<std::string> topics = default_topics();
  std::string client_id;  // empty: "meterhub-<hostname>"
  std::string cafile;     // mqtts://: CA certificates (PEM); empty: the system's
  std::chrono::seconds keepalive{30};
  unsigned reconnect_min_s = 1, reconnect_max_s = 60;  // exponential backoff
  // Readings for meters that are not registered create them (--auto-register);
  // otherwise such a message is counted and dropped.
  bool create_meters = false;
  std::size_t max_payload = 1 << 20;  // bytes; larger messages are skipped
  std::size_t max_readings = 5000;    // per message
  core::TimeMs future_tolerance_ms = 300'000;
  std::string timezone = "UTC";  // Tasmota's "Time" is local time in this zone
};

}  // namespace meterhub::mqtt
