#include "core/validate.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "core/time.hpp"

namespace meterhub::core {
namespace {

std::string num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// A ts for a message: ISO-8601 when it has a 4-digit year, else raw ms.
std::string describe_ts(TimeMs ts) {
  constexpr TimeMs kYear10000 = 253402300800000;
  if (ts < -62167219200000 || ts >= kYear10000) return std::to_string(ts) + " ms since the epoch";
  return format_iso8601(ts);
}

Error field_error(std::string_view field, std::string message) {
  return Error{"invalid_reading", std::move(message), std::nullopt, std::string(field)};
}

}  // namespace

std::optional<Error> check_meter_id(std::string_view id) {
  if (id.empty() || id.size() > kMeterIdMaxLen)
    return field_error("meter_id", "meter_id must be 1 to 64 characters long");
  for (unsigned char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) {
      constexpr char kHex[] = "0123456789abcdef";
      const char hex[] = {kHex[c >> 4], kHex[c & 15], '\0'};
      std::string msg = "meter_id may only contain A-Z a-z 0-9 _ . : - (got a byte 0x";
      msg += hex;
      msg += ')';
      return field_error("meter_id", std::move(msg));
    }
  }
  if (id == "." || id == "..") return field_error("meter_id", "meter_id must not be '.' or '..'");
  return std::nullopt;
}

std::optional<Error> check_field(const FieldRange& range, double v) {
  if (!std::isfinite(v))
    return field_error(range.name, std::string(range.name) + " must be a finite number");
  if (v < range.min || v > range.max) {
    std::string unit = range.unit.empty() ? "" : " " + std::string(range.unit);
    return field_error(range.name, std::string(range.name) + " " + num(v) + " is out of range [" +
                                       num(range.min) + ", " + num(range.max) + "]" + unit);
  }
  return std::nullopt;
}

std::optional<Error> check_reading(const Reading& r, TimeMs now, TimeMs future_tolerance_ms) {
  if (auto e = check_meter_id(r.meter_id)) return e;
  if (auto e = check_field(kVoltage, r.voltage)) return e;
  if (auto e = check_field(kCurrent, r.current)) return e;
  if (auto e = check_field(kPower, r.power)) return e;
  if (auto e = check_field(kEnergy, r.energy)) return e;
  if (r.frequency)
    if (auto e = check_field(kFrequency, *r.frequency)) return e;
  if (r.power_factor)
    if (auto e = check_field(kPowerFactor, *r.power_factor)) return e;
  if (r.ts < kOldestTs)
    return field_error("ts", "ts " + describe_ts(r.ts) +
                                 " is before 2000-01-01T00:00:00Z (device clock not set?)");
  if (r.ts > now + future_tolerance_ms)
    return field_error("ts", "ts " + describe_ts(r.ts) + " is more than " +
                                 std::to_string(future_tolerance_ms / 1000) +
                                 " s in the future (server time " + format_iso8601(now) + ")");
  return std::nullopt;
}

}  // namespace meterhub::core
