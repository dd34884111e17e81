// Aggregates of readings over a time bucket: what the series endpoint returns
// per bucket and what the rollup tables store per minute and per hour. One
// type for both, so a bucket read from a rollup and a bucket computed from
// raw readings are compared field by field.
#pragma once

#include <cstddef>
#include <limits>

#include "core/reading.hpp"

namespace meterhub::core {

struct FieldStats {
  std::size_t count = 0;
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  void add(double v);
  void merge(const FieldStats& o);
  double avg() const { return count ? sum / static_cast<double>(count) : 0.0; }
};

struct Aggregate {
  TimeMs start = 0;       // bucket start (inclusive)
  std::size_t count = 0;  // readings in the bucket
  FieldStats voltage, current, power, frequency, power_factor;
  TimeMs first_ts = 0;      // ts of the bucket's first reading ...
  TimeMs last_ts = 0;       // ... and of its last
  double energy_first = 0;  // counter value of the first reading
  double energy_last = 0;   // ... and of the last
  double kwh = 0;           // consumption attributed to the bucket (core/energy.hpp rules)

  // Adds one reading (any order) and the consumption attributed to it.
  void add(const Reading& r, double attributed_kwh);
  // Adds the readings of another aggregate (of the same meter, any order).
  void merge(const Aggregate& o);
};

// Floor of ts to a multiple of step (buckets are aligned to the Unix epoch).
constexpr TimeMs bucket_start(TimeMs ts, TimeMs step) {
  TimeMs q = ts / step;
  if (ts % step < 0) --q;  // floor for times before 1970
  return q * step;
}

}  // namespace meterhub::core
