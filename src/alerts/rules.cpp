#include "alerts/rules.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace meterhub::alerts {
namespace {

constexpr std::array<std::pair<RuleKind, std::string_view>, 7> kNames{{
    {RuleKind::over_voltage, "over_voltage"},
    {RuleKind::under_voltage, "under_voltage"},
    {RuleKind::over_current, "over_current"},
    {RuleKind::over_power, "over_power"},
    {RuleKind::power_factor_below, "power_factor_below"},
    {RuleKind::frequency_out_of_band, "frequency_out_of_band"},
    {RuleKind::offline, "offline"},
}};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

struct Words {
  const char* field;
  const char* unit;
};

Words words(RuleKind k) {
  switch (k) {
    case RuleKind::over_voltage:
    case RuleKind::under_voltage:
      return {"voltage", " V"};
    case RuleKind::over_current:
      return {"current", " A"};
    case RuleKind::over_power:
      return {"power", " W"};
    case RuleKind::power_factor_below:
      return {"power factor", ""};
    case RuleKind::frequency_out_of_band:
      return {"frequency", " Hz"};
    case RuleKind::offline:
      break;
  }
  return {"", ""};
}

// Is the value past the raise edge / back past the clear edge?
bool raise_cond(const Rule& r, double v) {
  switch (r.kind) {
    case RuleKind::over_voltage:
    case RuleKind::over_current:
    case RuleKind::over_power:
      return v > r.threshold;
    case RuleKind::under_voltage:
    case RuleKind::power_factor_below:
      return v < r.threshold;
    case RuleKind::frequency_out_of_band:
      return v < r.min || v > r.max;
    case RuleKind::offline:
      break;
  }
  return false;
}

bool clear_cond(const Rule& r, double v) {
  switch (r.kind) {
    case RuleKind::over_voltage:
    case RuleKind::over_current:
    case RuleKind::over_power:
      return v <= r.threshold - r.hysteresis;
    case RuleKind::under_voltage:
    case RuleKind::power_factor_below:
      return v >= r.threshold + r.hysteresis;
    case RuleKind::frequency_out_of_band:
      return v >= r.min + r.hysteresis && v <= r.max - r.hysteresis;
    case RuleKind::offline:
      break;
  }
  return false;
}

std::string describe(const Rule& r, bool raised, double v) {
  const Words w = words(r.kind);
  std::string m = std::string(w.field) + " " + num(v) + w.unit;
  const std::string hold =
      r.hold_ms > 0 ? " for " + num(static_cast<double>(r.hold_ms) / 1000) + " s" : "";
  if (r.kind == RuleKind::frequency_out_of_band) {
    m += raised ? " outside " : " back inside ";
    m += num(raised ? r.min : r.min + r.hysteresis) + ".." +
         num(raised ? r.max : r.max - r.hysteresis) + w.unit;
    return m + hold;
  }
  const bool over = r.kind == RuleKind::over_voltage || r.kind == RuleKind::over_current ||
                    r.kind == RuleKind::over_power;
  if (raised) {
    m += over ? " above " : " below ";
    m += num(r.threshold) + w.unit;
  } else {
    m += over ? " back at or below " : " back at or above ";
    m += num(over ? r.threshold - r.hysteresis : r.threshold + r.hysteresis) + w.unit;
  }
  return m + hold;
}

}  // namespace

std::string_view to_string(RuleKind k) {
  for (const auto& [kind, name] : kNames)
    if (kind == k) return name;
  return "unknown";
}

std::optional<RuleKind> rule_kind_from(std::string_view s) {
  for (const auto& [kind, name] : kNames)
    if (name == s) return kind;
  return std::nullopt;
}

std::optional<double> measured(const Rule& r, const core::Reading& reading) {
  switch (r.kind) {
    case RuleKind::over_voltage:
    case RuleKind::under_voltage:
      return reading.voltage;
    case RuleKind::over_current:
      return reading.current;
    case RuleKind::over_power:
      return reading.power;
    case RuleKind::power_factor_below:
      return reading.power_factor;
    case RuleKind::frequency_out_of_band:
      return reading.frequency;
    case RuleKind::offline:
      break;
  }
  return std::nullopt;
}

std::optional<Transition> evaluate(const Rule& r, RuleState& s, const core::Reading& reading) {
  if (r.kind == RuleKind::offline) {
    if (!s.active) return std::nullopt;
    s.active = false;
    s.pending_since.reset();
    return Transition{false, 0, reading.ts,
                      "a reading arrived (ts " + std::to_string(reading.ts) + ")"};
  }
  const std::optional<double> v = measured(r, reading);
  if (!v) return std::nullopt;
  const bool want = s.active ? clear_cond(r, *v) : raise_cond(r, *v);
  if (!want) {
    s.pending_since.reset();
    return std::nullopt;
  }
  if (!s.pending_since) s.pending_since = reading.ts;
  if (reading.ts - *s.pending_since < r.hold_ms) return std::nullopt;
  s.active = !s.active;
  s.pending_since.reset();
  return Transition{s.active, *v, reading.ts, describe(r, s.active, *v)};
}

std::optional<Transition> tick(const Rule& r, RuleState& s, core::TimeMs last_arrival,
                               core::TimeMs now) {
  if (r.kind != RuleKind::offline || s.active) return std::nullopt;
  const core::TimeMs silent = now - last_arrival;
  if (silent < r.after_ms) return std::nullopt;
  s.active = true;
  const double secs = static_cast<double>(silent) / 1000;
  return Transition{true, secs, now,
                    "no reading for " + num(secs) + " s (limit " +
                        num(static_cast<double>(r.after_ms) / 1000) + " s)"};
}

}  // namespace meterhub::alerts
