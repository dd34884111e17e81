#include "core/aggregate.hpp"

#include <algorithm>

namespace meterhub::core {

void FieldStats::add(double v) {
  ++count;
  sum += v;
  min = std::min(min, v);
  max = std::max(max, v);
}

void FieldStats::merge(const FieldStats& o) {
  count += o.count;
  sum += o.sum;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

void Aggregate::add(const Reading& r, double attributed_kwh) {
  if (count == 0 || r.ts < first_ts) {
    first_ts = r.ts;
    energy_first = r.energy;
  }
  if (count == 0 || r.ts > last_ts) {
    last_ts = r.ts;
    energy_last = r.energy;
  }
  ++count;
  voltage.add(r.voltage);
  current.add(r.current);
  power.add(r.power);
  if (r.frequency) frequency.add(*r.frequency);
  if (r.power_factor) power_factor.add(*r.power_factor);
  kwh += attributed_kwh;
}

void Aggregate::merge(const Aggregate& o) {
  if (o.count == 0) {
    kwh += o.kwh;
    return;
  }
  if (count == 0 || o.first_ts < first_ts) {
    first_ts = o.first_ts;
    energy_first = o.energy_first;
  }
  if (count == 0 || o.last_ts > last_ts) {
    last_ts = o.last_ts;
    energy_last = o.energy_last;
  }
  count += o.count;
  voltage.merge(o.voltage);
  current.merge(o.current);
  power.merge(o.power);
  frequency.merge(o.frequency);
  power_factor.merge(o.power_factor);
  kwh += o.kwh;
}

Aggregate& bucket_at(std::vector<Aggregate>& buckets, TimeMs start) {
  if (buckets.empty() || buckets.back().start != start) {
    buckets.emplace_back();
    buckets.back().start = start;
  }
  return buckets.back();
}

std::vector<Aggregate> aggregate_by_bucket(std::span<const Reading> readings,
                                           std::span<const double> kwh, TimeMs step) {
  std::vector<Aggregate> out;
  for (std::size_t i = 0; i < readings.size(); ++i)
    bucket_at(out, bucket_start(readings[i].ts, step)).add(readings[i], kwh[i]);
  return out;
}

}  // namespace meterhub::core
