// Energy (and its cost) per local calendar period: the computation behind
// GET /api/v1/meters/{id}/energy?from=&to=&period=day&tz=Europe/Berlin.
//
// The caller reads consumption from a rollup (core::Aggregate::kwh per hour
// or per minute), picks the rollup with bucket_width_for(), and sums it into
// the periods of period_boundaries() here. Because every bucket lies inside
// one period and one tariff window, the sums are exact: no bucket is split.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "core/reading.hpp"
#include "core/tariff.hpp"
#include "query/calendar.hpp"

namespace meterhub::query {

inline constexpr core::TimeMs kHourBucket = 3'600'000;
inline constexpr core::TimeMs kMinuteBucket = 60'000;

// Consumption attributed to [start, start + width), e.g. one rollup row.
struct KwhBucket {
  core::TimeMs start = 0;
  double kwh = 0;
};

struct PeriodEnergy {
  core::TimeMs start = 0;  // UTC instant of the local period start (inclusive)
  core::TimeMs end = 0;    // ... and of the next one (exclusive)
  double kwh = 0;
  std::optional<double> cost;  // in the tariff's currency; absent without a tariff
};

struct EnergyReport {
  std::vector<PeriodEnergy> periods;  // one per pair of consecutive boundaries
  double kwh = 0;                     // sum over the periods
  std::optional<double> cost;         // likewise; absent without a tariff
};

// `boundaries`: from period_boundaries() (sorted, distinct). `buckets`: each
// lies wholly inside one period (the caller guarantees it by choosing the
// width with bucket_width_for); ones starting outside [boundaries.front(),
// boundaries.back()) are ignored. Every period is in the result, with 0 kWh
// when no bucket falls into it. A bucket costs kwh * tariff->price_at(local
// time of day of its start in `tz`). `tariff` may be null: no costs.
EnergyReport energy_report(std::span<const KwhBucket> buckets,
                           std::span<const core::TimeMs> boundaries, const TimeZone& tz,
                           const core::Tariff* tariff);

// The rollup width (kHourBucket or kMinuteBucket) whose buckets each fall
// inside one period and one tariff window: an hour when every boundary is a
// whole UTC hour and the price cannot change within a UTC hour (no tariff, a
// flat one, or whole-hour windows in a zone whose offsets are whole hours
// over the boundaries' range); else a minute. Assumes the zone's offsets are
// whole minutes (true since the local-mean-time era ended, around 1900).
core::TimeMs bucket_width_for(std::span<const core::TimeMs> boundaries, const TimeZone& tz,
                              const core::Tariff* tariff);

}  // namespace meterhub::query
