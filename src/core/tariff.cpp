#include "core/tariff.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>

namespace meterhub::core {
namespace {

bool in_window(const TariffWindow& w, int minute) {
  if (w.from_minute < w.to_minute) return minute >= w.from_minute && minute < w.to_minute;
  return minute >= w.from_minute || minute < w.to_minute;  // wraps midnight
}

// "07:30" for messages; minutes out of range print as they are.
std::string hh_mm(int minute) {
  if (minute < 0 || minute > kMinutesPerDay) return std::to_string(minute) + " min";
  std::string s;
  s += static_cast<char>('0' + minute / 600);
  s += static_cast<char>('0' + minute / 60 % 10);
  s += ':';
  s += static_cast<char>('0' + minute % 60 / 10);
  s += static_cast<char>('0' + minute % 10);
  return s;
}

std::string shown(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string window_name(std::size_t i) { return "windows[" + std::to_string(i) + "]"; }

std::unexpected<Error> invalid(std::string field, std::string message) {
  return std::unexpected(
      Error{"invalid_tariff", std::move(message), std::nullopt, std::move(field)});
}

std::optional<std::unexpected<Error>> check_price(double price, const std::string& field) {
  if (!std::isfinite(price) || std::fabs(price) > kMaxPricePerKwh) {
    return invalid(field, field + " must be a number between -1e6 and 1e6, got " +
                              (std::isfinite(price) ? shown(price) : "a non-finite value"));
  }
  return std::nullopt;
}

// A window as the parts of [0, 1440) it covers: one, or two when it wraps.
struct Span {
  int from, to;
  std::size_t window;
};

}  // namespace

double Tariff::price_at(int local_minute_of_day) const {
  const int m = (local_minute_of_day % kMinutesPerDay + kMinutesPerDay) % kMinutesPerDay;
  for (const TariffWindow& w : windows) {
    if (in_window(w, m)) return w.price_per_kwh;
  }
  return price_per_kwh;
}

bool Tariff::whole_hours() const {
  return std::all_of(windows.begin(), windows.end(), [](const TariffWindow& w) {
    return w.from_minute % 60 == 0 && w.to_minute % 60 == 0;
  });
}

Result<void> validate_tariff(const Tariff& t) {
  const bool iso_code =
      t.currency.size() == 3 && std::all_of(t.currency.begin(), t.currency.end(),
                                            [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!iso_code) {
    return invalid(
        "currency",
        "currency must be an ISO 4217 code of three uppercase letters such as EUR, got \"" +
            t.currency.substr(0, 16) + "\"");
  }
  if (auto e = check_price(t.price_per_kwh, "price_per_kwh")) return *e;
  if (t.windows.size() > kMaxTariffWindows) {
    return invalid("windows", "at most " + std::to_string(kMaxTariffWindows) +
                                  " windows are allowed, got " + std::to_string(t.windows.size()));
  }

  std::vector<Span> spans;
  for (std::size_t i = 0; i < t.windows.size(); ++i) {
    const TariffWindow& w = t.windows[i];
    const std::string name = window_name(i);
    if (w.from_minute < 0 || w.from_minute >= kMinutesPerDay)
      return invalid(name + ".from", name + ".from must be between 00:00 and 23:59");
    if (w.to_minute < 0 || w.to_minute > kMinutesPerDay)
      return invalid(name + ".to", name + ".to must be between 00:00 and 24:00");
    if (w.from_minute == w.to_minute) {
      return invalid(name, name + " is empty: from and to are both " + hh_mm(w.from_minute));
    }
    if (auto e = check_price(w.price_per_kwh, name + ".price_per_kwh")) return *e;
    if (w.from_minute < w.to_minute) {
      spans.push_back({w.from_minute, w.to_minute, i});
    } else {
      spans.push_back({w.from_minute, kMinutesPerDay, i});
      if (w.to_minute > 0) spans.push_back({0, w.to_minute, i});
    }
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.from < b.from; });
  for (std::size_t k = 1; k < spans.size(); ++k) {
    if (spans[k].from < spans[k - 1].to) {
      const std::size_t a = std::min(spans[k].window, spans[k - 1].window);
      const std::size_t b = std::max(spans[k].window, spans[k - 1].window);
      const TariffWindow& wa = t.windows[a];
      return invalid(window_name(b), window_name(b) + " overlaps " + window_name(a) + " (" +
                                         hh_mm(wa.from_minute) + "-" + hh_mm(wa.to_minute) + ")");
    }
  }
  return {};
}

}  // namespace meterhub::core
