#include "query/series.hpp"

#include <algorithm>
#include <charconv>

namespace meterhub::query {

core::Result<core::TimeMs> parse_step(std::string_view text) {
  auto bad = [&] {
    return core::fail("invalid_parameter",
                      "step must be auto or a whole number of s, m, h or d from 1s to 1d "
                      "(e.g. 10s, 5m, 1h), got \"" +
                          std::string(text.substr(0, 20)) + "\"");
  };
  if (text.size() < 2) return bad();
  core::TimeMs unit;
  switch (text.back()) {
    case 's':
      unit = 1'000;
      break;
    case 'm':
      unit = 60'000;
      break;
    case 'h':
      unit = 3'600'000;
      break;
    case 'd':
      unit = 86'400'000;
      break;
    default:
      return bad();
  }
  core::TimeMs n = 0;
  auto digits = text.substr(0, text.size() - 1);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || p != digits.data() + digits.size() || n < 1 || n > 86'400) return bad();
  core::TimeMs step = n * unit;
  if (step > 86'400'000) return bad();
  return step;
}

core::TimeMs auto_step(core::TimeMs from, core::TimeMs to, std::size_t points) {
  const auto want = static_cast<core::TimeMs>(points ? points : 1);
  if (to <= from) to = from + 1;
  for (core::TimeMs s : kStepLadder) {
    // buckets of the epoch-aligned grid that [from, to) touches
    const core::TimeMs n = (core::bucket_start(to - 1, s) - core::bucket_start(from, s)) / s + 1;
    if (n <= want) return s;
  }
  return kStepLadder[std::size(kStepLadder) - 1];
}

namespace {

std::vector<core::CounterPoint> counter_points(std::span<const core::Reading> rs) {
  std::vector<core::CounterPoint> out;
  out.reserve(rs.size());
  for (const auto& r : rs) out.push_back({r.ts, r.energy});
  return out;
}

}  // namespace

std::vector<SeriesBucket> bucketize(std::span<const core::Reading> readings,
                                    std::span<const core::Reading> before,
                                    std::optional<core::Reading> after, core::TimeMs step_ms,
                                    const core::CounterRules& rules) {
  if (readings.empty() || step_ms <= 0) return {};
  const auto pts = counter_points(readings);
  const auto ctx = counter_points(before);
  std::optional<core::CounterPoint> next;
  if (after) next = core::CounterPoint{after->ts, after->energy};
  const std::vector<double> kwh = core::attribute_consumption(ctx, pts, next, rules);
  return core::aggregate_by_bucket(readings, kwh, step_ms);
}

std::vector<SeriesBucket> regroup(std::span<const SeriesBucket> rows, core::TimeMs step_ms) {
  std::vector<SeriesBucket> out;
  for (const SeriesBucket& row : rows)
    core::bucket_at(out, core::bucket_start(row.start, step_ms)).merge(row);
  return out;
}

}  // namespace meterhub::query
