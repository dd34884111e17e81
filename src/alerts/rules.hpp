// Alert rules of one meter and the state machine that turns a stream of
// committed readings (and the passing of time) into "raised" and "cleared"
// transitions. Pure: no I/O, no clock of its own — the caller passes reading
// timestamps and "now" explicitly, so the tests drive it with a fake clock.
//
// Contract (docs/alerts.md):
//  - A value rule raises once its condition has held on every evaluated
//    reading for hold_ms of reading time (the first reading that meets it
//    starts the hold; hold_ms = 0 raises at once), and clears once the value
//    is back past the threshold by `hysteresis` for hold_ms as well. A value
//    between threshold and threshold ∓ hysteresis changes nothing, so a value
//    hovering at the edge does not flap.
//  - Readings must be fed in ts order; the caller skips older ones.
//  - A reading that lacks the measured field (frequency, power factor)
//    leaves the rule's state unchanged.
//  - offline: raised by tick() once no reading arrived for after_ms (by the
//    caller's clock), cleared by the next reading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/reading.hpp"

namespace meterhub::alerts {

enum class RuleKind : std::uint8_t {
  over_voltage,
  under_voltage,
  over_current,
  over_power,
  power_factor_below,
  frequency_out_of_band,
  offline,
};

std::string_view to_string(RuleKind k);
std::optional<RuleKind> rule_kind_from(std::string_view s);

struct Rule {
  RuleKind kind = RuleKind::over_voltage;
  double threshold = 0;  // single-threshold kinds
  double min = 0;        // frequency_out_of_band
  double max = 0;
  double hysteresis = 0;
  core::TimeMs hold_ms = 0;
  core::TimeMs after_ms = 0;  // offline

  friend bool operator==(const Rule&, const Rule&) = default;
};

// Per rule, what the machine remembers.
struct RuleState {
  bool active = false;
  std::optional<core::TimeMs> pending_since;  // raise (or clear, when active) condition held since
};

struct Transition {
  bool raised = true;   // false: cleared
  double value = 0;     // the measured value (offline: seconds without a reading)
  core::TimeMs at = 0;  // reading ts, or the tick's now for offline
  std::string message;  // for people, e.g. "voltage 262.1 V above 253 V for 5 s"
};

// The measured value a rule looks at, if the reading has it.
std::optional<double> measured(const Rule& r, const core::Reading& reading);

// Feeds one reading (ts order). For offline rules: a reading clears an
// active alert.
std::optional<Transition> evaluate(const Rule& r, RuleState& s, const core::Reading& reading);

// The passing of time: raises an offline rule when `now - last_arrival >=
// after_ms`. Value rules ignore ticks (their hold runs on reading time).
std::optional<Transition> tick(const Rule& r, RuleState& s, core::TimeMs last_arrival,
                               core::TimeMs now);

}  // namespace meterhub::alerts
