// The one reading type every module passes around. Units are fixed here and
// nowhere else (docs/api.md repeats them for clients):
//   voltage V, current A, power W (negative = export), energy kWh (cumulative
//   counter), frequency Hz, power_factor 0..1; ts = ms since the Unix epoch, UTC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace meterhub::core {

using TimeMs = std::int64_t;  // milliseconds since 1970-01-01T00:00:00Z

struct Reading {
  std::string meter_id;
  TimeMs ts = 0;
  double voltage = 0;
  double current = 0;
  double power = 0;
  double energy = 0;
  std::optional<double> frequency;
  std::optional<double> power_factor;

  friend bool operator==(const Reading&, const Reading&) = default;
};

}  // namespace meterhub::core
