#include "query/energy_report.hpp"

#include <algorithm>

namespace meterhub::query {

EnergyReport energy_report(std::span<const KwhBucket> buckets,
                           std::span<const core::TimeMs> boundaries, const TimeZone& tz,
                           const core::Tariff* tariff) {
  EnergyReport report;
  if (tariff) report.cost = 0.0;
  if (boundaries.size() < 2) return report;

  report.periods.reserve(boundaries.size() - 1);
  for (std::size_t i = 0; i + 1 < boundaries.size(); ++i) {
    PeriodEnergy p;
    p.start = boundaries[i];
    p.end = boundaries[i + 1];
    if (tariff) p.cost = 0.0;
    report.periods.push_back(p);
  }

  // A flat tariff needs no time-zone lookup per bucket.
  const bool flat = tariff && tariff->windows.empty();
  for (const KwhBucket& b : buckets) {
    if (b.start < boundaries.front() || b.start >= boundaries.back()) continue;
    // The last boundary <= b.start starts the bucket's period.
    const auto it = std::upper_bound(boundaries.begin(), boundaries.end(), b.start);
    PeriodEnergy& p = report.periods[static_cast<std::size_t>(it - boundaries.begin()) - 1];
    p.kwh += b.kwh;
    if (tariff) {
      const double price =
          flat ? tariff->price_per_kwh : tariff->price_at(tz.minute_of_day(b.start));
      *p.cost += b.kwh * price;
    }
  }

  for (const PeriodEnergy& p : report.periods) {
    report.kwh += p.kwh;
    if (tariff) *report.cost += *p.cost;
  }
  return report;
}

core::TimeMs bucket_width_for(std::span<const core::TimeMs> boundaries, const TimeZone& tz,
                              const core::Tariff* tariff) {
  for (core::TimeMs b : boundaries) {
    if (b % kHourBucket != 0) return kMinuteBucket;
  }
  if (!tariff || tariff->windows.empty()) return kHourBucket;  // the price never changes
  if (!tariff->whole_hours()) return kMinuteBucket;
  // Whole-hour windows in local time are whole UTC hours only while the
  // offset is a whole number of hours.
  if (boundaries.empty()) return kHourBucket;
  return whole_hour_offsets(tz, boundaries.front(), boundaries.back()) ? kHourBucket
                                                                       : kMinuteBucket;
}

}  // namespace meterhub::query
