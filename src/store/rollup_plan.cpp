#include "store/rollup_plan.hpp"

#include <algorithm>
#include <map>
#include <optional>

namespace meterhub::store {

bool RollupPlanner::covers(std::int64_t meter_id, core::TimeMs lo) const {
  auto t = tails_.find(meter_id);
  return t != tails_.end() && t->second.n > 0 && lo > t->second.pts[t->second.n - 1].ts;
}

core::Result<RollupContributions> RollupPlanner::plan(std::int64_t meter_id,
                                                      std::span<const core::Reading* const> fresh,
                                                      bool truncated, const FetchWindow& fetch) {
  RollupContributions out;
  if (fresh.empty()) return out;
  const core::TimeMs lo = fresh.front()->ts, hi = fresh.back()->ts;

  // The series around the new readings, as stored now (new readings
  // included): up to 4 before them (one whose attribution may change + its
  // context), everything between, up to 4 after them (three that may change
  // + context).
  std::vector<Point> w;
  std::size_t n_before = 0, n_upto_hi = 0, n_after = 0;
  auto tail = tails_.find(meter_id);
  if (covers(meter_id, lo)) {
    // Appending after the newest stored reading (the common case): the
    // window is the cached tail plus the new readings; nothing after them.
    w.assign(tail->second.pts.begin(), tail->second.pts.begin() + tail->second.n);
    n_before = w.size();
    for (const core::Reading* r : fresh) w.push_back({r->ts, r->energy, true});
    n_upto_hi = w.size();
  } else {
    auto got = fetch(meter_id, lo, hi);
    if (!got) return std::unexpected(got.error());
    if (got->before.size() > 4 || got->after.size() > 4)
      return core::fail("store_unavailable", "rollup maintenance: window too wide");
    w.reserve(got->before.size() + got->between.size() + got->after.size());
    for (const auto* part : {&got->before, &got->between, &got->after})
      for (const RollupPoint& p : *part) w.push_back({p.ts, p.energy, false});
    n_before = got->before.size();
    n_upto_hi = n_before + got->between.size();
    n_after = got->after.size();

    // Mark the new ones (both sequences sorted by ts).
    std::size_t k = 0;
    for (std::size_t j = n_before; j < n_upto_hi && k < fresh.size(); ++j)
      if (w[j].ts == fresh[k]->ts) {
        w[j].fresh = true;
        ++k;
      }
    if (k != fresh.size())
      return core::fail("store_unavailable", "rollup maintenance: new readings not found");
  }
  // The newest readings of the meter, for the next append; known only when
  // the window reaches the end of the series.
  if (n_after < 4) {
    Tail& t = tails_[meter_id];
    t.n = std::min<std::size_t>(w.size(), t.pts.size());
    for (std::size_t i = 0; i < t.n; ++i) {
      t.pts[i] = w[w.size() - t.n + i];
      t.pts[i].fresh = false;
    }
  } else if (tail != tails_.end()) {
    tails_.erase(tail);
  }

  // Points whose attribution may change: [first, last) of w; the rest is context.
  const std::size_t first = n_before > 0 ? n_before - 1 : 0;
  const std::size_t last = n_after == 4 ? w.size() - 1 : w.size();
  auto attribute = [&](bool with_fresh) {
    std::vector<core::CounterPoint> before, points;
    std::optional<core::CounterPoint> after;
    std::vector<std::size_t> index;  // w index of each entry of points
    for (std::size_t j = 0; j < w.size(); ++j) {
      if (w[j].fresh && !with_fresh) continue;
      core::CounterPoint p{w[j].ts, w[j].kwh};
      if (j < first)
        before.push_back(p);
      else if (j < last) {
        points.push_back(p);
        index.push_back(j);
      } else
        after = p;
    }
    std::vector<double> by_w(w.size(), 0.0);
    auto c = core::attribute_consumption(before, points, after, rules);
    for (std::size_t k = 0; k < c.size(); ++k) by_w[index[k]] = c[k];
    return by_w;
  };
  const std::vector<double> now = attribute(true);
  const std::vector<double> was = attribute(false);

  // Contributions per bucket: statistics of the new readings, consumption
  // corrections of the others.
  std::map<core::TimeMs, core::Aggregate> minute, hour;
  auto bucket = [](std::map<core::TimeMs, core::Aggregate> & m, core::TimeMs start) -> auto& {
    auto [it, added] = m.try_emplace(start);
    if (added) it->second.start = start;
    return it->second;
  };
  // With a full window before the new readings every point has its three
  // stored predecessors. Otherwise the window starts at the meter's oldest
  // stored reading, and after retention the first three stored readings
  // lack the context their stored consumption was computed with: it cannot
  // be recomputed, so it is left as it is. A new reading before such a
  // reading then gets nothing (the consumption up to that reading is
  // already counted there); one after them gets what its neighbours give.
  std::vector<bool> reliable(w.size(), true);
  std::size_t last_unreliable = 0;  // window index + 1; 0 = none
  if (truncated && n_before < 4) {
    std::size_t old_index = 0;  // position among the stored (not new) readings
    for (std::size_t j = 0; j < w.size(); ++j) {
      if (w[j].fresh) continue;
      if (old_index++ < core::kContextBefore) {
        reliable[j] = false;
        last_unreliable = j + 1;
      }
    }
  }
  std::size_t k = 0;
  for (std::size_t j = first; j < last; ++j) {
    const core::TimeMs m0 = core::bucket_start(w[j].ts, kRollupMinuteMs);
    const core::TimeMs h0 = core::bucket_start(w[j].ts, kRollupHourMs);
    if (w[j].fresh) {
      const core::Reading& r = *fresh[k++];
      const double kwh = j + 1 < last_unreliable ? 0.0 : now[j];
      bucket(minute, m0).add(r, kwh);
      bucket(hour, h0).add(r, kwh);
    } else if (const double d = now[j] - was[j]; reliable[j] && d != 0) {
      bucket(minute, m0).kwh += d;
      bucket(hour, h0).kwh += d;
    }
  }
  auto values = [](const std::map<core::TimeMs, core::Aggregate>& m) {
    std::vector<core::Aggregate> v;
    v.reserve(m.size());
    for (const auto& [_, a] : m) v.push_back(a);
    return v;
  };
  out.minute = values(minute);
  out.hour = values(hour);
  return out;
}

}  // namespace meterhub::store
