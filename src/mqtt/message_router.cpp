#include "mqtt/message_router.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>

#include "codec/formats.hpp"
#include "core/validate.hpp"

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
  if (n >= 3 && levels[n - 2] == "events" && last == "rpc")
    return notify(levels[n - 3], payload, opts);
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

void MessageRouter::remember(std::map<std::string, std::string, std::less<>>& cache,
                             std::string key, std::string payload) {
  if (cache.size() >= kMaxEnergyStatus && !cache.contains(key)) cache.erase(cache.begin());
  cache[std::move(key)] = std::move(payload);
}

core::Result<Routed> MessageRouter::shelly(std::string_view device, std::string_view component,
                                           std::string_view payload,
                                           const codec::DecodeOptions& opts) {
  auto colon = component.find(':');
  if (colon == std::string_view::npos) return Routed{};  // sys, wifi, cloud, ...: not a meter
  const std::string_view type = component.substr(0, colon);
  std::string key = std::string(device) + "/" + std::string(component);
  if (payload.size() > 64 * 1024)
    return core::fail("payload_too_large", "a Shelly component status over 64 KiB");
  if (type == "em1data" || type == "emdata") {
    remember(energy_status_, std::move(key), std::string(payload));
    return Routed{};
  }
  if (type != "switch" && type != "em1" && type != "em") return Routed{};  // input:N, ...
  auto r = shelly_readings(device, component, payload, opts);
  if (!r) return r;
  // Valid (or waiting for its energy counter): the base of later deltas.
  remember(full_status_, std::move(key), std::string(payload));
  return r;
}

core::Result<Routed> MessageRouter::shelly_readings(std::string_view device,
                                                    std::string_view component,
                                                    std::string_view payload,
                                                    const codec::DecodeOptions& opts) {
  auto colon = component.find(':');
  const std::string_view type = component.substr(0, colon), index = component.substr(colon + 1);
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

core::Result<Routed> MessageRouter::notify(std::string_view device, std::string_view payload,
                                           const codec::DecodeOptions& opts) {
  namespace json = boost::json;
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object())
    return core::fail("malformed_json", "a Shelly RPC notification must be a JSON object");
  const json::object& o = v.get_object();
  const json::value* method = o.if_contains("method");
  if (!method || !method->is_string() || method->get_string() != "NotifyStatus")
    return Routed{};  // NotifyEvent, NotifyFullStatus, RPC responses, ...: not a delta
  const json::value* params = o.if_contains("params");
  if (!params || !params->is_object())
    return core::fail("malformed_json", "NotifyStatus without a \"params\" object");
  const json::object& p = params->get_object();

  codec::DecodeOptions at = opts;
  if (const json::value* ts = p.if_contains("ts"); ts && !ts->is_null()) {
    if (!ts->is_number())
      return core::fail("invalid_reading", "NotifyStatus params.ts must be a number (seconds)");
    const double sec = ts->to_number<double>();
    const double ms = std::round(sec * 1000);
    if (!std::isfinite(ms) || ms < static_cast<double>(core::kOldestTs) ||
        ms > static_cast<double>(opts.now + opts.future_tolerance_ms))
      return core::fail("invalid_reading",
                        "NotifyStatus params.ts is before 2000 or in the future");
    at.now = static_cast<core::TimeMs>(ms);
  }

  Routed out;
  out.kind = Routed::Kind::readings;
  // Energy counters first, so an em1:N / em:N delta of the same message uses them.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [k, delta] : p) {
      const std::string_view component(k.data(), k.size());
      auto colon = component.find(':');
      if (colon == std::string_view::npos || !delta.is_object()) continue;  // ts, sys, ...
      const std::string_view type = component.substr(0, colon);
      const bool energy = type == "em1data" || type == "emdata";
      const bool meter = type == "switch" || type == "em1" || type == "em";
      if (pass == 0 ? !energy : !meter) continue;
      std::string key = std::string(device) + "/" + std::string(component);
      auto& cache = energy ? energy_status_ : full_status_;
      auto base = cache.find(key);
      if (base == cache.end()) {
        ++out.no_base;  // no full status to apply the delta to yet
        continue;
      }
      auto merged = codec::merge_shelly_status(base->second, json::serialize(delta));
      if (!merged) return std::unexpected(merged.error());
      if (merged->size() > 64 * 1024)
        return core::fail("payload_too_large", "a Shelly component status over 64 KiB");
      if (meter) {
        auto r = shelly_readings(device, component, *merged, at);
        if (!r) return r;
        for (auto& x : r->readings) out.readings.push_back(std::move(x));
      }
      base->second = std::move(*merged);
    }
  }
  return out;
}

}  // namespace meterhub::mqtt
