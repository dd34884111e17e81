// Aggregates of readings over a time bucket: what the series endpoint returns
// per bucket and what the rollup tables store per minute and per hour. One
// type for both, so a bucket read from a rollup and a bucket computed from
// raw readings are compared field by field.
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <vector>

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

// The bucket starting at `start` when buckets are filled in time order: the
// last one if it starts there, else a new one appended.
Aggregate& bucket_at(std::vector<Aggregate>& buckets, TimeMs start);

// Readings sorted by ts, with the consumption attributed to each
// (core::attribute_consumption), into buckets of `step` (epoch-aligned);
// empty buckets omitted.
std::vector<Aggregate> aggregate_by_bucket(std::span<const Reading> readings,
                                           std::span<const double> kwh, TimeMs step);

// Floor of ts to a multiple of step (buckets are aligned to the Unix epoch).
constexpr TimeMs bucket_start(TimeMs ts, TimeMs step) {
  TimeMs q = ts / step;
  if (ts % step < 0) --q;  // floor for times before 1970
  return q * step;
}

}  // namespace meterhub::core
