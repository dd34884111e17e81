#include "core/energy.hpp"

#include <cmath>

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
  if (before.size() > kContextBefore) before = before.last(kContextBefore);
  // One contiguous series: before..., points..., after.
  std::vector<CounterPoint> s(before.begin(), before.end());
  const std::size_t first = s.size();
  s.insert(s.end(), points.begin(), points.end());
  if (after) s.push_back(*after);

  // out[i] is known for 1 <= i < s.size() - 1; the ends have a missing
  // neighbour: the oldest context point is taken as it is (it is at least
  // kContextBefore readings away from any point it could matter for but
  // one), the newest point has no successor yet (rule 1).
  std::vector<bool> out(s.size(), false);
  for (std::size_t i = 1; i + 1 < s.size(); ++i) out[i] = outlier(s[i - 1], s[i], s[i + 1], rules);

  std::vector<double> result(points.size(), 0.0);
  for (std::size_t k = 0; k < points.size(); ++k) {
    const std::size_t i = first + k;
    if (out[i] || i == 0) continue;
    if (!out[i - 1])
      result[k] = step(s[i - 1], s[i], rules);
    else if (i >= 2 && !out[i - 2])
      result[k] = step(s[i - 2], s[i], rules);
  }
  return result;
}

double tidy(double v) {
  if (!std::isfinite(v) || std::abs(v) >= 1e6) return v;  // 1e6 * 1e9 stays exact in a double
  const double r = std::round(v * 1e9) / 1e9;
  return r == 0 ? 0.0 : r;  // no "-0"
}

}  // namespace meterhub::core
