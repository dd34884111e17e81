#include "mqtt/message_router.hpp"

#include "codec/formats.hpp"

namespace meterhub::mqtt {
namespace {

std::vector<std::string_view> split_levels(std::string_view topic) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto slash = topic.find('/', start);
    out.push_back(topic.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

Routed readings(std::vector<core::Reading> rs) {
  Routed r;
  r.kind = Routed::Kind::readings;
  r.readings = std::move(rs);
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

core::Result<Routed> MessageRouter::route(std::string_view topic, std::string_view payload,
                                          const codec::DecodeOptions& opts) {
  auto levels = split_levels(topic);
  const std::size_t n = levels.size();
  if (n < 2) return core::fail("unknown_topic", "no meterhub, Tasmota or Shelly topic");
  const std::string_view last = levels[n - 1], device = levels[n - 2];

  if (n >= 3 && levels[n - 2] == "status") return shelly(levels[n - 3], last, payload, opts);
  if (last == "readings") {
    auto rs = codec::decode_readings(payload, opts);
    if (!rs) return std::unexpected(rs.error());
    for (const auto& r : *rs)
      if (r.meter_id != device)
        return core::fail("meter_mismatch", "a reading for meter '" + r.meter_id +
                                                "' arrived on the topic of meter '" +
                                                std::string(device) + "'");
    return readings(std::move(*rs));
  }
  if (last == "SENSOR") {
    auto rs = codec::decode_tasmota_sensor(device, payload, zone_, opts);
    if (!rs) return std::unexpected(rs.error());
    return readings(std::move(*rs));
  }
  if (last == "LWT") {
    auto p = trim(payload);
    if (p != "Online" && p != "Offline")
      return core::fail("malformed_payload", "a Tasmota LWT is Online or Offline");
    Routed r;
    r.kind = Routed::Kind::presence;
    r.device = std::string(device);
    r.online = p == "Online";
    return r;
  }
  return core::fail("unknown_topic", "no meterhub, Tasmota or Shelly topic");
}

core::Result<Routed> MessageRouter::shelly(std::string_view device, std::string_view component,
                                           std::string_view payload,
                                           const codec::DecodeOptions& opts) {
  auto colon = component.find(':');
  if (colon == std::string_view::npos) return Routed{};  // sys, wifi, cloud, ...: not a meter
  const std::string_view type = component.substr(0, colon), index = component.substr(colon + 1);
  std::string key = std::string(device) + "/" + std::string(component);
  if (type == "em1data" || type == "emdata") {
    if (payload.size() > 64 * 1024)
      return core::fail("payload_too_large", "a Shelly energy status over 64 KiB");
    if (energy_status_.size() >= kMaxEnergyStatus && !energy_status_.contains(key))
      energy_status_.erase(energy_status_.begin());
    energy_status_[key] = std::string(payload);
    return Routed{};
  }
  if (type != "switch" && type != "em1" && type != "em") return Routed{};  // input:N, ...
  // One meter per channel: "<device>" for channel 0, "<device>:<N>" beyond.
  std::string meter_id(device);
  if (index != "0") meter_id += ":" + std::string(index);
  std::optional<std::string_view> energy;
  if (type != "switch") {
    auto it = energy_status_.find(std::string(device) + "/" + std::string(type) +
                                  "data:" + std::string(index));
    if (it == energy_status_.end()) return Routed{};  // counter not seen yet: wait for it
    energy = it->second;
  }
  auto rs = codec::decode_shelly_status(meter_id, component, payload, energy, opts);
  if (!rs) return std::unexpected(rs.error());
  return readings(std::move(*rs));
}

}  // namespace meterhub::mqtt
