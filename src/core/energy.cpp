#include "core/energy.hpp"

namespace meterhub::core {
namespace {

double plausible(const CounterRules& r, TimeMs dt_ms) {
  double hours = static_cast<double>(dt_ms < 0 ? 0 : dt_ms) / 3'600'000.0;
  return r.max_power_w / 1000.0 * hours + r.resolution_kwh;
}

// Rule 1 for s[i] given its neighbours s[i-1] and s[i+1].
bool outlier(const CounterPoint& prev, const CounterPoint& cur, const CounterPoint& next,
             const CounterRules& r) {
  if (cur.kwh < prev.kwh) return next.kwh >= prev.kwh;
  if (cur.kwh - prev.kwh > plausible(r, cur.ts - prev.ts)) return next.kwh < cur.kwh;
  return false;
}

// Rule 2 for a -> b.
double step(const CounterPoint& a, const CounterPoint& b, const CounterRules& r) {
  const double lim = plausible(r, b.ts - a.ts);
  if (b.kwh >= a.kwh) {
    double d = b.kwh - a.kwh;
    return d <= lim ? d : 0.0;
  }
  return b.kwh <= lim ? b.kwh : 0.0;
}

}  // namespace

std::vector<double> attribute_consumption(std::span<const CounterPoint> before,
                                          std::span<const CounterPoint> points,
                                          std::optional<CounterPoint> after,
                                          const CounterRules& rules) {
  // One contiguous series: before..., points..., after.
  std::vector<CounterPoint> s(before.begin(), before.end());
  const std::size_t first = s.size();
  s.insert(s.end(), points.begin(), points.end());
  if (after) s.push_back(*after);

  std::vector<bool> out(s.size(), false);
  for (std::size_t i = 1; i + 1 < s.size(); ++i) out[i] = outlier(s[i - 1], s[i], s[i + 1], rules);

  std::vector<double> result(points.size(), 0.0);
  // The last non-outlier point before `points`, if any.
  std::optional<std::size_t> prev;
  for (std::size_t i = 0; i < first; ++i)
    if (!out[i]) prev = i;
  for (std::size_t k = 0; k < points.size(); ++k) {
    std::size_t i = first + k;
    if (out[i]) continue;
    if (prev) result[k] = step(s[*prev], s[i], rules);
    prev = i;
  }
  return result;
}

}  // namespace meterhub::core
