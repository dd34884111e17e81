// What a valid reading is. The ranges below are the documented contract
// (docs/api.md, "Readings and units"); change them only together with that page.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::core {

inline constexpr std::size_t kMeterIdMaxLen = 64;

struct FieldRange {
  std::string_view name;
  double min;
  double max;
  std::string_view unit;
};

inline constexpr FieldRange kVoltage{"voltage", 0.0, 1000.0, "V"};
inline constexpr FieldRange kCurrent{"current", -10000.0, 10000.0, "A"};
inline constexpr FieldRange kPower{"power", -10e6, 10e6, "W"};
inline constexpr FieldRange kEnergy{"energy", 0.0, 1e12, "kWh"};
inline constexpr FieldRange kFrequency{"frequency", 0.0, 1000.0, "Hz"};
inline constexpr FieldRange kPowerFactor{"power_factor", 0.0, 1.0, ""};

// Oldest accepted reading time: 2000-01-01T00:00:00Z. An ESP32 whose clock was
// never set by NTP reports 1970; that is a device bug, not a reading.
inline constexpr TimeMs kOldestTs = 946684800000;

// meter_id: 1..64 characters of A-Z a-z 0-9 _ . : - and not "." or ".." (so an
// id is always safe as a path segment).
std::optional<Error> check_meter_id(std::string_view id);

// One field value against its range; finite numbers only.
std::optional<Error> check_field(const FieldRange& range, double value);

// Whole reading: id, every field, and ts within [kOldestTs, now + future_tolerance].
std::optional<Error> check_reading(const Reading& r, TimeMs now, TimeMs future_tolerance_ms);

}  // namespace meterhub::core
