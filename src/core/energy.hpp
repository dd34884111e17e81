// Counter rules: how a series of cumulative kWh counter readings becomes
// consumption. One implementation, used for raw ranges and for rollups alike,
// so both give the same answer. docs/energy.md states the rules for users.
//
//  1. An *outlier* is a single reading that leaves the counter's path and
//     comes straight back: it drops below the previous reading while the next
//     one is back at or above the previous (a rebooting sensor reporting 0),
//     or it jumps implausibly far above the previous while the next one is
//     below it (a garbage value). Outliers count nothing. The newest reading of
//     a series has no successor yet and is never an outlier until it has one.
//  2. A reading's predecessor is the reading right before it if that one is
//     not an outlier, else the one before that if *it* is not an outlier;
//     when both are outliers the reading counts nothing. (So a reading's
//     consumption depends on the three readings before it and the one after
//     it, never on more: rollups maintained piece by piece, and late readings
//     that change their neighbours, stay exact with that much context.)
//  3. Between a predecessor a and the reading b, with dt = tb - ta:
//       eb >= ea, eb - ea <= plausible(dt)  ->  eb - ea  is consumed
//       eb >= ea, eb - ea >  plausible(dt)  ->  0 (counter replaced or data lost)
//       eb <  ea (a reset: reboot, new counter, wrap)
//                 eb <= plausible(dt)        ->  eb (the counter restarted at 0)
//                 eb >  plausible(dt)        ->  0
//     where plausible(dt) = max_power_w * dt + resolution_kwh.
//  4. The consumption between a and b belongs to b's time (the period in which
//     a gap ends), never spread over the gap.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "core/reading.hpp"

namespace meterhub::core {

struct CounterRules {
  double max_power_w = 1'000'000;  // nothing consumes faster than this (1 MW)
  double resolution_kwh = 0.01;    // counter steps smaller than this are always plausible
};

struct CounterPoint {
  TimeMs ts = 0;
  double kwh = 0;
};

// Readings of context a computation needs before and after the points it
// attributes (rule 2).
inline constexpr std::size_t kContextBefore = 3;
inline constexpr std::size_t kContextAfter = 1;

// Consumption attributed to each point of `points` (sorted by ts, unique ts).
// `before` are up to kContextBefore points immediately preceding `points`
// (oldest first; more are ignored) and `after` the point right after it, if
// they exist: they decide whether the first and last points are outliers and
// what the first points' predecessors are. The result has one entry per
// element of `points`, the same as a computation over the whole series.
std::vector<double> attribute_consumption(std::span<const CounterPoint> before,
                                          std::span<const CounterPoint> points,
                                          std::optional<CounterPoint> after,
                                          const CounterRules& rules);

// Rounds a sum of kWh (or of money) to 9 decimal places for output: sums of
// counter differences carry floating-point residue (0.6 + 0.6 + ... printed
// as 13.799999999999997); no meter resolves a µWh, so this loses nothing.
double tidy(double v);

}  // namespace meterhub::core
