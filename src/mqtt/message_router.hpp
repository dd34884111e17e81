// MessageRouter: one MQTT message (topic + payload) -> meterhub readings, by
// the topic's shape (docs/mqtt.md § Topics):
//   <any>/<meter_id>/readings   the POST /api/v1/readings body; every reading
//                               must name <meter_id> (else "meter_mismatch")
//   <any>/<topic>/SENSOR        Tasmota telemetry, meter id <topic>
//   <any>/<topic>/LWT           Tasmota Online/Offline: an event, no reading
//   <prefix>/status/<comp>      Shelly Gen2 status: switch:N, em1:N, em:N
//                               (em1data:N / emdata:N are remembered for the
//                               energy counter of the next em1:N / em:N)
//   <prefix>/events/rpc         Shelly Gen2 NotifyStatus: a delta, merged onto
//                               the last full status of that component
//                               (remembered from <prefix>/status/<comp>);
//                               a delta without one is skipped (counted)
// Anything else is "unknown_topic". No I/O, no clock (the caller passes now).
// Not thread-safe: the MQTT client calls it from its one network thread.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "codec/reading_codec.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"
#include "query/calendar.hpp"

namespace meterhub::mqtt {

struct Routed {
  enum class Kind { readings, presence, ignored };
  Kind kind = Kind::ignored;
  std::vector<core::Reading> readings;  // Kind::readings
  std::string device;                   // Kind::presence: the Tasmota topic
  bool online = false;                  // Kind::presence
  std::size_t no_base = 0;              // NotifyStatus components without a full status yet
};

class MessageRouter {
 public:
  // `zone` must outlive the router (Tasmota's local "Time").
  explicit MessageRouter(const query::TimeZone& zone) : zone_(zone) {}

  // Error codes: "unknown_topic", "meter_mismatch", or the decoders' codes
  // ("malformed_json", "invalid_reading", ...).
  core::Result<Routed> route(std::string_view topic, std::string_view payload,
                             const codec::DecodeOptions& opts);

 private:
  core::Result<Routed> shelly(std::string_view device, std::string_view component,
                              std::string_view payload, const codec::DecodeOptions& opts);

  core::Result<Routed> notify(std::string_view device, std::string_view payload,
                              const codec::DecodeOptions& opts);
  // Readings of a full switch:N / em1:N / em:N status (em1/em: with the
  // remembered energy status; none yet = no readings).
  core::Result<Routed> shelly_readings(std::string_view device, std::string_view component,
                                       std::string_view payload, const codec::DecodeOptions& opts);
  static void remember(std::map<std::string, std::string, std::less<>>& cache, std::string key,
                       std::string payload);

  const query::TimeZone& zone_;
  // Latest em1data:N / emdata:N payload per "<device>/<component>"; bounded.
  std::map<std::string, std::string, std::less<>> energy_status_;
  // Latest full switch:N / em1:N / em:N status per "<device>/<component>",
  // the base NotifyStatus deltas are merged onto; bounded the same way.
  std::map<std::string, std::string, std::less<>> full_status_;
  static constexpr std::size_t kMaxEnergyStatus = 10'000;
};

}  // namespace meterhub::mqtt
