// Electricity tariffs: a price per kWh, optionally varying with the local time
// of day (time-of-use windows such as "07:00-23:00 at 0.30, else 0.18"). The
// energy report prices consumption with them; codec/tariff_codec.hpp reads and
// writes them as JSON. Windows are wall-clock times in the report's time zone,
// so on DST days they follow the clock, not the elapsed time.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace meterhub::core {

inline constexpr int kMinutesPerDay = 1440;
inline constexpr std::size_t kMaxTariffWindows = 48;
inline constexpr double kMaxPricePerKwh = 1e6;  // in absolute value; prices may be negative

// Local time of day [from_minute, to_minute), minutes since 00:00. from_minute
// is 0..1439, to_minute 0..1440 (1440 = 24:00); the window wraps midnight
// when from_minute > to_minute (22:00-06:00).
struct TariffWindow {
  int from_minute = 0;
  int to_minute = 0;
  double price_per_kwh = 0;

  friend bool operator==(const TariffWindow&, const TariffWindow&) = default;
};

struct Tariff {
  std::string currency;      // ISO 4217 code, e.g. "EUR"
  double price_per_kwh = 0;  // outside every window
  std::vector<TariffWindow> windows;

  // The price in force at a local time of day (minutes; taken modulo a day):
  // the price of the window holding it, else price_per_kwh. With overlapping
  // windows (validate_tariff refuses them) the first one listed wins.
  double price_at(int local_minute_of_day) const;

  // True when every window starts and ends on a full hour.
  bool whole_hours() const;

  friend bool operator==(const Tariff&, const Tariff&) = default;
};

// Checks what the types cannot: currency is three ASCII uppercase letters;
// prices are finite and within +-kMaxPricePerKwh; at most kMaxTariffWindows
// windows, each non-empty (from != to) with minutes in range; no two windows
// share a minute (wrapping ones included). Error code "invalid_tariff" with
// `field` naming the offending part ("currency", "windows[1].from", ...).
Result<void> validate_tariff(const Tariff& tariff);

}  // namespace meterhub::core
